"""Whether the pipeline being run lets the code in a model run when a stage loads it from its input.

A Lambda layer carries Python bytecode, which tf-keras runs while loading unless ``safe_mode`` is on.
Whether it may run is decided by the pipeline that is running, never by the cache entry the model
is read from: anyone who can write to a shared cache could write an entry whose ``artifact.json``
says ``trusted``. A stage's model code is trusted when a load stage upstream of it (in the pipeline
as declared) says ``trust: true``, or is a ``builder`` (whose code the pipeline imports and runs
anyway). The executor sets this around each stage's ``run`` (:func:`declared_by`); outside a
pipeline (a stage run by hand) nothing is trusted.

This module does not import TensorFlow.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterable, Iterator

_trusted: contextvars.ContextVar[bool] = contextvars.ContextVar("compressflow_model_code_trusted", default=False)


def trusts_code(lineage: Iterable[dict[str, Any]]) -> bool:
    """Whether stages upstream (a task's lineage: ``{"type", "config"}`` each) let model code run."""
    for item in lineage:
        config = item.get("config") or {}
        if item.get("type") == "load" and (config.get("trust") is True or config.get("builder")):
            return True
    return False


@contextlib.contextmanager
def declared_by(lineage: Iterable[dict[str, Any]]) -> Iterator[bool]:
    """Within the block, model code is trusted as the stages of ``lineage`` declare; gives whether it is."""
    token = _trusted.set(trusts_code(lineage))
    try:
        yield _trusted.get()
    finally:
        _trusted.reset(token)


def code_trusted() -> bool:
    """Whether the running stage's pipeline lets the code in its input models run (see :func:`declared_by`)."""
    return _trusted.get()
