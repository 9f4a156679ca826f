"""Dataset types (entries under ``datasets:``) and the deterministic train/validation split.

Loading returns numpy arrays, or streams (``image_directory``, ``tfrecord``, tf.data from a ``python``
function); TensorFlow is imported only inside the loading methods. Fingerprints are cheap and import
nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from compressflow.data.preprocessing import AugmentSpec, FunctionSpec, function_of
from compressflow.errors import StageFailed
from compressflow.fingerprints import distribution_version
from compressflow.stages.base import Dataset, Environment, tree_sha256
from compressflow.stages.code_sets import TF_CODE
from compressflow.stages.registry import register_dataset
from compressflow.user_modules import find_module_source, module_source_fingerprint  # noqa: F401 - also from here


class _Preprocessing(Dataset):
    # NOTE: load_splits and the TensorFlow readers (image_directory, tfds) go through tfutil.
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE
    module_fields: ClassVar[dict[str, str]] = {"preprocess": "preprocess function", "augment": "augment function"}

    scale: float | None = Field(None, gt=0, description="Multiply inputs by this (e.g. 1/255).")
    shuffle: bool = Field(True, description="Shuffle before splitting (seeded).")
    limit: int | None = Field(None, ge=1, description="Use only the first N samples (after shuffling).")
    preprocess: FunctionSpec | None = Field(
        None, description="`module:function` applied to `(x, y)` of every split inside tf.data (after `scale`), "
                          "or `{function: module:function, args: {...}, batched: true}` to call it on batches; "
                          "see docs/data.md.")
    augment: AugmentSpec | None = Field(
        None, description="Applied to the training batches only (never to evaluation, validation or "
                          "calibration), seeded from the stage's seed: a function like `preprocess`, or a list of "
                          "Keras layers, e.g. `[{random_flip: horizontal}, {random_rotation: 0.1}]`.")

    # NOTE: left out of the dump when unset, so keys of datasets without them stay what they were
    @model_serializer(mode="wrap")
    def _without_unset_steps(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        for field in ("preprocess", "augment"):
            if isinstance(dumped, dict) and dumped.get(field) is None:
                dumped.pop(field, None)
        return dumped

    def key_fingerprint(self, env: Environment) -> dict[str, Any]:
        """:meth:`fingerprint`, with the source of the ``preprocess`` and ``augment`` modules when there are any."""
        found = self.fingerprint(env)
        for field in ("preprocess", "augment"):
            spec = function_of(getattr(self, field))
            if spec is not None:
                found = {**found, field: module_source_fingerprint(spec.partition(":")[0], env.pipeline_dir)}
        return found


@register_dataset
class SklearnDigits(_Preprocessing):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 samples, 10 classes); offline."""

    type: Literal["sklearn_digits"] = "sklearn_digits"
    layout: Literal["image", "flat"] = Field("image", description="`image`: (8, 8, 1); `flat`: (64,).")
    scale: float | None = Field(1 / 16, gt=0, description="Pixel values 0..16 are multiplied by this.")

    def fingerprint(self, env: Environment) -> dict[str, Any]:
        return {"source": "sklearn.datasets.load_digits", "scikit-learn": distribution_version("scikit-learn")}

    def load_arrays(self, env: Environment):
        import numpy as np
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = digits.images.astype("float32")
        x = x[..., None] if self.layout == "image" else x.reshape(len(x), -1)
        return x, digits.target.astype(np.int64)


@register_dataset
class SklearnDiabetes(_Preprocessing):
    """scikit-learn's bundled diabetes data (442 patients, 10 features, disease progression after a year): a
    regression; offline."""

    type: Literal["sklearn_diabetes"] = "sklearn_diabetes"
    standardize: bool = Field(True, description="Give each feature mean 0 and standard deviation 1.")
    target_scale: float = Field(0.01, gt=0, description="The target (25..346) is multiplied by this.")

    def fingerprint(self, env: Environment) -> dict[str, Any]:
        return {"source": "sklearn.datasets.load_diabetes", "scikit-learn": distribution_version("scikit-learn")}

    def load_arrays(self, env: Environment):
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True, scaled=False)
        if self.standardize:
            x = (x - x.mean(axis=0)) / x.std(axis=0)
        return x.astype("float32"), (y * self.target_scale).astype("float32")


@register_dataset
class NpzDataset(_Preprocessing):
    """Arrays from a `.npz` file (keys `x` and `y` by default)."""

    type: Literal["npz"] = "npz"
    path_fields: ClassVar[dict[str, str]] = {"path": "dataset path"}
    path: str = Field(description="The .npz file, relative to the pipeline file.")
    x_key: str = "x"
    y_key: str = "y"

    def fingerprint(self, env: Environment) -> dict[str, Any]:
        path = env.resolve_path(self.path, what="dataset path")
        return {"sha256": tree_sha256(path) if path.exists() else "missing"}

    def load_arrays(self, env: Environment):
        import numpy as np

        path = env.resolve_path(self.path, what="dataset path")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (self.x_key, self.y_key) if k not in data.files]
            if missing:
                raise KeyError(f"{path} has no array {missing[0]!r} (it has {', '.join(data.files)})")
            return data[self.x_key].astype("float32"), data[self.y_key]


@register_dataset
class ImageDirectory(_Preprocessing):
    """Images in one sub-folder per class (labelled as Keras' `image_dataset_from_directory` does), streamed from
    disk and decoded once per machine."""

    type: Literal["image_directory"] = "image_directory"
    path_fields: ClassVar[dict[str, str]] = {"path": "dataset path"}
    path: str = Field(description="Folder with one sub-folder per class.")
    image_size: tuple[int, int] = Field((64, 64), description="Images are resized to [height, width].")
    color_mode: Literal["grayscale", "rgb", "rgba"] = "rgb"
    scale: float | None = Field(1 / 255, gt=0)

    def fingerprint(self, env: Environment) -> dict[str, Any]:
        path = env.resolve_path(self.path, what="dataset path")
        return {"sha256": tree_sha256(path) if path.exists() else "missing"}

    def load_arrays(self, env: Environment):
        """Every image (in Keras' order, not shuffled) as one float32 array, and the labels: the whole folder."""
        import numpy as np

        from compressflow.data.image_folder import decode_stream, list_images

        path = env.resolve_path(self.path, what="dataset path")
        files, labels, _ = list_images(path)
        batches = [np.asarray(x) for x in decode_stream(path, files, self.image_size, self.color_mode).batch(256)]
        shape = (0, *self.image_size, {"grayscale": 1, "rgb": 3, "rgba": 4}[self.color_mode])
        return (np.concatenate(batches) if batches else np.zeros(shape, np.float32)), np.asarray(labels, np.int32)

    def load_source(self, env: Environment, name: str):
        """The splits as streams of decoded images (:mod:`compressflow.data.image_folder`): from the copy decoded
        once per machine beside the run's cache, or from the files outside a run."""
        from compressflow.data.image_folder import ImageFolderSplits, decode_stream, split_folder

        path = env.resolve_path(self.path, what="dataset path")
        folder = split_folder(path, seed=env.seed, shuffle=self.shuffle, limit=self.limit,
                              validation_fraction=self.validation_fraction, name=name)
        if env.local_cache is None:
            from compressflow.stages.tfutil import import_tensorflow

            tf = import_tensorflow()
            streams = {split: tf.data.Dataset.zip((decode_stream(path, folder.files(split), self.image_size,
                                                                 self.color_mode),
                                                   tf.data.Dataset.from_tensor_slices(folder.labels(split))))
                       for split in ("train", "validation")}
        else:
            from compressflow.data.decoded_images import decoded_key, decoded_streams
            from compressflow.fingerprints import HASH_STATE_NAME, release_state, use_state

            use_state(env.local_cache / HASH_STATE_NAME)  # NOTE: the plan hashed the files: their stat is enough now
            try:
                fingerprint = tree_sha256(path)
            finally:
                release_state()
            key = decoded_key(fingerprint, folder, self.image_size, self.color_mode)
            streams = decoded_streams(env.local_cache, key, folder, self.image_size, self.color_mode, name)
        return ImageFolderSplits(name, folder, streams["train"], streams["validation"], scale=self.scale,
                                 shuffle=self.shuffle, seed=env.seed)


@register_dataset
class TfdsDataset(_Preprocessing):
    """A TensorFlow Datasets dataset already prepared in `data_dir` (never downloaded)."""

    type: Literal["tfds"] = "tfds"
    path_fields: ClassVar[dict[str, str]] = {"data_dir": "dataset data_dir"}
    name: str = Field(description="TFDS name, e.g. `mnist`.")
    data_dir: str = Field(description="Folder where the dataset was prepared.")
    split: str = "train"
    image_key: str = "image"
    label_key: str = "label"

    def fingerprint(self, env: Environment) -> dict[str, Any]:
        path = env.resolve_path(self.data_dir, what="dataset data_dir") / self.name
        return {"name": self.name, "sha256": tree_sha256(path) if path.exists() else "missing",
                "tensorflow-datasets": distribution_version("tensorflow-datasets")}

    def load_arrays(self, env: Environment):
        import numpy as np

        from compressflow.stages.tfutil import import_tensorflow

        import_tensorflow()
        import tensorflow_datasets as tfds

        data_dir = env.resolve_path(self.data_dir, what="dataset data_dir")
        ds = tfds.load(self.name, split=self.split, data_dir=str(data_dir), download=False)
        xs, ys = [], []
        for item in tfds.as_numpy(ds):
            xs.append(item[self.image_key])
            ys.append(item[self.label_key])
        return np.stack(xs).astype("float32"), np.asarray(ys)


@register_dataset
class PythonDataset(_Preprocessing):
    """What a `module:function` of yours returns: arrays `(x, y)` (split by `validation_fraction`), a
    `tf.data.Dataset` of `(x, y)` pairs or batches, or a dict `{train: ..., validation: ...}` of either
    (tf.data is streamed: see docs/data.md)."""

    type: Literal["python"] = "python"
    module_fields: ClassVar[dict[str, str]] = {"function": "dataset function", **_Preprocessing.module_fields}
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="`module:function`.")
    args: dict[str, Any] = Field(default_factory=dict)

    def fingerprint(self, env: Environment) -> dict[str, Any]:
        module = self.function.partition(":")[0]
        return {"function": self.function, "source": module_source_fingerprint(module, env.pipeline_dir)}

    def load_arrays(self, env: Environment):
        from compressflow.data.function_result import is_array_pair

        result = self._call()
        if not is_array_pair(result):
            raise StageFailed(f"dataset function {self.function} returned a {type(result).__name__}, not arrays "
                              "(x, y); this reader needs arrays")
        return self._arrays(result)

    def load_source(self, env: Environment, name: str):
        """Arrays ``(x, y)`` to split, or ready splits (a dict of splits, or a tf.data stream)."""
        from compressflow.data.function_result import is_array_pair, result_splits

        result = self._call()
        return self._arrays(result) if is_array_pair(result) else result_splits(result, self, env, name, Splits)

    def _call(self):
        import importlib

        module_name, _, attr = self.function.partition(":")
        return getattr(importlib.import_module(module_name), attr)(**self.args)

    @staticmethod
    def _arrays(result):
        import numpy as np

        x, y = result
        return np.asarray(x, dtype="float32"), np.asarray(y)


@dataclass(frozen=True)
class Splits:
    """A dataset split into training and validation arrays."""

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    # What ``augment:`` does to the training batches (a :class:`compressflow.data.preprocessing.Augmentation`).
    augmentation: Any = None

    @property
    def num_classes(self) -> int:
        import numpy as np

        labels = [y for y in (self.y_train, self.y_val) if len(y)]
        return int(max(np.max(y) for y in labels) + 1) if labels else 0

    @property
    def task_labels(self):
        """The labels the task is inferred from: every training label."""
        return self.y_train

    @property
    def sample_shape(self) -> tuple:
        """The shape of one input."""
        return tuple(self.x_train.shape[1:])

    def training_batches(self, batch_size: int, seed: int):
        """The training split as tf.data batches for ``fit``: reshuffled every epoch and augmented (seeded)."""
        from compressflow.stages.tfutil import import_tensorflow

        tf = import_tensorflow()
        ds = tf.data.Dataset.from_tensor_slices((self.x_train, self.y_train))
        ds = ds.shuffle(max(len(self.x_train), 1), seed=seed, reshuffle_each_iteration=True)
        if self.augmentation is None:
            return ds.batch(batch_size).prefetch(2)
        return self.augmentation.batches(ds, batch_size, seed).prefetch(2)


def load_splits(dataset: Dataset, env: Environment, name: str | None = None) -> Splits:
    """Load ``dataset`` and split it deterministically from the pipeline seed.

    A dataset read as a stream (a ``python`` function returning tf.data, ``tfrecord`` files) gives
    :class:`compressflow.data.streams.StreamSplits` instead, with the same streaming methods.

    Inputs or labels holding NaN or infinite values raise :class:`compressflow.data.checks.DataError`
    naming the dataset (``name``, by default its name under ``datasets:`` in ``env``), the split,
    the samples and the feature positions.

    The dataset's ``preprocess`` goes over every split (arrays once, here; a stream as it is read) and
    its ``augment`` comes with the splits, for the training batches of ``fit`` only
    (:mod:`compressflow.data.preprocessing`).
    """
    import numpy as np

    from compressflow.data.checks import check_finite

    name = name or dataset_name(dataset, env)
    if hasattr(dataset, "load_source"):  # NOTE: a python function or TFRecord files may give ready splits
        loaded = dataset.load_source(env, name)
        if not isinstance(loaded, tuple):
            return _with_steps(loaded, dataset, name)
        x, y = loaded
    else:
        x, y = dataset.load_arrays(env)
    if len(x) != len(y):
        raise ValueError(f"dataset has {len(x)} inputs but {len(y)} labels")
    order = np.arange(len(x))
    if getattr(dataset, "shuffle", True):
        order = np.random.default_rng(env.seed).permutation(len(x))
    limit = getattr(dataset, "limit", None)
    if limit:
        order = order[:limit]
    x, y = x[order], y[order]
    scale = getattr(dataset, "scale", None)
    if scale is not None:
        x = (x * scale).astype("float32")
    step = getattr(dataset, "preprocess", None)
    if step is not None:
        from compressflow.data.preprocessing import preprocess_arrays

        x, y = preprocess_arrays(step, x, y, f"dataset {name!r} preprocess")
    n_val = int(round(len(x) * dataset.validation_fraction))
    n_train = len(x) - n_val
    check_finite(name, {"train": (x[:n_train], y[:n_train], order[:n_train]),
                        "validation": (x[n_train:], y[n_train:], order[n_train:])})
    return _with_augment(Splits(x[:n_train], y[:n_train], x[n_train:], y[n_train:]), dataset, name)


def _with_steps(splits, dataset: Dataset, name: str):
    """Ready ``splits`` through the dataset's ``preprocess`` (every split), with its ``augment`` for training."""
    import numpy as np

    from compressflow.data import preprocessing
    from compressflow.data.checks import check_finite

    step = getattr(dataset, "preprocess", None)
    what = f"dataset {name!r} preprocess"
    if step is not None and getattr(splits, "streaming", False):
        splits.transform(lambda ds: preprocessing.map_function(ds, step, what))
    elif step is not None:
        x_train, y_train = preprocessing.preprocess_arrays(step, splits.x_train, splits.y_train, what)
        x_val, y_val = preprocessing.preprocess_arrays(step, splits.x_val, splits.y_val, what)
        check_finite(name, {"train": (x_train, y_train, np.arange(len(x_train))),
                            "validation": (x_val, y_val, np.arange(len(x_val)))})
        splits = Splits(x_train, y_train, x_val, y_val)
    return _with_augment(splits, dataset, name)


def _with_augment(splits, dataset: Dataset, name: str):
    """``splits`` carrying what the dataset's ``augment`` does to training batches (unchanged without one)."""
    import dataclasses

    from compressflow.data.preprocessing import Augmentation

    augment = getattr(dataset, "augment", None)
    if augment is None:
        return splits
    if getattr(splits, "streaming", False):
        splits.augmentation = Augmentation(augment, name)
        return splits
    return dataclasses.replace(splits, augmentation=Augmentation(augment, name))


def dataset_name(dataset: Dataset, env: Environment) -> str:
    """The name ``dataset`` has under ``datasets:`` in ``env`` (its type when it is not there)."""
    for name, known in env.datasets.items():
        if known is dataset:
            return name
    return next((name for name, known in env.datasets.items() if known == dataset), f"({dataset.type})")

