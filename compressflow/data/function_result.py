"""What a ``python`` dataset's function returned, made into splits.

It may return arrays ``(x, y)`` (split by ``validation_fraction``, as always), a ``tf.data.Dataset``
of ``(x, y)`` pairs or batches, or a dict of splits ``{"train": ..., "validation": ...}``, each
arrays or a tf.data pipeline. A dict of arrays gives in-memory :class:`Splits`; anything with a
tf.data pipeline in it gives :class:`StreamSplits`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compressflow.errors import StageFailed

SPLIT_NAMES = ("train", "validation")


def is_array_pair(value: Any) -> bool:
    """Whether ``value`` is ``(x, y)`` arrays (not a tf.data pipeline, not a dict)."""
    from compressflow.data.streams import _is_tf_dataset

    return isinstance(value, (tuple, list)) and len(value) == 2 and not any(_is_tf_dataset(v) for v in value)


def result_splits(result: Any, dataset: Any, env: Any, name: str, arrays: Callable[..., Any]):
    """``arrays(x_train, y_train, x_val, y_val)`` (the caller's :class:`Splits`, which this module does not
    import: it sits below the dataset types) or :class:`StreamSplits`, from a function's tf.data pipeline or
    dict of splits."""
    from compressflow.data.streams import StreamSplits, _is_tf_dataset, as_stream

    where = f"dataset {name!r} (function {dataset.function})"
    if _is_tf_dataset(result):
        result = {"train": result}
    if not isinstance(result, dict):
        raise StageFailed(f"{where} returned a {type(result).__name__}; return arrays (x, y), a tf.data.Dataset "
                          "of (x, y), or a dict {'train': ..., 'validation': ...}")
    unknown = sorted(set(result) - set(SPLIT_NAMES))
    if unknown or "train" not in result:
        raise StageFailed(f"{where} returned a dict with keys {sorted(result)}; it must have 'train' and may have "
                          "'validation' (nothing else)")
    if "validation" not in result and dataset.validation_fraction > 0:
        raise StageFailed(f"{where} returned no 'validation' split, and a stream cannot be split by "
                          f"validation_fraction ({dataset.validation_fraction}) without reading it whole; return "
                          "{'train': ..., 'validation': ...}, or set `validation_fraction: 0` on the dataset to "
                          "train without validation")
    if all(is_array_pair(value) for value in result.values()):
        return arrays(*_array_splits(result, dataset, env, name, where))
    return StreamSplits(name, as_stream(result["train"], f"{where} 'train'"),
                        None if "validation" not in result else as_stream(result["validation"],
                                                                          f"{where} 'validation'"),
                        scale=dataset.scale, limit=dataset.limit, shuffle=dataset.shuffle, seed=env.seed)


def _array_splits(result: dict, dataset: Any, env: Any, name: str, where: str) -> tuple:
    import numpy as np

    from compressflow.data.checks import check_finite

    parts, checked = {}, {}
    for split in SPLIT_NAMES:
        x, y = result.get(split, (np.zeros((0,), np.float32), np.zeros((0,), np.int64)))
        # NOTE: dict features (a model with several inputs) and dict labels (several outputs) stay dicts of arrays
        x, y = _each(x, lambda v: np.asarray(v, dtype="float32")), _each(y, np.asarray)
        count = _length(x)
        if count != _length(y):
            raise StageFailed(f"{where} '{split}' has {count} inputs but {_length(y)} labels")
        order = np.arange(count)
        if split == "train":
            if dataset.shuffle:
                order = np.random.default_rng(env.seed).permutation(count)
            if dataset.limit:
                order = order[:dataset.limit]
        x, y = _each(x, lambda v: v[order]), _each(y, lambda v: v[order])
        if dataset.scale is not None and count:
            x = _each(x, lambda v: (v * dataset.scale).astype("float32"))
        parts[split] = (x, y)
        for key in sorted(x) if isinstance(x, dict) else [None]:
            labels = y if not isinstance(y, dict) else np.zeros((len(order),), np.int64)
            checked[split if key is None else f"{split} {key!r}"] = (x if key is None else x[key], labels, order)
        for key in sorted(y) if isinstance(y, dict) else []:
            checked[f"{split} {key!r}"] = (np.zeros((len(order),), np.float32), y[key], order)
    check_finite(name, checked)
    return (*parts["train"], *parts["validation"])


def _each(value: Any, step: Callable[[Any], Any]) -> Any:
    """``step`` on an array, or on each array of a dict of arrays (by input or output name)."""
    return {key: step(item) for key, item in value.items()} if isinstance(value, dict) else step(value)


def _length(value: Any) -> int:
    """Samples in an array or a dict of arrays (which must agree)."""
    if not isinstance(value, dict):
        return len(value)
    lengths = {key: len(item) for key, item in value.items()}
    if len(set(lengths.values())) > 1:
        raise StageFailed(f"the arrays of a dict disagree on the number of samples: {lengths}")
    return next(iter(lengths.values()), 0)
