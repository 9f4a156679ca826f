"""Training and evaluation shared by the stages: optimizers, losses by output activation, compile, fit, evaluate."""

from __future__ import annotations

import math
import time
from typing import Any, Iterable

from compressflow.errors import StageFailed
from compressflow.stages.tfutil import TrainingDiverged, check_finite_weights, keras, outputs_logits


def make_optimizer(name: str = "adam", learning_rate: float = 1e-3):
    """A fresh tf-keras optimizer by name: ``adam``, ``sgd``, ``rmsprop`` or ``adamw``."""
    k = keras()
    classes = {"adam": k.optimizers.Adam, "sgd": k.optimizers.SGD,
               "rmsprop": k.optimizers.RMSprop, "adamw": k.optimizers.AdamW}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(classes)}")
    return classes[name](learning_rate=learning_rate)


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
    """Fail clearly when the dataset's samples do not have the model's input shape (each input's, by name,
    for a model with several inputs and a dataset of dict features)."""
    streaming = getattr(splits, "streaming", False)
    x = None if streaming else splits.x_train
    if len(model.inputs) > 1 or isinstance(x, dict):
        if streaming:
            return  # NOTE: a stream's dict features are checked by Keras as the first batch passes
        expected = {tensor.name.split(":")[0]: tuple(tensor.shape[1:]) for tensor in model.inputs}
        if not isinstance(x, dict):
            raise StageFailed(f"dataset {data_name!r} gives one input but the model has inputs {sorted(expected)}; "
                              "return the features as a dict by input name")
        if set(expected) != set(x):
            raise StageFailed(f"dataset {data_name!r} gives features {sorted(x)} but the model's inputs are "
                              f"{sorted(expected)}")
        for name, shape in expected.items():
            _check_shape(f"dataset {data_name!r} gives {name!r}", tuple(x[name].shape[1:]), shape)
        return
    got = splits.sample_shape if streaming else tuple(x.shape[1:])
    _check_shape(f"dataset {data_name!r} gives samples", got, tuple(model.input_shape[1:]))


def _check_shape(what: str, got: tuple, expected: tuple) -> None:
    if len(expected) != len(got) or any(e not in (None, g) for e, g in zip(expected, got)):
        raise StageFailed(f"{what} of shape {got} but the model expects {expected}")


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
        history = splits.fit(model, batch_size=batch_size, epochs=epochs, callbacks=all_callbacks, seed=ctx.seed)
    elif getattr(splits, "augmentation", None) is not None:  # NOTE: augment: tf.data batches of the arrays
        history = model.fit(splits.training_batches(batch_size, ctx.seed), epochs=epochs,
                            validation_data=(splits.x_val, splits.y_val) if has_val else None,
                            callbacks=all_callbacks, verbose=0)
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
