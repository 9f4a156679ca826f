"""TensorFlow plumbing shared by the stages: import, determinism, reading model files, layers and weights.

Import this module only from inside a stage's ``run``: most functions import TensorFlow.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from compressflow.errors import StageFailed

KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
# Weight names that hold a layer's main weights: what pruning, clustering and the reports look at.
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")
KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "embeddings")

_tf = None


class TrainingDiverged(StageFailed):
    """The training loss (or a weight) became NaN or infinite."""


# --------------------------------------------------------------------------- import, seeding


def import_tensorflow():
    """Import TensorFlow configured for tf-keras (tfmot needs Keras 2) and quiet logs."""
    global _tf
    if _tf is None:
        # NOTE: must be set before TensorFlow is first imported; tfmot does not support Keras 3.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.config.experimental.enable_op_determinism()
        _tf = tf
    return _tf


def keras():
    """The tf-keras module (Keras 2), the one tfmot works with."""
    import_tensorflow()
    import tf_keras

    return tf_keras


def tfmot():
    """The tensorflow_model_optimization module (imported after TensorFlow is configured)."""
    import_tensorflow()
    import tensorflow_model_optimization

    return tensorflow_model_optimization


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and TensorFlow so a stage's output depends only on its inputs."""
    keras().utils.set_random_seed(seed)


# --------------------------------------------------------------------------- model files


def is_known_keras_class(class_name: str, module: str | None, registered_name: str | None) -> bool:
    """Whether a class named in a model file is built into tf-keras or registered in this process."""
    k = keras()
    for name in (registered_name, class_name):
        if name and k.saving.get_registered_object(name) is not None:
            return True
    if module is not None:
        return False
    return class_name in _builtin_layer_names()


@functools.lru_cache(maxsize=1)
def _builtin_layer_names() -> frozenset[str]:
    k = keras()
    try:
        from tf_keras.src.layers import serialization

        serialization.populate_deserializable_objects()
        names = set(serialization.LOCAL.ALL_OBJECTS)
    except (ImportError, AttributeError):  # pragma: no cover - private table moved
        names = set()
    names.update(n for n in dir(k.layers) if isinstance(getattr(k.layers, n), type))
    return frozenset(names | {"Functional", "Sequential", "Model"})


def check_model_file(path: Path, *, trust: bool = False, opt_in: str = "set `trust: true` on the load stage") -> str:
    """Refuse a model file that would run code on load (unless ``trust``); return its format."""
    from compressflow.models.safety import check_model_file as check

    return check(Path(path), trust=trust, is_known=is_known_keras_class, opt_in=opt_in)


def load_keras_model(path: Path, *, trust: bool = False, custom_objects: dict | None = None,
                     opt_in: str = "set `trust: true` on the load stage", check: bool = True):
    """Load a Keras model file (.keras, .h5 or a SavedModel folder) without its training state.

    Unless ``trust`` (or ``check`` is False), the stored config is inspected first and a file
    that would run code (Lambda layers, unregistered custom objects) raises ``UnsafeModelError``,
    whose message ends with ``opt_in`` (how to allow it). A missing, truncated or corrupt file
    raises ``ModelFileError`` naming it.
    """
    from compressflow.models.safety import ModelFileError

    path = Path(path)
    if check:
        check_model_file(path, trust=trust, opt_in=opt_in)
    k = keras()
    try:
        return k.models.load_model(path, compile=False, safe_mode=not trust, custom_objects=custom_objects)
    except Exception as exc:  # noqa: BLE001 - every loader failure becomes one clear error
        raise ModelFileError(f"cannot load model file {path}: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else ""


def model_has_code(model) -> bool:
    """Whether a model's saved form needs code from outside tf-keras to load.

    True for Lambda layers (their bytecode is saved) and for layer classes defined
    elsewhere (loading imports the module they were defined in).
    """
    k = keras()
    return any(isinstance(layer, k.layers.Lambda) or type(layer).__module__.split(".")[0] not in ("tf_keras", "keras")
               for layer in [model, *iter_layers(model)])


def without_training_state(model):
    """A copy of ``model`` with the same layers' weights and no optimizer or compile state."""
    k = keras()
    if not getattr(model, "_is_compiled", False) and getattr(model, "optimizer", None) is None:
        return model
    if not getattr(model, "_is_graph_network", False) and not isinstance(model, k.Sequential):
        return model  # subclassed models cannot be cloned; saved as they are
    clone = k.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


# --------------------------------------------------------------------------- layers and weights


def iter_layers(model) -> Iterator[Any]:
    """Every layer of ``model``, nested models expanded (the nested model itself too)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers") and layer is not model:
            yield from iter_layers(layer)


def _unwrap(layer):
    while hasattr(layer, "layer") and not hasattr(layer, "activation"):
        layer = layer.layer  # pruning / clustering / quantization wrappers
    return layer


def output_activation(model) -> str:
    """Name of the activation of the model's last layer (``linear`` when it has none)."""
    k = keras()
    layer = _unwrap(model.layers[-1])
    if hasattr(layer, "layers") and layer.layers:
        return output_activation(layer)
    if isinstance(layer, k.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    return getattr(activation, "__name__", str(activation))


def outputs_logits(model) -> bool:
    """True when the model's last activation is linear (it outputs logits, not probabilities)."""
    return output_activation(model) not in _PROBABILITY_ACTIVATIONS



def weight_short_name(variable) -> str:
    """``conv1/kernel:0`` -> ``kernel``."""
    return variable.name.split("/")[-1].split(":")[0]


def kernel_variables(model) -> list[tuple[str, Any]]:
    """(report name, variable) of every kernel-like weight: ``conv1`` or ``layer/depthwise_kernel``."""
    found, seen = [], set()
    for layer in iter_layers(model):
        if hasattr(layer, "layers"):
            continue
        for variable in layer.weights:
            short = weight_short_name(variable)
            if short in KERNEL_NAMES and id(variable) not in seen:
                seen.add(id(variable))
                found.append((layer.name if short == "kernel" else f"{layer.name}/{short}", variable))
    return found


def kernel_stats(model) -> dict[str, dict[str, Any]]:
    """Per kernel: size, zeros, sparsity and number of unique values."""
    import numpy as np

    stats = {}
    for name, variable in kernel_variables(model):
        values = np.asarray(variable.numpy())
        zeros = int(values.size - np.count_nonzero(values))
        stats[name] = {"size": int(values.size), "zeros": zeros,
                       "sparsity": zeros / values.size if values.size else 0.0,
                       "unique": int(np.unique(values).size)}
    return stats


def overall_sparsity(stats: dict[str, dict[str, Any]], names: Iterable[str] | None = None) -> float:
    """Share of zeros over the kernels ``names`` (default: all) of a :func:`kernel_stats` result."""
    chosen = [stats[n] for n in (stats if names is None else names)]
    size = sum(s["size"] for s in chosen)
    return sum(s["zeros"] for s in chosen) / size if size else 0.0


def check_finite_weights(model, stage: str, *, last_loss: float | None = None,
                         learning_rate: float | None = None) -> None:
    """Fail when any weight of ``model`` is NaN or infinite.

    ``last_loss`` is the last training loss, when training made the model: the loss itself is
    checked after every batch, so reaching here with bad weights means the loss stayed finite.
    """
    import numpy as np

    for variable in model.weights:
        if not np.all(np.isfinite(variable.numpy())):
            lr = f" (now {learning_rate:g})" if learning_rate is not None else ""
            what = ("holds NaN or infinite values" if last_loss is None else
                    f"became NaN or infinite while the training loss stayed finite (last {last_loss:.4g}): "
                    "the weight updates overflowed before the loss showed it")
            raise TrainingDiverged(f"stage {stage!r}: weight {variable.name} {what}; "
                                   f"the model is not saved. Try a lower learning_rate{lr}, or another optimizer.")


# --------------------------------------------------------------------------- keeping sparsity and clusters


# A kernel counts as clustered (its groups of equal values are kept while training) only with at
# most this many unique values, and at least CLUSTER_MIN_SHARE weights per unique value on average.
MAX_CLUSTERS = 256
CLUSTER_MIN_SHARE = 4


def is_clustered(unique: int, size: int) -> bool:
    """Whether a kernel of ``size`` weights with ``unique`` distinct values is clustered.

    NOTE: a freshly initialised kernel has some equal values by chance (tens of thousands of
    float32 draws from a small range collide, as in the birthday problem); tying those together
    would constrain training for nothing. Only few values shared by many weights, as a cluster
    stage leaves them, count.
    """
    return 0 < unique <= MAX_CLUSTERS and unique * CLUSTER_MIN_SHARE <= size


def structure_constraints(model, *, sparsity: bool = True, clusters: bool = True) -> list[dict[str, Any]]:
    """What must hold on each kernel while training: its zeros, and its groups of equal values.

    One entry per constrained kernel: ``{"name", "variable", "size", "mask", "index", "ids",
    "groups", "unique"}``. ``mask`` is None when sparsity is not kept or the kernel has no zero.
    ``index`` (flat positions of weights that share their value with another weight) and
    ``ids`` (their group numbers, ``groups`` in all) are None unless the kernel is clustered
    (:func:`is_clustered`).
    """
    import numpy as np

    constraints = []
    for name, variable in kernel_variables(model):
        values = variable.numpy()
        mask = (values != 0).astype(values.dtype) if sparsity and not values.all() else None
        index = ids = None
        groups = unique = 0
        if clusters:
            unique_values, inverse, counts = np.unique(values.reshape(-1), return_inverse=True, return_counts=True)
            shared = counts[inverse] > 1
            if is_clustered(int(unique_values.size), int(values.size)) and shared.any():
                unique = int(unique_values.size)
                index = np.flatnonzero(shared).astype("int32")
                _, ids = np.unique(inverse[shared], return_inverse=True)
                ids, groups = ids.astype("int32"), int(ids.max()) + 1
        if mask is not None or index is not None:
            constraints.append({"name": name, "variable": variable, "size": int(values.size), "mask": mask,
                                "index": index, "ids": ids, "groups": groups, "unique": unique})
    return constraints


def structure_keeper(constraints: list[dict[str, Any]]):
    """A callback that, after every training batch, re-zeroes masked weights and sets each
    weight of a group of equal values to the group's mean (so unique values cannot grow)."""
    tf = import_tensorflow()
    k = keras()
    prepared = [(c["variable"],
                 None if c["mask"] is None else tf.constant(c["mask"]),
                 None if c["index"] is None else tf.constant(c["index"][:, None]),
                 None if c["ids"] is None else tf.constant(c["ids"]),
                 c["groups"]) for c in constraints]

    @tf.function
    def project():
        for variable, mask, index, ids, groups in prepared:
            value = variable
            if index is not None:
                flat = tf.reshape(value, [-1])
                means = tf.math.unsorted_segment_mean(tf.gather_nd(flat, index), ids, groups)
                flat = tf.tensor_scatter_nd_update(flat, index, tf.gather(means, ids))
                value = tf.reshape(flat, tf.shape(variable))
            if mask is not None:
                value = value * mask
            variable.assign(value)

    class StructureKeeper(k.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if prepared:
                project()

    return StructureKeeper()


