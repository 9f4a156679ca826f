"""Model measurements that do not depend on the model format: accuracy, size, sparsity, latency.

Weight statistics take any objects with ``layer``, ``values``, ``is_kernel`` and
``zero_mask()`` (Keras weights and TFLite constant tensors alike). Sparsity and
unique-value counts are taken over *kernels* (arrays of rank 2 or more: what
pruning and clustering act on); parameter counts over every parameter array.
"""

from __future__ import annotations

import gzip
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np


def accuracy(scores: np.ndarray, labels: np.ndarray, top_k: Iterable[int] = (1,)) -> dict[str, float]:
    """``accuracy`` (top-1) and ``top{k}_accuracy`` for each other k; labels as ints or one-hot."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"expected scores of shape (samples, classes) for {len(labels)} samples, "
                         f"got {scores.shape}")
    result = {"accuracy": float(np.mean(scores.argmax(axis=1) == labels))}
    ranked = np.argsort(-scores, axis=1, kind="stable")
    for k in sorted(set(top_k) - {1}):
        if k > scores.shape[1]:
            raise ValueError(f"top-{k} accuracy asked for a model with {scores.shape[1]} classes")
        result[f"top{k}_accuracy"] = float(np.mean((ranked[:, :k] == labels[:, None]).any(axis=1)))
    return result


def predicted_classes(scores: np.ndarray) -> dict[str, Any]:
    """The class a classifier predicts most often and the share of samples it predicts it for.

    ``{}`` for outputs that are not class scores (one column, or not 2-D).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 2 or len(scores) == 0:
        return {}
    counts = np.bincount(scores.argmax(axis=1), minlength=scores.shape[1])
    top = int(counts.argmax())
    return {"top_predicted_class": top, "top_predicted_share": float(counts[top] / len(scores))}


def file_sizes(path: Path) -> dict[str, int]:
    """Size of a model file and of its gzip compression (level 9, no timestamp).

    A folder (a SavedModel) counts as its files' bytes, one after another in name order.
    """
    path = Path(path)
    if path.is_dir():
        data = b"".join(item.read_bytes() for item in sorted(p for p in path.rglob("*") if p.is_file()))
    else:
        data = path.read_bytes()
    return {"file_bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


def weight_statistics(tensors: Iterable[Any]) -> dict[str, Any]:
    """Parameter counts, sparsity and unique kernel values, globally and per layer."""
    layers: dict[str, dict[str, Any]] = {}
    kernel_values: dict[str, list[np.ndarray]] = {}
    params = nonzero = kernel_params = kernel_zeros = 0
    for tensor in tensors:
        zeros = int(np.count_nonzero(tensor.zero_mask()))
        size = int(tensor.values.size)
        entry = layers.setdefault(tensor.layer, {"params": 0, "nonzero_params": 0,
                                                 "kernel_params": 0, "kernel_zeros": 0})
        entry["params"] += size
        entry["nonzero_params"] += size - zeros
        params += size
        nonzero += size - zeros
        if tensor.is_kernel:
            entry["kernel_params"] += size
            entry["kernel_zeros"] += zeros
            kernel_params += size
            kernel_zeros += zeros
            kernel_values.setdefault(tensor.layer, []).append(tensor.values.reshape(-1))
    per_layer = {}
    for name, entry in layers.items():
        values = kernel_values.get(name)
        per_layer[name] = {
            "params": entry["params"],
            "nonzero_params": entry["nonzero_params"],
            "sparsity": _ratio(entry["kernel_zeros"], entry["kernel_params"]),
            "unique_weights": int(np.unique(np.concatenate(values)).size) if values else None,
        }
    return {"params": params, "nonzero_params": nonzero, "kernel_params": kernel_params,
            "sparsity": _ratio(kernel_zeros, kernel_params), "layers": per_layer}


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def time_calls(call: Callable[[], Any], *, warmup: int, runs: int) -> dict[str, float]:
    """Median and 90th-percentile wall time of ``call`` in ms, after untimed warm-up calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return {"latency_ms_median": statistics.median(times),
            "latency_ms_p90": float(np.percentile(times, 90))}
