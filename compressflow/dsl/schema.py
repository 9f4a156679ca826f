"""The pydantic model of a pipeline document, built from the stage and dataset registry.

``stages`` and ``datasets`` values are discriminated unions on ``type`` over every
registered stage / dataset class. The model is built when first asked for and
rebuilt when the registry changes (e.g. a test or plugin registers a new type).
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from compressflow.dsl.limits import MAX_INT, MAX_NAME_LENGTH, MIN_INT
from compressflow.stages.base import Dataset, Stage
from compressflow.stages.registry import dataset_types, stage_types

#: Stage, dataset and param names: they become DAG node names, cache and file names.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
#: The pipeline's own name.
PIPELINE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"

NAME_RULE = ("names start with a letter or '_' and use only letters, digits, '_' and '-' "
             f"(at most {MAX_NAME_LENGTH} characters; no path separators, dots, spaces or shell characters)")
PIPELINE_NAME_RULE = ("a pipeline name uses only letters, digits, '_' and '-' and does not start with '-' "
                      f"(at most {MAX_NAME_LENGTH} characters)")

EntryName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
#: Keys of ``stages`` once sub-pipelines and sweeps are expanded (``int8_recipe.prune``,
#: ``pruned[final_sparsity=0.7]``). The names users write are checked before expansion
#: (:func:`compressflow.dsl.names.check_stage_names`) and the JSON Schema keeps ``NAME_PATTERN``.
GeneratedStageName = Annotated[str, StringConstraints(min_length=1, max_length=64 * MAX_NAME_LENGTH)]
PipelineName = Annotated[str, StringConstraints(pattern=PIPELINE_NAME_PATTERN, min_length=1,
                                                max_length=MAX_NAME_LENGTH)]

#: Top-level keys of a pipeline file, in the order they are documented.
TOP_LEVEL_KEYS = ("version", "name", "seed", "include", "imports", "params", "datasets", "templates", "stages",
                  "inputs", "output")
#: A dotted Python module name, as in ``imports:``.
MODULE_PATTERN = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"
ModuleName = Annotated[str, StringConstraints(pattern=MODULE_PATTERN, max_length=255)]

_lock = threading.Lock()
_cache: dict[tuple, type[BaseModel]] = {}


def tagged_union(classes: list[type[BaseModel]]) -> Any:
    """``Annotated[Union[...], Field(discriminator="type")]`` over ``classes``."""
    return Annotated[Union[tuple(classes)], Field(discriminator="type")]


def pipeline_model() -> type[BaseModel]:
    """The ``PipelineDocument`` pydantic model for the stage and dataset types registered now."""
    stages, datasets = stage_types(), dataset_types()
    key = (tuple(stages.items()), tuple(datasets.items()))
    with _lock:
        model = _cache.get(key)
        if model is None:
            _cache.clear()  # only the newest registry matters
            model = _cache[key] = _build(list(stages.values()), list(datasets.values()))
        return model


def _build(stage_classes: list[type[Stage]], dataset_classes: list[type[Dataset]]) -> type[BaseModel]:
    stage_config = tagged_union(stage_classes) if stage_classes else dict[str, Any]
    dataset_config = tagged_union(dataset_classes) if dataset_classes else dict[str, Any]
    return create_model(
        "PipelineDocument",
        __config__=ConfigDict(extra="forbid", frozen=True, title="compressflow pipeline"),
        __doc__="A compressflow pipeline file: datasets and a DAG of model-compression stages.",
        version=(Literal[1], Field(1, description="Version of the pipeline file format (1).")),
        name=(PipelineName, Field(description="Name of the pipeline.", examples=["digits"])),
        seed=(int, Field(0, ge=MIN_INT, le=MAX_INT,
                         description="Seed of every stage (each stage also mixes in its own name).")),
        imports=(list[ModuleName], Field(
            default_factory=list, description="Modules of yours (beside this file, or installed) imported before "
                                              "any stage loads a model: those registering custom layers, losses, "
                                              "metrics or QuantizeConfigs with "
                                              "`tf_keras.saving.register_keras_serializable`. Their source is in the "
                                              "cache keys of the stages that load models.",
            examples=[["mylayers"]])),
        params=(dict[EntryName, Any], Field(
            default_factory=dict, description="Values used below as `${params.NAME}`; override with "
                                              "`--set params.NAME=value` or `--params file.yaml`.",
            examples=[{"sparsity": 0.8}])),
        include=(Union[list[str], str], Field(
            default_factory=list, description="Files (relative to this one) whose `params`, `datasets` and "
                                              "`templates` are added to this pipeline's.",
            examples=[["../recipes/common.yaml"]])),
        datasets=(dict[EntryName, dataset_config], Field(
            default_factory=dict, description="Named datasets; stages refer to them by name.")),
        templates=(dict[EntryName, dict[str, Any]], Field(
            default_factory=dict, description="Partial stage configs; a stage says `extends: NAME` to start "
                                              "from one and overrides fields (mappings merge, other values "
                                              "are replaced).")),
        stages=(dict[GeneratedStageName, stage_config], Field(
            min_length=1, description="Named stages; fields such as `model` name other stages (the DAG's edges). "
                                      "A stage may sweep fields with `matrix: {FIELD: [values]}`.")),
        inputs=(list[EntryName], Field(
            default_factory=list, description="Recipes only: names the recipe's stages use as if they were "
                                              "stages; a `type: pipeline` stage binds them (`inputs: {model: "
                                              "trained}`).", examples=[["model"]])),
        output=(EntryName | None, Field(
            None, description="Recipes only: the stage a reference to the `type: pipeline` stage using this "
                              "recipe means.", examples=["int8"])),
    )
