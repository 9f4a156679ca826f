"""Datasets read as tf.data streams: training, validation and calibration batches without holding the inputs.

A :class:`StreamSplits` has the streaming form of :class:`compressflow.data.datasets.Splits`:
``train_stream``, ``validation_stream``, ``calibration_samples``, ``sample_shape``,
``task_labels`` and ``num_classes``. Stages that train (Keras ``fit``), evaluate (batch by batch)
and calibrate (the first N training samples) read it; a stage that needs whole arrays gets a
clear error instead.

NaN and infinite values are checked as the batches pass: each float tensor goes through
``tf.debugging.assert_all_finite``, and the error it raises is turned into a
:class:`compressflow.data.checks.DataError` naming the dataset and the split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from compressflow.data.checks import DataError
from compressflow.errors import StageFailed

#: Samples held in the shuffle buffer of a training stream (memory does not grow with the dataset).
SHUFFLE_BUFFER = 2048
#: Training labels looked at to infer the task and count the classes.
TASK_SAMPLE = 4096
#: Batch size when a stage does not say (evaluation, counting).
READ_BATCH = 256
# NOTE: the text of the finiteness assertion, recognised again in the error TensorFlow raises.
_MARKER = "compressflow-data-check"


def is_stream(data: Any) -> bool:
    """Whether ``data`` (splits, or the inputs handed to a measurement) is read as a stream."""
    return bool(getattr(data, "streaming", False))


def predict_all(predict: Callable[[Any], Any], x: Any):
    """``predict(x)`` for arrays; for a stream of inputs, the predictions of every batch, concatenated."""
    import numpy as np

    if not is_stream(x):
        return predict(x)
    outputs = [np.asarray(predict(batch)) for batch in x.batches()]
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def first_samples(x: Any, count: int = 1):
    """The first ``count`` inputs of arrays or a stream (for timing one call)."""
    return x.first(count) if is_stream(x) else x[:count]


def _is_tf_dataset(value: Any) -> bool:
    return type(value).__module__.startswith("tensorflow") and hasattr(value, "element_spec")


def as_stream(value: Any, where: str):
    """An unbatched ``tf.data.Dataset`` of ``(x, y)`` from arrays ``(x, y)`` or a tf.data pipeline.

    A pipeline whose labels have an unknown leading dimension (``batch()`` without
    ``drop_remainder``) is taken as batched and unbatched: stages batch it with their ``batch_size``.
    """
    import numpy as np

    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    if isinstance(value, (tuple, list)) and len(value) == 2 and not _is_tf_dataset(value):
        x, y = np.asarray(value[0], dtype="float32"), np.asarray(value[1])
        if len(x) != len(y):
            raise StageFailed(f"{where} has {len(x)} inputs but {len(y)} labels")
        return tf.data.Dataset.from_tensor_slices((x, y))
    if not _is_tf_dataset(value):
        raise StageFailed(f"{where} is a {type(value).__name__}; give arrays (x, y) or a tf.data.Dataset of "
                          "(x, y) pairs or batches")
    spec = value.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise StageFailed(f"{where} gives elements {spec}; it must give (x, y) pairs or batches "
                          "(e.g. dataset.map(lambda item: (item['image'], item['label'])))")
    labels = spec[1].shape
    if labels.rank and labels[0] is None:
        value = value.unbatch()
    return value


class StreamSplits:
    """Training and (optionally) validation splits read as tf.data streams."""

    streaming = True
    #: Samples held by the training stream's shuffle buffer.
    shuffle_buffer = SHUFFLE_BUFFER

    def __init__(self, name: str, train, validation=None, *, scale: float | None = None,
                 limit: int | None = None, shuffle: bool = True, seed: int = 0):
        self.name = name
        self.seed = seed
        self.shuffle = shuffle
        self._train = self._prepare(train, "train", scale, limit)
        self._validation = None if validation is None else self._prepare(validation, "validation", scale, None)
        self._counts: dict[str, int] = {}
        self._labels = None
        # What ``augment:`` does to the batches ``fit`` trains on (a compressflow.data.preprocessing.Augmentation).
        self.augmentation = None

    def _prepare(self, ds, split: str, scale, limit):
        from compressflow.stages.tfutil import import_tensorflow

        tf = import_tensorflow()
        if limit:
            ds = ds.take(limit)
        message = f"{_MARKER}|{self.name}|{split}"

        def finite(tensor, what):
            if not tensor.dtype.is_floating:
                return tensor
            return tf.debugging.assert_all_finite(tensor, f"{message}|{what}")

        def clean(x, y):
            x = tf.cast(x, tf.float32)
            if scale is not None:
                x = x * scale
            return finite(x, "inputs"), finite(y, "labels")

        return ds.map(clean)

    def transform(self, step: Callable[[Any], Any]) -> None:
        """Pass every split through ``step`` (an unbatched ``(x, y)`` pipeline -> another), checked again after it."""
        self._train = self._prepare(step(self._train), "train", None, None)
        if self._validation is not None:
            self._validation = self._prepare(step(self._validation), "validation", None, None)
        self._counts, self._labels = {}, None

    # ------------------------------------------------------------------ what stages read

    @property
    def has_validation(self) -> bool:
        """Whether there is a validation split."""
        return self._validation is not None

    def train_stream(self, batch_size: int, shuffle: bool = True, seed: int | None = None,
                     augment_seed: int | None = None):
        """Training batches, reshuffled every epoch through a bounded buffer (seeded).

        With ``augment_seed`` they go through the dataset's ``augment`` (what ``fit`` trains on).
        """
        ds = self._train
        if shuffle and self.shuffle:
            ds = ds.shuffle(self.shuffle_buffer, seed=self.seed if seed is None else seed,
                            reshuffle_each_iteration=True)
        if augment_seed is not None and self.augmentation is not None:
            return self.augmentation.batches(ds, batch_size, augment_seed).prefetch(2)
        return ds.batch(batch_size).prefetch(2)

    def validation_stream(self, batch_size: int = READ_BATCH):
        """Validation batches in their order (None without a validation split)."""
        return None if self._validation is None else self._validation.batch(batch_size).prefetch(2)

    def split_stream(self, split: str, batch_size: int = READ_BATCH):
        """``train`` (unshuffled) or ``validation`` batches."""
        if split == "validation":
            return self.validation_stream(batch_size)
        return self.train_stream(batch_size, shuffle=False)

    @property
    def sample_shape(self) -> tuple:
        """The shape of one input (``None`` where the stream does not fix it)."""
        return tuple(self._train.element_spec[0].shape)

    def count(self, split: str = "train") -> int:
        """Samples in a split (read once, then remembered)."""
        if split not in self._counts:
            ds = self.split_stream(split)
            with self.reading():
                self._counts[split] = 0 if ds is None else int(sum(int(y.shape[0]) for _, y in ds))
        return self._counts[split]

    def calibration_samples(self, count: int):
        """The first ``count`` training inputs (in the stream's order), as a float32 array."""
        import numpy as np

        with self.reading():
            batches = [np.asarray(x) for x, _ in self._train.take(count).batch(READ_BATCH)]
        return np.concatenate(batches).astype(np.float32) if batches else np.zeros((0,), np.float32)

    def validation_samples(self, count: int):
        """The first ``count`` validation inputs as a float32 array (empty without a validation split)."""
        import numpy as np

        if self._validation is None:
            return np.zeros((0,), np.float32)
        with self.reading():
            batches = [np.asarray(x) for x, _ in self._validation.take(count).batch(READ_BATCH)]
        return np.concatenate(batches).astype(np.float32) if batches else np.zeros((0,), np.float32)

    @property
    def task_labels(self):
        """The first :data:`TASK_SAMPLE` training labels: enough to infer the task."""
        import numpy as np

        if self._labels is None:
            with self.reading():
                batches = [np.asarray(y) for _, y in self._train.take(TASK_SAMPLE).batch(READ_BATCH)]
            self._labels = np.concatenate(batches) if batches else np.zeros((0,), np.int64)
        return self._labels

    @property
    def num_classes(self) -> int:
        """Classes seen in the labels of :attr:`task_labels` (largest label + 1)."""
        labels = self.task_labels
        return int(labels.max()) + 1 if len(labels) else 0

    def evaluation_data(self, split: str) -> tuple[StreamedInputs, Any]:
        """The inputs of ``split`` as a stream, and its labels as an array (labels are small)."""
        import numpy as np

        ds = self.split_stream(split)
        if ds is None:
            return StreamedInputs(self, split, 0), np.zeros((0,), np.int64)
        with self.reading():
            labels = [np.asarray(y) for y in ds.map(lambda x, y: y)]
        y = np.concatenate(labels) if labels else np.zeros((0,), np.int64)
        return StreamedInputs(self, split, len(y)), y

    # ------------------------------------------------------------------ Keras

    def fit(self, model, *, batch_size: int, epochs: int, callbacks: list, seed: int | None = None) -> Any:
        """``model.fit`` on the (augmented) training stream, validating on the validation stream.

        ``seed`` (the stage's) seeds the dataset's ``augment``; without it, the pipeline's seed does.
        """
        with self.reading():
            return model.fit(self.train_stream(batch_size, augment_seed=self.seed if seed is None else seed),
                             epochs=epochs,
                             validation_data=self.validation_stream(batch_size), callbacks=callbacks, verbose=0)

    def evaluate(self, model, objective, batch_size: int = READ_BATCH) -> dict[str, float]:
        """Loss and metrics of ``model`` on each split, batch by batch (keys as :func:`keras_training.evaluate`'s)."""
        results = {}
        for prefix, split in (("", "train"), ("val_", "validation")):
            ds = self.split_stream(split, batch_size)
            if ds is None:
                continue
            loss_fn, metrics = objective.loss_object(), objective.metric_objects()
            total, seen = 0.0, 0
            with self.reading():
                for x, y in ds:
                    predictions = model(x, training=False)
                    if len(predictions.shape) == len(y.shape) + 1 and predictions.shape[-1] == 1:
                        y = y[..., None]  # NOTE: as fit does; (n,) against (n, 1) would broadcast to (n, n)
                    count = int(y.shape[0])
                    total += float(loss_fn(y, predictions)) * count
                    seen += count
                    for metric in metrics:
                        metric.update_state(y, predictions)
            if not seen:
                continue
            results[f"{prefix}loss"] = total / seen
            for metric in metrics:
                results[f"{prefix}{metric.name}"] = float(metric.result())
        return results

    # ------------------------------------------------------------------ errors

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Turn the finiteness check's TensorFlow error into a :class:`DataError` naming the split."""
        from compressflow.stages.tfutil import import_tensorflow

        tf = import_tensorflow()
        try:
            yield
        except tf.errors.InvalidArgumentError as exc:
            text = str(getattr(exc, "message", exc))
            if _MARKER not in text:
                raise
            _, name, split, what = text[text.index(_MARKER):].split("|", 3)
            what = what.split()[0].strip(".:;,")
            raise DataError(f"dataset {name!r} holds values no model can use; {split} split: {what} hold NaN or "
                            "inf (found as the batches were read). Fix the step that produces the data (or drop "
                            "those samples, or replace the values, e.g. with tf.math.multiply_no_nan) and run "
                            "again.") from None

    # ------------------------------------------------------------------ arrays are not there

    def _no_arrays(self):
        raise StageFailed(f"dataset {self.name!r} is read as a stream (tf.data or TFRecord) and this stage reads "
                          "whole arrays; stream it into fine_tune, prune, cluster, distill, quantize or evaluate, "
                          "or give this stage a dataset of arrays")

    x_train = y_train = x_val = y_val = property(lambda self: self._no_arrays())


class StreamedInputs:
    """The inputs of one split of a :class:`StreamSplits`, handed to a measurement in place of an array.

    ``len()`` is the number of samples; :meth:`batches` yields numpy batches in order.
    """

    streaming = True

    def __init__(self, splits: StreamSplits, split: str, count: int):
        self._splits, self._split, self._count = splits, split, count

    def __len__(self) -> int:
        return self._count

    def __array__(self, *args, **kwargs):
        raise StageFailed(f"dataset {self._splits.name!r} is read as a stream; this model kind is measured on "
                          "whole arrays: give the evaluate stage a dataset of arrays")

    def batches(self, batch_size: int = READ_BATCH) -> Iterator[Any]:
        """Numpy input batches, in the split's order."""
        import numpy as np

        ds = self._splits.split_stream(self._split, batch_size)
        if ds is None:
            return
        with self._splits.reading():
            for x, _ in ds:
                yield np.asarray(x)

    def first(self, count: int = 1):
        """The first ``count`` inputs as an array."""
        import numpy as np

        for batch in self.batches(max(count, 1)):
            return batch[:count]
        return np.zeros((0,), np.float32)
