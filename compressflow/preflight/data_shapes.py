"""A dataset's sample shape and class count, found cheaply (no TensorFlow, no big arrays read).

Only what is cheap to know is known: scikit-learn's bundled sets are loaded (small), a ``.npz``
file's input shape is read from the array's header and its labels are loaded (labels are small),
an image folder's shape follows from its config and its classes from its sub-folders. Anything
else (a ``python`` function, TFDS) is left unknown: ``None``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

# NOTE: a labels array above this many bytes is not read just to count classes.
MAX_LABEL_BYTES = 64 * 1024 * 1024
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


@dataclass(frozen=True)
class DataShape:
    """A sample's shape (without the batch axis) and, for integer labels, the number of classes."""

    sample: tuple[int, ...]
    classes: int | None = None


def data_shape(dataset, env) -> DataShape | None:
    """The :class:`DataShape` of a dataset config, or None when it is not cheap to know."""
    kind = getattr(dataset, "type", None)
    try:
        if kind in ("sklearn_digits", "sklearn_diabetes"):
            x, y = dataset.load_arrays(env)
            return DataShape(tuple(x.shape[1:]), _classes(y))
        if kind == "npz":
            return _npz_shape(dataset, env)
        if kind == "image_directory":
            folder = env.resolve_path(dataset.path, what="dataset path")
            classes = sum(1 for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else None
            return DataShape((*dataset.image_size, CHANNELS[dataset.color_mode]), classes or None)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # NOTE: a dataset that cannot be read fails its stage with a clear message
    return None


def _classes(labels) -> int | None:
    import numpy as np

    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or not len(labels):
        return None
    return int(labels.max()) + 1


def _npz_shape(dataset, env) -> DataShape | None:
    import numpy as np

    path = env.resolve_path(dataset.path, what="dataset path")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        member = f"{dataset.x_key}.npy"
        if member not in names:
            return None
        with archive.open(member) as stream:
            version = np.lib.format.read_magic(stream)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(stream)
        classes = None
        label_member = f"{dataset.y_key}.npy"
        if label_member in names and archive.getinfo(label_member).file_size <= MAX_LABEL_BYTES:
            with np.load(path, allow_pickle=False) as data:
                classes = _classes(data[dataset.y_key])
    return DataShape(tuple(int(n) for n in shape[1:]), classes)
