"""What a dataset's labels ask of a model: its task, and so the default loss and the metrics that apply.

A dataset declares ``task:`` (``classification``, ``multilabel``, ``regression``) or it is inferred
from the labels (and the model's output width): see :func:`infer_task`. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compressflow.stages.keras_names import MAXIMIZE, MINIMIZE

CLASSIFICATION, MULTILABEL, REGRESSION = "classification", "multilabel", "regression"
TASKS = (CLASSIFICATION, MULTILABEL, REGRESSION)

#: The loss a training stage uses when it names none.
DEFAULT_LOSS = {CLASSIFICATION: "sparse_categorical_crossentropy", MULTILABEL: "binary_crossentropy",
                REGRESSION: "mean_squared_error"}
#: The metrics a training stage reports when it names none.
DEFAULT_TRAINING_METRICS = {CLASSIFICATION: ("accuracy",), MULTILABEL: ("binary_accuracy",), REGRESSION: ("mae",)}
#: What evaluate measures from the predictions for each task (besides ``top{k}_accuracy`` and the user's).
TASK_METRICS: dict[str, dict[str, str]] = {
    CLASSIFICATION: {"accuracy": MAXIMIZE},
    MULTILABEL: {"binary_accuracy": MAXIMIZE, "f1": MAXIMIZE},
    REGRESSION: {"mae": MINIMIZE, "mse": MINIMIZE, "r2": MAXIMIZE},
}
#: The metric a table shows first and compares with the baseline.
PRIMARY_METRIC = {CLASSIFICATION: "accuracy", MULTILABEL: "binary_accuracy", REGRESSION: "mae"}

#: What evaluate measures of every model, whatever the task.
MODEL_MEASUREMENTS: dict[str, str] = {
    "params": MINIMIZE, "nonzero_params": MINIMIZE, "kernel_params": MINIMIZE, "sparsity": MAXIMIZE,
    "file_bytes": MINIMIZE, "gzip_bytes": MINIMIZE,
}
LATENCY_MEASUREMENTS: dict[str, str] = {"latency_ms_median": MINIMIZE, "latency_ms_p90": MINIMIZE}
#: Figures against the baseline (only with one).
BASELINE_MEASUREMENTS: dict[str, str] = {"compression": MAXIMIZE, "gzip_compression": MAXIMIZE}
SPEEDUP: dict[str, str] = {"speedup": MAXIMIZE}


@dataclass(frozen=True)
class TaskChoice:
    """The task of a dataset, and how it was decided (for the log)."""

    task: str
    why: str
    declared: bool


def infer_task(labels: Any, output_units: int | None = None) -> TaskChoice:
    """The task the labels (and the model's last dimension) imply.

    2-D labels of 0s and 1s: ``classification`` when every row has one 1 (one-hot), else ``multilabel``.
    Float labels with non-integer values, or float labels for a model with one output: ``regression``.
    Integer labels, and integer-valued float labels for a model with several outputs: ``classification``.
    Other 2-D labels (several real-valued targets): ``regression``.
    """
    import numpy as np

    y = np.asarray(labels)
    if y.size == 0:
        return TaskChoice(CLASSIFICATION, "no labels to look at", False)
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        return TaskChoice(CLASSIFICATION, f"labels of type {y.dtype}", False)
    if y.ndim == 2 and y.shape[1] > 1:
        if np.isin(y, (0, 1)).all():
            if (y.sum(axis=1) == 1).all():
                return TaskChoice(CLASSIFICATION, "one-hot labels", False)
            return TaskChoice(MULTILABEL, "2-D labels of 0s and 1s, some rows with several 1s", False)
        return TaskChoice(REGRESSION, f"2-D real-valued labels ({y.shape[1]} targets)", False)
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.mod(y, 1) == 0):
            return TaskChoice(REGRESSION, "float labels with non-integer values", False)
        if output_units == 1:
            return TaskChoice(REGRESSION, "float labels and a model with one output", False)
        return TaskChoice(CLASSIFICATION, "float labels that are whole numbers", False)
    return TaskChoice(CLASSIFICATION, "integer labels", False)


def dataset_task(dataset: Any, labels: Any, output_units: int | None = None) -> TaskChoice:
    """The dataset's declared ``task:``, or the one its labels imply."""
    declared = getattr(dataset, "task", None)
    if declared:
        return TaskChoice(declared, "declared by the dataset", True)
    return infer_task(labels, output_units)


def describe(choice: TaskChoice, dataset_name: str) -> str:
    """A log line: ``task: regression (dataset 'x': float labels ...; set `task:` on it to choose)``."""
    if choice.declared:
        return f"task: {choice.task} (declared by dataset {dataset_name!r})"
    return (f"task: {choice.task} (inferred for dataset {dataset_name!r}: {choice.why}; "
            "set `task:` on the dataset to choose)")


def task_metric_goals(task: str) -> dict[str, str]:
    """What evaluate measures from predictions for ``task``, with which way is better."""
    return dict(TASK_METRICS[task])


def any_task_metrics() -> set[str]:
    """Every metric some task measures by default."""
    return {name for metrics in TASK_METRICS.values() for name in metrics}


def output_units(model: Any) -> int | None:
    """The width of a Keras model's last output dimension (None when it has several outputs)."""
    shape = getattr(model, "output_shape", None)
    if not isinstance(shape, tuple) or not shape:
        return None
    return shape[-1] if isinstance(shape[-1], int) else None


#: Names ``select`` has always taken for measurements.
MEASUREMENT_ALIASES = {"gzip_size": "gzip_bytes", "size": "file_bytes", "latency_ms": "latency_ms_median"}


def metric_name(name: str) -> str:
    """The name evaluate reports ``name`` under: ``mae`` for ``mean_absolute_error``, ``gzip_bytes`` for
    ``gzip_size``; other names are returned as they are."""
    from compressflow.stages.keras_names import is_accuracy, metric_entry

    if is_accuracy(name):
        return "accuracy"
    entry = metric_entry(name)
    return entry.key if entry is not None else MEASUREMENT_ALIASES.get(name, name)


def measured_metrics(task: str | None, *, user: dict[str, str | None] | None = None, top_k=(1,),
                     latency: bool = True, baseline: bool = True) -> dict[str, str | None]:
    """Every metric evaluate reports for ``task`` (every task's when None), with which way is better.

    ``user`` holds the evaluate stage's own ``metrics:`` (name -> goal, None when unknown).
    """
    found: dict[str, str | None] = {}
    for name in (TASKS if task is None else (task,)):
        found.update(TASK_METRICS[name])
    if task in (None, CLASSIFICATION):
        found.update({f"top{k}_accuracy": MAXIMIZE for k in sorted(set(top_k) - {1})})
    found.update(user or {})
    found.update(MODEL_MEASUREMENTS)
    if latency:
        found.update(LATENCY_MEASUREMENTS)
    if baseline:
        found.update(BASELINE_MEASUREMENTS)
        if latency:
            found.update(SPEEDUP)
    return found


def goal_of(name: str, user: dict[str, str | None] | None = None) -> str | None:
    """Which way ``name`` (a measurement, a task metric or a tf-keras metric) is better, when known."""
    name = metric_name(name)
    if user and name in user:
        return user[name]
    known = measured_metrics(None, user=None)
    if name in known:
        return known[name]
    if name.startswith("top") and name.endswith("_accuracy"):
        return MAXIMIZE
    from compressflow.stages.keras_names import METRICS

    return next((metric.goal for metric in METRICS.values() if metric.key == name), None)
