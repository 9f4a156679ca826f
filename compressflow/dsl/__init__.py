"""Pipeline files -> validated, resolved :class:`Pipeline` objects (no TensorFlow here).

::

    from compressflow.dsl import load_pipeline
    pipeline = load_pipeline("digits.yaml", overrides=["params.sparsity=0.9"])
"""

from compressflow.dsl.json_schema import pipeline_json_schema
from compressflow.dsl.loader import load_pipeline
from compressflow.dsl.model import Pipeline
from compressflow.dsl.schema import pipeline_model

__all__ = ["Pipeline", "load_pipeline", "pipeline_json_schema", "pipeline_model"]
