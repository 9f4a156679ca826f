"""Checks on loaded dataset arrays: NaN or infinite values are refused before any stage uses them.

NOTE: NaN in the inputs does not always show as a NaN training loss: on TF 2.21 the loss of a
small CNN stayed finite while its weights became NaN. So the data is checked where it is loaded,
with the samples and positions named, instead of leaving it to the training loss.
"""

from __future__ import annotations

from typing import Any

from compressflow.errors import StageFailed

SHOWN = 5  # sample indices and positions named in a message


class DataError(StageFailed):
    """A dataset holds values no stage can use (NaN or infinite inputs or labels)."""


def check_finite(name: str, splits: dict[str, tuple[Any, Any, Any]]) -> None:
    """Fail when the arrays of dataset ``name`` hold NaN or infinite values.

    ``splits`` maps a split's name (``train``, ``validation``) to ``(x, y, sample_ids)``;
    ``sample_ids`` are the indices of its samples in the dataset as loaded (before shuffling),
    so that the message names samples the user can find in their own data.
    """
    import numpy as np

    problems = []
    for split, (x, y, sample_ids) in splits.items():
        for what, array in (("inputs", x), ("labels", y)):
            array = np.asarray(array)
            if len(array) == 0 or not np.issubdtype(array.dtype, np.inexact):
                continue
            bad = ~np.isfinite(array)
            if bad.any():
                problems.append(f"{split} split: " + _describe(what, array, bad, np.asarray(sample_ids)))
    if problems:
        raise DataError(f"dataset {name!r} holds values no model can use; " + "; ".join(problems)
                        + ". Fix the step that produces the data (or drop those samples, or replace the values, "
                          "e.g. with numpy.nan_to_num) and run again.")


def _describe(what: str, array: Any, bad: Any, sample_ids: Any) -> str:
    import numpy as np

    per_sample = bad.reshape(len(bad), -1).any(axis=1)
    samples = sample_ids[np.flatnonzero(per_sample)]
    kinds = " and ".join(kind for kind, found in (("NaN", np.isnan(array).any()), ("inf", np.isinf(array).any()))
                         if found)
    text = (f"{what} hold {kinds} in {len(samples)} of {len(bad)} samples "
            f"(samples {_first(int(i) for i in np.sort(samples))} of the dataset as loaded)")
    if bad.ndim > 1:
        positions = np.argwhere(bad.any(axis=0))
        listed = _first(str(tuple(int(i) for i in p)) for p in positions)
        text += f", at {len(positions)} feature position{'s' if len(positions) != 1 else ''}: {listed}"
    return text


def _first(items) -> str:
    items = list(items)
    shown = ", ".join(str(item) for item in items[:SHOWN])
    return shown + (f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else "")
