"""An ``image_directory`` dataset read as a stream: the file list is split, the images are decoded as they pass.

Listing the folder reads no image: the files are listed (and labelled by their class folder) in the
order Keras' ``image_dataset_from_directory`` gives them, shuffled with the pipeline's seed, cut to
``limit`` and split by ``validation_fraction``, exactly as the arrays used to be. Each split is then
a tf.data stream of decoded, resized images: from the files themselves, or, in a run, from the
decoded copy :mod:`compressflow.data.decoded_images` keeps beside the cache (decoded once per
machine). Labels are known from the file list, so counting a split or reading its labels reads no image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressflow.data.streams import READ_BATCH, StreamedInputs, StreamSplits
from compressflow.errors import StageFailed

#: File name endings read as images (those of Keras' ``image_dataset_from_directory``).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
#: Images decoded together (tf.data decodes them in parallel, in order).
DECODE_BATCH = 64
#: Bytes of decoded images the training stream's shuffle buffer holds at most (the file order is shuffled
#: whole with the seed; the buffer reshuffles it every epoch).
SHUFFLE_BYTES = 32 << 20
#: Bytes of decoded images in one batch a stage reads without training (evaluation, counting, calibration).
READ_BYTES = 8 << 20


@dataclass(frozen=True)
class FolderSplit:
    """The files of each split of an image folder, in their order, and their labels (no image read)."""

    root: Path
    class_names: tuple[str, ...]
    train: tuple[str, ...]  # paths relative to ``root``
    validation: tuple[str, ...]
    train_labels: Any  # int32 arrays
    validation_labels: Any

    def files(self, split: str) -> tuple[str, ...]:
        return self.train if split == "train" else self.validation

    def labels(self, split: str):
        return self.train_labels if split == "train" else self.validation_labels


def list_images(root: Path) -> tuple[list[str], list[int], list[str]]:
    """Image files below each class folder of ``root`` (relative paths), their labels and the class names.

    The order is Keras': class folders sorted by name, then the folders below each one sorted, then
    the files in each sorted; a class's label is its folder's position among the sorted names.
    """
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    files, labels = [], []
    for label, name in enumerate(classes):
        for folder, _, names in sorted(os.walk(root / name, followlinks=True), key=lambda item: item[0]):
            for file_name in sorted(names):
                if file_name.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(Path(folder, file_name).relative_to(root).as_posix())
                    labels.append(label)
    return files, labels, classes


def split_folder(root: Path, *, seed: int, shuffle: bool, limit: int | None, validation_fraction: float,
                 name: str) -> FolderSplit:
    """The seeded split of the folder's file list (the order ``load_splits`` gives arrays)."""
    import numpy as np

    if not root.is_dir():
        raise StageFailed(f"dataset {name!r}: {root} is not a folder (an image_directory is a folder with one "
                          "sub-folder of images per class)")
    files, labels, classes = list_images(root)
    if not files:
        raise StageFailed(f"dataset {name!r}: no image ({', '.join(IMAGE_EXTENSIONS)}) in the class sub-folders "
                          f"of {root} (found {len(classes)} sub-folder{'s' if len(classes) != 1 else ''})")
    order = np.random.default_rng(seed).permutation(len(files)) if shuffle else np.arange(len(files))
    if limit:
        order = order[:limit]
    n_train = len(order) - int(round(len(order) * validation_fraction))
    labels = np.asarray(labels, dtype=np.int32)
    train, validation = order[:n_train], order[n_train:]
    return FolderSplit(root, tuple(classes), tuple(files[i] for i in train), tuple(files[i] for i in validation),
                       labels[train], labels[validation])


def decode_stream(root: Path, files, image_size: tuple[int, int], color_mode: str):
    """A tf.data stream of ``files``' images, decoded and resized as Keras does (float32, bilinear)."""
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    height, width = image_size
    channels = CHANNELS[color_mode]

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image = tf.image.resize(image, (height, width), method="bilinear")
        image.set_shape((height, width, channels))
        return image

    paths = [str(root / file) for file in files]
    return tf.data.Dataset.from_tensor_slices(tf.constant(paths, dtype=tf.string)).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def undecodable_file(root: Path, files, image_size: tuple[int, int], color_mode: str) -> str | None:
    """The first of ``files`` that does not decode as an image (None when all do)."""
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    for file in files:
        try:
            next(iter(decode_stream(root, [file], image_size, color_mode)))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError):
            return file
    return None


class ImageFolderSplits(StreamSplits):
    """The splits of an image folder: streams of images, with labels and counts known from the file list.

    A stage that needs whole arrays (LiteRT Quantizer's calibration, measuring a plain SavedModel)
    still gets them from ``x_train`` / ``x_val``: they are read from the stream into memory then.
    """

    def __init__(self, name: str, folder: FolderSplit, train, validation, *, scale: float | None,
                 shuffle: bool, seed: int):
        import numpy as np

        super().__init__(name, train, validation if len(folder.validation) else None, scale=scale,
                         shuffle=shuffle, seed=seed)
        self.folder = folder
        self._arrays: dict[str, tuple[Any, Any]] = {}
        self._labels_known = True  # NOTE: until a ``preprocess`` step, which may change labels or drop samples
        sample_bytes = 4 * int(np.prod(self.sample_shape))
        self.shuffle_buffer = max(1, min(self.shuffle_buffer, SHUFFLE_BYTES // sample_bytes))
        self.read_batch = max(1, min(READ_BATCH, READ_BYTES // sample_bytes))

    def validation_stream(self, batch_size: int = READ_BATCH):
        return super().validation_stream(min(batch_size, self.read_batch))

    def split_stream(self, split: str, batch_size: int = READ_BATCH):
        # NOTE: batches read to predict or count need not be as large as a stage asks: 256 images of 224x224x3
        # are 154 MB, held several times over by prefetching and the model's activations
        return super().split_stream(split, min(batch_size, self.read_batch))

    def transform(self, step) -> None:
        super().transform(step)
        self._labels_known, self._arrays = False, {}

    def count(self, split: str = "train") -> int:
        return len(self.folder.files(split)) if self._labels_known else super().count(split)

    @property
    def task_labels(self):
        """Every training label (from the folder names: no image is read)."""
        return self.folder.train_labels if self._labels_known else super().task_labels

    @property
    def num_classes(self) -> int:
        if not self._labels_known:
            return super().num_classes
        labels = [y for y in (self.folder.train_labels, self.folder.validation_labels) if len(y)]
        return int(max(int(y.max()) for y in labels) + 1) if labels else 0

    def evaluation_data(self, split: str):
        if not self._labels_known:
            return super().evaluation_data(split)
        labels = self.folder.labels(split)
        return StreamedInputs(self, split, len(labels)), labels

    def _whole(self, split: str):
        import numpy as np

        if split not in self._arrays:
            ds = self.split_stream(split)
            with self.reading():
                pairs = [] if ds is None else [(np.asarray(x), np.asarray(y)) for x, y in ds]
            x = (np.concatenate([x for x, _ in pairs]).astype(np.float32) if pairs
                 else np.zeros((0, *self.sample_shape), np.float32))
            y = np.concatenate([y for _, y in pairs]) if pairs else self.folder.labels(split)[:0]
            self._arrays[split] = (x, y)
        return self._arrays[split]

    x_train = property(lambda self: self._whole("train")[0])
    y_train = property(lambda self: self._whole("train")[1])
    x_val = property(lambda self: self._whole("validation")[0])
    y_val = property(lambda self: self._whole("validation")[1])
