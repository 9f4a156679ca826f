"""Metrics computed from a model's predictions, the same for Keras and TFLite models (what evaluate reports).

The task decides the defaults (:data:`compressflow.stages.tasks.TASK_METRICS`): accuracy and top-k for
classification, MAE / MSE / R² for regression, binary accuracy and F1 for multilabel. The user's own
``metrics:`` come on top: tf-keras metrics are fed the predictions, ``module:function`` metrics get
numpy arrays. Only the user's tf-keras metrics import TensorFlow.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from compressflow.errors import StageFailed
from compressflow.stages.measure import accuracy
from compressflow.stages.metric_values import align, call_metric
from compressflow.stages.tasks import CLASSIFICATION, MULTILABEL, REGRESSION


def decision_threshold(scores: np.ndarray, from_logits: bool | None) -> float:
    """Where a score becomes a 1: 0 for logits, 0.5 for probabilities (guessed from the range when unknown)."""
    if from_logits is None:
        from_logits = bool(scores.size) and (scores.min() < 0.0 or scores.max() > 1.0)
    return 0.0 if from_logits else 0.5


def classification_metrics(scores: np.ndarray, labels: np.ndarray, top_k: Iterable[int],
                           from_logits: bool | None = None) -> dict[str, float]:
    """``accuracy`` and ``top{k}_accuracy``; a model with one output is a binary classifier (thresholded)."""
    scores = np.asarray(scores)
    if scores.ndim == 2 and scores.shape[1] == 1:
        if sorted(set(top_k) - {1}):
            raise ValueError("top-k accuracy asked for a model with one output (a binary classifier)")
        decisions = (scores[:, 0] > decision_threshold(scores, from_logits)).astype(np.int64)
        return {"accuracy": float(np.mean(decisions == np.asarray(labels).reshape(-1)))}
    return accuracy(scores, labels, top_k)


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float | None]:
    """``mae``, ``mse`` and ``r2`` (the mean over targets of several; None when the targets do not vary)."""
    targets = np.asarray(targets, dtype=np.float64)
    predictions = align(targets, np.asarray(predictions, dtype=np.float64))
    if predictions.shape != targets.shape:
        raise ValueError(f"the model gives predictions of shape {predictions.shape[1:]} for targets of shape "
                         f"{targets.shape[1:]}")
    errors = predictions - targets
    columns = targets.reshape(len(targets), -1)
    residual = (errors.reshape(len(targets), -1) ** 2).sum(axis=0)
    total = ((columns - columns.mean(axis=0)) ** 2).sum(axis=0)
    r2 = float(np.mean(1.0 - residual / total)) if len(targets) > 1 and np.all(total > 0) else None
    return {"mae": float(np.mean(np.abs(errors))), "mse": float(np.mean(errors ** 2)), "r2": r2}


def multilabel_metrics(scores: np.ndarray, labels: np.ndarray, from_logits: bool | None = None) -> dict[str, float]:
    """``binary_accuracy`` (share of right label decisions) and ``f1`` (micro-averaged over every decision)."""
    labels = np.asarray(labels).astype(bool)
    scores = align(labels, np.asarray(scores))
    if scores.shape != labels.shape:
        raise ValueError(f"the model gives scores of shape {scores.shape[1:]} for labels of shape {labels.shape[1:]}")
    decided = scores > decision_threshold(scores, from_logits)
    true_positives = int(np.sum(decided & labels))
    predicted, actual = int(decided.sum()), int(labels.sum())
    f1 = 2 * true_positives / (predicted + actual) if predicted + actual else 1.0
    return {"binary_accuracy": float(np.mean(decided == labels)), "f1": float(f1)}


def task_metrics(task: str, scores: np.ndarray, labels: np.ndarray, *, top_k: Iterable[int] = (1,),
                 from_logits: bool | None = None) -> dict[str, Any]:
    """The default metrics of ``task`` from the predictions."""
    if task == REGRESSION:
        return regression_metrics(scores, labels)
    if task == MULTILABEL:
        return multilabel_metrics(scores, labels, from_logits)
    if task == CLASSIFICATION:
        return classification_metrics(scores, labels, top_k, from_logits)
    raise ValueError(f"unknown task {task!r}")


def output_metrics(task_of, scores: dict[str, np.ndarray], labels: dict[str, np.ndarray], *,
                   top_k: Iterable[int] = (1,), from_logits: bool | None = None) -> dict[str, Any]:
    """The default metrics of each output of a model with several, keyed ``<output>/<metric>``.

    ``task_of(name, scores, labels)`` gives the task of one output; ``labels`` are by output name.
    """
    missing = sorted(set(scores) - set(labels))
    if missing:
        raise ValueError(f"the model's outputs are {sorted(scores)}; the labels give {sorted(labels)} "
                         f"(nothing for {missing})")
    results: dict[str, Any] = {}
    for name in sorted(scores):
        task = task_of(name, scores[name], labels[name])
        measured = task_metrics(task, scores[name], labels[name],
                                top_k=top_k if task == CLASSIFICATION else (1,), from_logits=from_logits)
        results.update({f"{name}/{key}": value for key, value in measured.items()})
        results[f"{name}/task"] = task
    return results


def output_task(scores: np.ndarray, labels: np.ndarray) -> str:
    """The task of one output from its labels and scores: integer labels and several scores are a classification."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    several = scores.ndim == 2 and scores.shape[1] > 1
    if np.issubdtype(labels.dtype, np.integer) and (several or set(np.unique(labels)) <= {0, 1}):
        return CLASSIFICATION
    return REGRESSION


def user_metrics(specs, scores: np.ndarray, labels: np.ndarray, *, task: str,
                 from_logits: bool | None = None) -> dict[str, float]:
    """The user's ``metrics:`` on the predictions, by :func:`~compressflow.stages.losses.metric_key`."""
    from compressflow.stages import losses

    results: dict[str, float] = {}
    keras_specs = []
    for spec in specs or ():
        name, key = losses.spec_name(spec), losses.metric_key(spec)
        if losses.is_function(name):
            function = losses.import_function(name, "metric")
            try:
                results[key] = call_metric(function, labels, scores, key)
            except StageFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's function: one clear error
                raise StageFailed(f"metric {name!r} failed: {type(exc).__name__}: {exc}") from exc
        else:
            keras_specs.append(spec)
    if keras_specs:
        results.update(_keras_metrics(keras_specs, scores, labels, task=task, from_logits=from_logits))
    return results


def _keras_metrics(specs, scores: np.ndarray, labels: np.ndarray, *, task: str,
                   from_logits: bool | None) -> dict[str, float]:
    from compressflow.stages.losses import build_metrics

    scores = np.asarray(scores, dtype=np.float32)
    labels = np.asarray(labels)
    if scores.ndim == 2 and scores.shape[1] == 1 and labels.ndim == 1:
        labels = labels[:, None]  # NOTE: R2Score and others want (samples, outputs) on both sides
    logits = decision_threshold(scores, from_logits) == 0.0
    results = {}
    for metric in build_metrics(specs, task=task, one_hot=labels.ndim == 2 and labels.shape[1] > 1 and
                                task == CLASSIFICATION, output_units=scores.shape[-1] if scores.ndim > 1 else 1,
                                from_logits=logits):
        metric.update_state(labels.astype(np.float32) if task != CLASSIFICATION else labels, scores)
        results[metric.name] = float(np.mean(np.asarray(metric.result())))
    return results
