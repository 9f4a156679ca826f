"""TensorFlow plumbing shared by the stages: import, determinism, model files, training.

Import this module only from inside a stage's ``run``: most functions import TensorFlow.
"""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from compressflow.errors import StageFailed

KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
# Weight names that hold a layer's main weights: what pruning, clustering and the reports look at.
KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "embeddings")
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")

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


def load_artifact_model(artifact):
    """A fresh copy of the Keras model in a stage's output artifact."""
    from compressflow.stages.base import KERAS_MODEL

    if artifact.kind != KERAS_MODEL:
        raise StageFailed(f"stage {artifact.stage!r} gives a {artifact.kind}, not a Keras model")
    from compressflow.stages.model_trust import code_trusted

    # NOTE: custom classes were checked where the model came into the pipeline, so they are not refused
    # here. Lambda bytecode runs only if the pipeline being run lets it (a load stage upstream says
    # `trust: true` or is a builder): never because the entry's artifact.json says `trusted`, which
    # whoever wrote a shared cache entry decides. Untrusted, safe_mode refuses it in a .keras file,
    # and the inspection refuses it in an .h5 one (a QAT model), where tf-keras ignores safe_mode.
    trusted = code_trusted()
    path = artifact.file()
    if not trusted and path.suffix == ".h5":
        _refuse_code_in_entry(artifact, path)
    return load_keras_model(path, trust=trusted, check=False)


def _refuse_code_in_entry(artifact, path: Path) -> None:
    """Refuse Lambda code in the model file of a cache entry that the running pipeline does not trust."""
    from compressflow.errors import UnsafeModelError
    from compressflow.models.safety import HDF5, find_code, read_stored_config

    lambdas = [f for f in find_code(read_stored_config(path, HDF5), is_known_keras_class) if not f.custom_class]
    if lambdas:
        listed = "; ".join(f.describe() for f in lambdas)
        raise UnsafeModelError(f"refusing to load the model of stage {artifact.stage!r} from its cache entry "
                               f"{artifact.path}: {listed}, and no load stage upstream says `trust: true`. "
                               "Loading it would run code from the entry; if the pipeline's own model has "
                               "that layer, set `trust: true` on its load stage")


def load_input_model(ctx, field: str = "model"):
    """A fresh copy of the Keras model given by input ``field``; never a shared object (design §5).

    Quantization-aware models are refused: only a quantize stage can carry them on.
    """
    from compressflow.stages.saved_model import SAVED_MODEL, why_not_trainable

    artifact = ctx.input(field)
    if artifact.meta.get("qat"):
        raise StageFailed(f"stage {ctx.name!r} cannot take {artifact.stage!r}: it is a quantization-aware "
                          "model; convert it with a quantize stage, or use the model it was made from")
    if artifact.kind == SAVED_MODEL:
        raise StageFailed(why_not_trainable(f"stage {ctx.name!r}", artifact.stage))
    return load_artifact_model(artifact)


def model_has_code(model) -> bool:
    """Whether a model's saved form needs code from outside tf-keras to load.

    True for Lambda layers (their bytecode is saved) and for layer classes defined
    elsewhere (loading imports the module they were defined in).
    """
    k = keras()
    return any(isinstance(layer, k.layers.Lambda) or type(layer).__module__.split(".")[0] not in ("tf_keras", "keras")
               for layer in [model, *iter_layers(model)])


def save_keras_model(model, ctx, **meta: Any) -> None:
    """Save ``model`` as the stage's Keras output (``model.keras``) and declare it.

    The saved model holds architecture and weights only (no optimizer or compile state).
    ``meta`` goes to ``artifact.json``; ``params`` and ``trusted`` are added.
    """
    from compressflow.stages.base import KERAS_MODEL

    meta = {**carried_meta(ctx), **meta}
    path = ctx.out_dir / KERAS_FILE
    plain = without_training_state(model)
    meta.setdefault("params", int(plain.count_params()))
    if model_has_code(plain):
        meta["trusted"] = True
    plain.save(path)
    ctx.set_output(KERAS_MODEL, KERAS_FILE, **meta)


def carried_meta(ctx) -> dict[str, Any]:
    """Meta a model keeps through every stage that remakes it: where it came from (Keras 3).

    Taken from the stage's ``model`` input (``student`` for distillation).
    """
    from compressflow.models.keras3 import CARRIED_META

    inputs = getattr(ctx, "inputs", None) or {}
    for field in ("model", "student"):
        source = inputs.get(field)
        if source is not None and not isinstance(source, list):
            return {key: source.meta[key] for key in CARRIED_META if key in source.meta}
    return {}


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


# --------------------------------------------------------------------------- compile


def make_optimizer(name: str = "adam", learning_rate: float = 1e-3):
    """A fresh tf-keras optimizer by name: ``adam``, ``sgd``, ``rmsprop`` or ``adamw``."""
    k = keras()
    classes = {"adam": k.optimizers.Adam, "sgd": k.optimizers.SGD,
               "rmsprop": k.optimizers.RMSprop, "adamw": k.optimizers.AdamW}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(classes)}")
    return classes[name](learning_rate=learning_rate)


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


def make_loss(spec, from_logits: bool):
    """A tf-keras loss object for a loss spec (any tf-keras spelling, ``{name: ..., ...}`` or ``module:function``);
    cross-entropies get ``from_logits`` unless the spec sets it. It reduces to one number per batch."""
    from compressflow.stages.losses import build_loss

    return build_loss(spec, from_logits=from_logits)


def compile_model(model, *, optimizer: str = "adam", learning_rate: float = 1e-3, objective=None,
                  loss=None, metrics=None, from_logits: bool | None = None):
    """Compile ``model`` for ``objective`` (a :class:`~compressflow.stages.objective.Objective`). Returns ``model``.

    Without one, ``loss`` and ``metrics`` (specs; default: sparse categorical cross-entropy and
    accuracy) make a classification objective; ``from_logits=None`` detects it from the last activation.
    """
    objective = objective or _plain_objective(model, loss, metrics, from_logits)
    model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss=objective.loss_object(),
                  metrics=objective.metric_objects())
    return model


def _plain_objective(model, loss, metrics, from_logits):
    from compressflow.stages.objective import Objective
    from compressflow.stages.tasks import output_units

    return Objective(loss=loss, metrics=None if metrics is None else tuple(metrics),
                     from_logits=outputs_logits(model) if from_logits is None else from_logits,
                     output_units=output_units(model))


# --------------------------------------------------------------------------- training


STEP_EVENT_INTERVAL = 0.25  # seconds between two ``step`` progress events


def epoch_logger(ctx, epochs: int, *, learning_rate: float | None = None):
    """A callback that reports each epoch's metrics: as a ``ctx.progress`` event when something
    listens (with the text line in ``text``), else as a ``ctx.log`` line.

    While a listener is there, it also sends ``step`` events (at most every
    :data:`STEP_EVENT_INTERVAL` seconds) with the running loss and metrics. It stops the
    stage with :class:`TrainingDiverged` as soon as the loss is NaN or infinite.
    """
    k = keras()

    class EpochLogger(k.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch, self._start, self._last_step = epoch, time.perf_counter(), 0.0

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                lr = f" (now {learning_rate:g})" if learning_rate is not None else ""
                raise TrainingDiverged(
                    f"stage {ctx.name!r}: the training loss became {float(loss)} at epoch {self._epoch + 1}, "
                    f"batch {batch + 1}; the model is not saved. Try a lower learning_rate{lr}, "
                    "or scale the inputs (a dataset's `scale:`).")
            now = time.perf_counter()
            if ctx.progress is not None and now - self._last_step >= STEP_EVENT_INTERVAL:
                self._last_step = now
                ctx.progress({"event": "step", "epoch": self._epoch + 1, "epochs": epochs, "step": batch + 1,
                              "steps": (self.params or {}).get("steps"), **_floats(logs)})

        def on_epoch_end(self, epoch, logs=None):
            logs = _floats(logs)
            seconds = time.perf_counter() - self._start
            text = (f"epoch {epoch + 1}/{epochs}  " + "  ".join(f"{key} {value:.4f}" for key, value in logs.items())
                    + f"  ({seconds:.1f} s)")
            if ctx.progress is not None:
                ctx.progress({"event": "epoch", "epoch": epoch + 1, "epochs": epochs, **logs,
                              "seconds": seconds, "text": text})
            else:
                ctx.log(text)

    return EpochLogger()


def _floats(logs) -> dict[str, float]:
    return {key: float(value) for key, value in (logs or {}).items()
            if isinstance(value, (int, float)) or getattr(value, "ndim", None) == 0}


def tensorboard_callback(ctx):
    """A TensorBoard callback writing to ``ctx.tensorboard_dir`` (None when the stage did not ask)."""
    log_dir = getattr(ctx, "tensorboard_dir", None)
    if log_dir is None:
        return None
    ctx.log(f"TensorBoard logs: {log_dir}")
    return keras().callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0, write_graph=False)


def early_stopping_callback(options, has_validation: bool):
    """The tf-keras EarlyStopping for an ``EarlyStopping`` option group (``None`` gives ``None``)."""
    if options is None:
        return None
    if options.monitor.startswith("val_") and not has_validation:
        raise StageFailed(f"early stopping watches {options.monitor!r} but the dataset has no validation split "
                          "(validation_fraction is 0)")
    return keras().callbacks.EarlyStopping(monitor=options.monitor, patience=options.patience,
                                           min_delta=options.min_delta,
                                           restore_best_weights=options.restore_best_weights)


def check_data_fits(model, splits, data_name: str) -> None:
    """Fail clearly when the dataset's samples do not have the model's input shape."""
    if isinstance(model.input_shape, list):
        return  # several inputs: left to Keras
    got = splits.sample_shape if getattr(splits, "streaming", False) else tuple(splits.x_train.shape[1:])
    expected = tuple(model.input_shape[1:])
    if len(expected) != len(got) or any(e not in (None, g) for e, g in zip(expected, got)):
        raise StageFailed(f"dataset {data_name!r} gives samples of shape {got} but the model expects {expected}")


def fit(model, splits, ctx, *, epochs: int, batch_size: int, callbacks: Iterable[Any] = (),
        early_stopping=None, learning_rate: float | None = None) -> dict[str, Any]:
    """Fit a compiled model on the training split, validating on the validation split.

    Seeded shuffling, per-epoch logging, NaN check, optional early stopping, TensorBoard
    logs when ``ctx.tensorboard_dir`` is set. Returns
    ``{"epochs_run": n, "history": {...}}``.
    """
    streaming = getattr(splits, "streaming", False)  # NOTE: tf.data splits (compressflow.data.streams)
    has_val = splits.has_validation if streaming else len(splits.x_val) > 0
    all_callbacks = [epoch_logger(ctx, epochs, learning_rate=learning_rate), *callbacks]
    k = keras()
    if not any(isinstance(c, k.callbacks.TensorBoard) for c in all_callbacks):  # prune brings its own
        board = tensorboard_callback(ctx)
        if board is not None:
            all_callbacks.append(board)
    stopper = early_stopping_callback(early_stopping, has_val)
    if stopper is not None:
        all_callbacks.append(stopper)
    if epochs == 0:
        return {"epochs_run": 0, "history": {}}
    if streaming:
        history = splits.fit(model, batch_size=batch_size, epochs=epochs, callbacks=all_callbacks)
    else:
        history = model.fit(splits.x_train, splits.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
                            validation_data=(splits.x_val, splits.y_val) if has_val else None,
                            callbacks=all_callbacks, verbose=0)
    hist = {key: [float(v) for v in values] for key, values in history.history.items()}
    check_finite_weights(model, ctx.name, last_loss=(hist.get("loss") or [None])[-1], learning_rate=learning_rate)
    return {"epochs_run": len(next(iter(hist.values()), [])), "history": hist}


def evaluate(model, splits, *, objective=None, loss=None, from_logits: bool | None = None,
             batch_size: int = 256) -> dict[str, float]:
    """Loss and metrics of ``model`` on the train and validation splits (keys ``loss``, ``val_mae``...).

    The metrics are those of ``objective`` (default: accuracy of a classification, see :func:`compile_model`).
    """
    objective = objective or _plain_objective(model, loss, None, from_logits)
    if getattr(splits, "streaming", False):
        return splits.evaluate(model, objective, batch_size)
    loss_fn = objective.loss_object()
    results = {}
    for prefix, x, y in (("", splits.x_train, splits.y_train), ("val_", splits.x_val, splits.y_val)):
        if len(x) == 0:
            continue
        predictions = model.predict(x, batch_size=batch_size, verbose=0)
        if predictions.ndim == y.ndim + 1 and predictions.shape[-1] == 1:
            y = y[..., None]  # NOTE: as fit does; (n,) against (n, 1) would broadcast to (n, n)
        results[f"{prefix}loss"] = float(loss_fn(y, predictions))
        for metric in objective.metric_objects():
            metric.update_state(y, predictions)
            results[f"{prefix}{metric.name}"] = float(metric.result())
    return results


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


def wrap_selected_layers(model, selection, why_not, apply, verb: str, log, details=None):
    """Clone ``model`` with ``apply(layer)`` in place of each selected layer that has weights.

    ``selection`` has fnmatch ``include``/``exclude`` patterns; ``why_not(layer)`` gives the
    reason a layer cannot take the technique (or None). Returns ``(model, applied layer
    names, {skipped layer: reason})``. Layers without weights are neither changed nor reported;
    layers skipped for the same reason are logged as one line (see :func:`log_skipped`).
    """
    from compressflow.stages.prune import selected

    k = keras()
    applied: list[str] = []
    skipped: dict[str, str] = {}
    classes: dict[str, str] = {}

    def wrap(layer):
        if isinstance(layer, k.Model):
            return k.models.clone_model(layer, clone_function=wrap)
        if not layer.trainable_weights:
            return layer
        if not selected(layer.name, selection.include, selection.exclude):
            skipped[layer.name] = "not selected by include/exclude"
            return layer
        reason = why_not(layer)
        if reason:
            skipped[layer.name] = reason
            classes[layer.name] = type(layer).__name__
            return layer
        applied.append(layer.name)
        return apply(layer)

    wrapped = k.models.clone_model(model, clone_function=wrap)
    log_skipped({name: skipped[name] for name in classes}, classes, verb, log, details or details_printer())
    return wrapped, applied, skipped


def log_skipped(skipped: dict[str, str], classes: dict[str, str], verb: str, log, details) -> None:
    """One ``log`` line per reason layers were left alone; their names go to ``details`` when several share one.

    ``not pruning 52 layers (BatchNormalization x52): has no prunable weights`` instead of a line per layer.
    """
    from collections import Counter

    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        if len(names) == 1:
            log(f"not {verb} {names[0]}: {reason}")
            continue
        counts = Counter(classes[name] for name in names).most_common()
        log(f"not {verb} {len(names)} layers ({', '.join(f'{c} x{n}' for c, n in counts)}): {reason}; "
            "--verbose lists them")
        details(f"not {verb} these {len(names)} layers ({reason}): {', '.join(names)}")


def details_printer(stage: str | None = None):
    """A log for detail lines, written to stderr (as ``  [stage] text``).

    ``compressflow run`` keeps stderr in the stage's log file (``.compressflow/logs/<stage>.log``)
    and shows it with ``--verbose``: the place for lists too long for the run's output.
    """
    import sys

    prefix = f"  [{stage}] " if stage else ""

    def details(text: str) -> None:
        print(prefix + text, file=sys.stderr, flush=True)

    return details
