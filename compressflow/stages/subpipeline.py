"""``pipeline``: use another pipeline file (a recipe) as a group of stages of this one.

The loader replaces a ``pipeline`` stage by the recipe's stages, named
``<this stage>.<recipe stage>``, before anything is planned (see
:mod:`compressflow.dsl.subpipelines`): this model exists so that the stage is
validated, documented and listed like any other. It never runs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from compressflow.errors import StageFailed
from compressflow.stages.base import Stage
from compressflow.stages.registry import register_stage


@register_stage
class PipelineStage(Stage):
    """Use a recipe file's stages here, named `<this stage>.<recipe stage>`; this stage's name means its `output`."""

    produces: ClassVar[str] = "the recipe output's artifact"

    type: Literal["pipeline"] = "pipeline"
    path: str = Field(description="The recipe file, relative to this file (inside the pipeline's folder unless "
                                  "outside paths are allowed).", examples=["recipes/prune-int8.yaml"])
    params: dict[str, Any] = Field(default_factory=dict, description="Values of the recipe's params (each one "
                                   "the recipe declares); the others keep the recipe's values.",
                                   examples=[{"sparsity": 0.8}])
    inputs: dict[str, str] = Field(default_factory=dict, description="The recipe's inputs bound to stages of "
                                   "this pipeline; every input must be bound.", examples=[{"model": "trained"}])
    datasets: dict[str, str] = Field(default_factory=dict, description="Datasets the recipe's stages name, "
                                     "mapped to this pipeline's (default: the same name).",
                                     examples=[{"digits": "mnist"}])

    def run(self, ctx) -> None:
        raise StageFailed(f"stage {ctx.name!r}: a 'pipeline' stage is expanded when the pipeline is loaded "
                          "and never runs itself")
