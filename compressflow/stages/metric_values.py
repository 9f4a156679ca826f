"""The user's numpy metric functions called on predictions: shapes aligned, one float out."""

from __future__ import annotations

from typing import Callable

import numpy as np

from compressflow.errors import StageFailed


def align(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``y_pred`` in ``y_true``'s shape when they hold as many values (a one-unit output as ``(samples,)``)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_pred.shape != y_true.shape and y_pred.size == y_true.size:
        return y_pred.reshape(y_true.shape)
    return y_pred


def call_metric(function: Callable, y_true: np.ndarray, y_pred: np.ndarray, key: str) -> float:
    """The user's numpy ``metric(y_true, y_pred)`` as one float (the mean, when it gives one per sample)."""
    y_true = np.asarray(y_true)
    value = function(y_true, align(y_true, y_pred))
    try:
        return float(np.mean(np.asarray(value, dtype=np.float64)))
    except (TypeError, ValueError) as exc:
        raise StageFailed(f"metric {key!r} returned {type(value).__name__} {value!r}, not a number") from exc
