"""Pipeline files -> validated, resolved :class:`Pipeline` objects (no TensorFlow here).

::

    from compressflow.dsl import load_pipeline
    pipeline = load_pipeline("digits.yaml", overrides=["params.sparsity=0.9"])
    pipeline.stages["pruned"].epochs            # a validated stage config
    pipeline.location_of(("stages", "pruned", "epochs"))   # digits.yaml:30:13
    pipeline.dependencies("check")              # ["trained", "pruned", "int8"]

A stage with ``matrix:`` becomes its variants (``pipeline.stages["pruned[final_sparsity=0.7]"]``)
and a ``type: pipeline`` stage becomes its recipe's stages (``"int8_recipe.prune"``): the
``Pipeline`` holds plain stages only (see :mod:`~compressflow.dsl.sweeps` and
:mod:`~compressflow.dsl.subpipelines`).

Invalid input raises :class:`compressflow.errors.PipelineError` with every problem found.
:func:`pipeline_model` is the pydantic model of the format (stages and datasets as
discriminated unions over the registered types); :func:`pipeline_json_schema` its
JSON Schema for editors.
"""

from compressflow.dsl.json_schema import pipeline_json_schema
from compressflow.dsl.loader import load_pipeline
from compressflow.dsl.model import Pipeline
from compressflow.dsl.schema import pipeline_model

__all__ = ["Pipeline", "load_pipeline", "pipeline_json_schema", "pipeline_model"]
