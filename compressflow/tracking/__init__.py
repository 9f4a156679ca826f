"""Experiment tracking of runs (``compressflow run --track mlflow``), behind install extras.

A tracker gets the finished run's record (see :mod:`compressflow.runs.records`) and the cache,
and returns what to remember about where it logged the run. Trackers are imported only
when asked for.
"""

from __future__ import annotations

import importlib.util

from compressflow.errors import UsageError

TRACKERS = ("mlflow",)


def open_tracker(name: str | None, pipeline):
    """The tracker called ``name`` for ``pipeline`` (None for none); a usage error when it
    is unknown or its library is not installed, before anything runs."""
    if not name:
        return None
    if name not in TRACKERS:
        raise UsageError(f"unknown tracker {name!r}; use one of: {', '.join(TRACKERS)}")
    if importlib.util.find_spec("mlflow") is None:
        raise UsageError("--track mlflow needs MLflow, which is not installed; "
                         "install it with: pip install 'compressflow[mlflow]'")
    from compressflow.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(pipeline)


def check_tensorboard(plan) -> None:
    """A usage error, before anything runs, when a stage that will run asks for TensorBoard
    logs (``tensorboard: true``) and the ``tensorboard`` package is not installed."""
    asking = [name for name in plan.to_run() if getattr(plan.stages[name].stage, "tensorboard", False)]
    if asking and importlib.util.find_spec("tensorboard") is None:
        raise UsageError(f"{', '.join(asking)} {'asks' if len(asking) == 1 else 'ask'} for TensorBoard logs "
                         "(tensorboard: true) but TensorBoard is not installed; install it with: "
                         "pip install 'compressflow[tensorboard]'")
