"""compressflow: declarative, validated, cached pipelines for compressing Keras models.

::

    import compressflow
    pipeline = compressflow.load("pipelines/digits.yaml")      # validated Pipeline
    compressflow.plan(pipeline)                                 # per stage: cached or run, and why
    result = compressflow.run(pipeline)                         # recorded like `compressflow run`
    assert result.ok, result.failed

``run``, ``plan`` and ``load`` live in :mod:`compressflow.api`. They and the types they take
and return are imported on first use, so ``import compressflow`` stays cheap (no networkx,
pydantic or TensorFlow until a pipeline is touched).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# NOTE: PEP 562: each public name is imported from its module when first asked for.
_LAZY = {
    "run": "compressflow.api",
    "plan": "compressflow.api",
    "load": "compressflow.api",
    "RunResult": "compressflow.api",
    "RunReport": "compressflow.executor.scheduler",
    "Plan": "compressflow.executor.plan",
    "Selection": "compressflow.executor.graph",
    "Pipeline": "compressflow.dsl.model",
}

__all__ = ["Pipeline", "Plan", "RunReport", "RunResult", "Selection", "__version__", "load", "plan", "run"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from compressflow.api import RunResult, load, plan, run
    from compressflow.dsl.model import Pipeline
    from compressflow.executor.graph import Selection
    from compressflow.executor.plan import Plan
    from compressflow.executor.scheduler import RunReport


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'compressflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # NOTE: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
