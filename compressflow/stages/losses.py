"""Losses and metrics as a pipeline names them: checked without TensorFlow, built into tf-keras objects.

``loss:`` and each entry of ``metrics:`` take one of:

* a tf-keras name in any spelling tf-keras accepts: ``mse``, ``mean_squared_error``, ``MeanSquaredError``;
* a mapping ``{name: Huber, delta: 2.0}``: the other keys are arguments of the class
  (``from_logits`` of a cross-entropy is detected from the model's last activation unless given);
* ``module:function`` of a module beside the pipeline or installed. A loss function takes tensors
  ``(y_true, y_pred)`` and returns per-sample losses (or their mean). A metric function takes numpy
  arrays ``(y_true, y_pred)`` and returns a number: evaluate computes it on the predictions for the
  whole split, a training stage averages it over batches. ``y_pred`` has ``y_true``'s shape when they
  hold as many values (the output of a one-unit regression model comes as ``(samples,)``).

Checking names (:func:`check_loss`, :func:`check_metric`) imports nothing heavy; building the objects
(:func:`build_loss`, :func:`build_metrics`) imports TensorFlow.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Callable, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from compressflow.errors import StageFailed, did_you_mean
from compressflow.stages import keras_names
from compressflow.stages.tasks import CLASSIFICATION, DEFAULT_LOSS, MULTILABEL, REGRESSION

FUNCTION_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class NamedSpec(BaseModel):
    """A loss or metric with arguments: `{name: Huber, delta: 2.0}`; the other keys go to the class."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(description="A tf-keras loss or metric name (any spelling tf-keras accepts).",
                      examples=["Huber"])


def spec_name(spec: str | NamedSpec) -> str:
    """The name a spec gives: the string itself, or the mapping's ``name``."""
    return spec if isinstance(spec, str) else spec.name


def spec_options(spec: str | NamedSpec) -> dict[str, Any]:
    """The arguments of a mapping spec (none for a plain name)."""
    return {} if isinstance(spec, str) else dict(spec.model_extra or {})


def is_function(name: str) -> bool:
    """Whether ``name`` is a ``module:function``."""
    return bool(FUNCTION_PATTERN.match(name))


def _check(spec: str | NamedSpec, what: str, known: list[str], is_known: Callable[[str], bool]) -> str | NamedSpec:
    name = spec_name(spec)
    if is_function(name):
        if spec_options(spec):
            raise ValueError(f"{what} {name!r} is a function: arguments ({', '.join(spec_options(spec))}) go "
                             "with tf-keras classes only; bind them in your module instead")
        return spec
    if is_known(name):
        return spec
    hint = did_you_mean(name, known)
    raise ValueError(f"unknown {what} {name!r}: not a tf-keras {what} name nor a module:function"
                     + (f"; {hint}" if hint else f" (tf-keras {what}es include {', '.join(known[:6])}, ...)"))


def check_loss(spec: str | NamedSpec) -> str | NamedSpec:
    """``spec`` when it names a tf-keras loss or a ``module:function``; else ValueError with a did-you-mean."""
    return _check(spec, "loss", keras_names.loss_spellings(), lambda name: keras_names.loss_class(name) is not None)


def check_metric(spec: str | NamedSpec) -> str | NamedSpec:
    """``spec`` when it names a tf-keras metric (or accuracy) or a ``module:function``; else ValueError."""
    spec = _check(spec, "metric", keras_names.metric_spellings(),
                  lambda name: keras_names.is_accuracy(name) or keras_names.metric_entry(name) is not None)
    name = spec_name(spec)
    entry = keras_names.metric_entry(name)
    if entry is not None:
        missing = [arg for arg in entry.required if arg not in spec_options(spec)]
        if missing:
            raise ValueError(f"metric {name!r} needs {' and '.join(missing)}: write it as "
                             f"{{name: {entry.cls}, {', '.join(f'{arg}: ...' for arg in missing)}}}")
    elif name in keras_names.NOT_NAMEABLE_METRICS:
        raise ValueError(f"metric {name!r} needs a function; give a module:function instead")
    return spec


def check_metric_list(specs: list[str | NamedSpec] | None) -> list[str | NamedSpec] | None:
    """``specs`` when no two report under the same name."""
    if specs is None:
        return None
    seen: dict[str, str] = {}
    for spec in specs:
        key = metric_key(spec)
        if key in seen:
            raise ValueError(f"metrics {seen[key]!r} and {spec_name(spec)!r} are both reported as {key!r}; "
                             "list it once")
        seen[key] = spec_name(spec)
    return specs


LossSpec = Annotated[Union[str, NamedSpec], AfterValidator(check_loss)]
MetricSpec = Annotated[Union[str, NamedSpec], AfterValidator(check_metric)]
MetricSpecs = Annotated[list[MetricSpec], AfterValidator(check_metric_list)]


def metric_key(spec: str | NamedSpec) -> str:
    """The name a metric is reported under: ``mae`` for ``mean_absolute_error``, the function's for a module's."""
    name = spec_name(spec)
    if keras_names.is_accuracy(name):
        return "accuracy"
    if is_function(name):
        return name.rpartition(":")[2]
    entry = keras_names.metric_entry(name)
    return entry.key if entry is not None else name


def metric_goal(spec: str | NamedSpec) -> str | None:
    """Which way a metric is better (None for a function of the user's: unknown)."""
    name = spec_name(spec)
    if keras_names.is_accuracy(name):
        return keras_names.MAXIMIZE
    entry = keras_names.metric_entry(name)
    return entry.goal if entry is not None else None


def not_applying(specs, task: str) -> list[str]:
    """Names of the metrics in ``specs`` that judge class decisions, when ``task`` is a regression."""
    if task != REGRESSION:
        return []
    return [spec_name(spec) for spec in specs or () if metric_key(spec) in keras_names.CLASS_METRICS
            or metric_key(spec).startswith("top")]


def not_applying_text(names: list[str], what: str) -> str:
    """``'accuracy' judges class decisions and does not apply to <what>`` (plural when several)."""
    one = len(names) == 1
    return (f"{', '.join(map(repr, names))} {'judges' if one else 'judge'} class decisions and "
            f"{'does' if one else 'do'} not apply to {what}; use mae, mse or r2")


# --------------------------------------------------------------------------- modules of the user's


def function_specs(specs) -> list[str]:
    """The ``module:function`` names among ``specs`` (a spec or a list of them)."""
    if specs is None:
        return []
    items = specs if isinstance(specs, list) else [specs]
    return [spec_name(spec) for spec in items if is_function(spec_name(spec))]


def function_problems(config: Any, env: Any, fields: tuple[str, ...] = ("loss", "metrics")) -> list:
    """A problem for each ``module:function`` in ``fields`` of ``config`` whose module is neither beside the
    pipeline nor installed (looked up without importing it; a missing function is reported when the stage runs)."""
    from compressflow.stages.base import FieldProblem
    from compressflow.user_modules import find_module_source

    problems = []
    for field in fields:
        what = "loss" if field == "loss" else "metric"
        for name in dict.fromkeys(function_specs(getattr(config, field, None))):
            module = name.partition(":")[0]
            if find_module_source(module, env.pipeline_dir) is None:
                problems.append(FieldProblem(field, f"{what} {name!r}: no module {module!r} (not beside the "
                                                    f"pipeline in {env.pipeline_dir} and not installed); put "
                                                    f"{module.replace('.', '/')}.py next to the pipeline file, "
                                                    "or install it"))
    return problems


def functions_fingerprint(names: list[str], root) -> dict[str, str | None]:
    """sha256 of the source of each ``module:function``'s module (found without importing it)."""
    from compressflow.user_modules import module_source_fingerprint

    return {name: module_source_fingerprint(name.partition(":")[0], root) for name in names}


def import_function(name: str, what: str) -> Callable:
    """The function ``module:function`` names (the pipeline's folder is on the import path when stages run)."""
    import importlib

    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module: one clear error
        raise StageFailed(f"{what} {name!r}: module {module_name!r} failed to import: {type(exc).__name__}: "
                          f"{exc} (python -c 'import {module_name}' in the pipeline's folder shows the "
                          "traceback)") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise StageFailed(f"{what} {name!r}: module {module_name!r} has no function {attr!r}")
    return function


# --------------------------------------------------------------------------- tf-keras objects (TensorFlow inside)


def default_loss(task: str, *, one_hot: bool = False, output_units: int | None = None) -> str:
    """The loss of a stage that names none: cross-entropy for classes (binary for one output), mse for regression."""
    if task == CLASSIFICATION and one_hot:
        return "categorical_crossentropy"
    if task == CLASSIFICATION and output_units == 1:
        return "binary_crossentropy"
    return DEFAULT_LOSS[task]


def build_loss(spec: str | NamedSpec, *, from_logits: bool):
    """A tf-keras loss object for ``spec`` (reducing to one number per batch)."""
    from compressflow.stages.tfutil import keras

    k = keras()
    name = spec_name(spec)
    if is_function(name):
        return _function_loss(import_function(name, "loss"), name)
    cls = keras_names.loss_class(name)
    options = spec_options(spec)
    if cls in keras_names.CROSS_ENTROPIES:
        options.setdefault("from_logits", from_logits)
    try:
        return getattr(k.losses, cls)(**options)
    except (TypeError, ValueError) as exc:
        raise StageFailed(f"loss {name!r} ({cls}) does not take {options}: {exc}") from exc


def _function_loss(function: Callable, name: str):
    from compressflow.stages.tfutil import import_tensorflow, keras

    tf, k = import_tensorflow(), keras()

    class FunctionLoss(k.losses.Loss):
        """The user's ``loss(y_true, y_pred)``, reduced over the batch like tf-keras' own losses."""

        def call(self, y_true, y_pred):
            y_pred = tf.convert_to_tensor(y_pred)
            y_true = tf.cast(y_true, y_pred.dtype)
            # NOTE: (batch,) labels against (batch, 1) outputs would broadcast to (batch, batch)
            if y_pred.shape.rank == y_true.shape.rank + 1 and y_pred.shape[-1] == 1:
                y_pred = tf.squeeze(y_pred, axis=-1)
            return function(y_true, y_pred)

    return FunctionLoss(name=name.rpartition(":")[2])


def build_metrics(specs, *, task: str, one_hot: bool, output_units: int | None, from_logits: bool) -> list:
    """Fresh tf-keras metric objects for ``specs``, each named by :func:`metric_key`."""
    from compressflow.stages.tfutil import keras

    k = keras()
    metrics = []
    for spec in specs:
        name, key = spec_name(spec), metric_key(spec)
        if keras_names.is_accuracy(name):
            metrics.append(accuracy_metric(task, one_hot=one_hot, output_units=output_units, from_logits=from_logits))
        elif is_function(name):
            metrics.append(_function_metric(import_function(name, "metric"), key))
        else:
            cls = keras_names.metric_entry(name).cls
            options = {"name": key, **spec_options(spec)}
            try:
                metrics.append(_aligned(getattr(k.metrics, cls))(**options))
            except (TypeError, ValueError) as exc:
                raise StageFailed(f"metric {name!r} ({cls}) does not take {spec_options(spec)}: {exc}") from exc
    return metrics


def _aligned(metric_class):
    """``metric_class`` fed (samples, 1) labels for (samples, 1) outputs, as R2Score needs (tf-keras squeezes
    them for most metrics, not for R2Score)."""
    if metric_class.__name__ != "R2Score":
        return metric_class
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()

    class AlignedR2Score(metric_class):
        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
            if y_pred.shape.rank == y_true.shape.rank + 1 and y_pred.shape[-1] == 1:
                y_true = tf.expand_dims(y_true, -1)
            return super().update_state(tf.cast(y_true, y_pred.dtype), y_pred, sample_weight)

    return AlignedR2Score


def accuracy_metric(task: str, *, one_hot: bool, output_units: int | None, from_logits: bool):
    """The accuracy that fits the labels: of class indices, of one-hot rows, or of 0/1 decisions."""
    from compressflow.stages.tfutil import keras

    k = keras()
    if task == REGRESSION:
        raise StageFailed("accuracy does not apply to a regression; report mae, mse or r2 instead")
    if task == MULTILABEL or output_units == 1:
        return k.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if from_logits else 0.5)
    if one_hot:
        return k.metrics.CategoricalAccuracy(name="accuracy")
    return k.metrics.SparseCategoricalAccuracy(name="accuracy")


def _function_metric(function: Callable, key: str):
    """A metric averaging the user's numpy ``metric(y_true, y_pred)`` over batches."""
    import numpy as np

    from compressflow.stages.metric_values import call_metric
    from compressflow.stages.tfutil import import_tensorflow, keras

    tf, k = import_tensorflow(), keras()

    def on_batch(y_true, y_pred):
        value = tf.numpy_function(lambda t, p: np.float32(call_metric(function, t, p, key)),
                                  [y_true, y_pred], tf.float32)
        return tf.reshape(value, [])

    on_batch.__name__ = key
    return k.metrics.MeanMetricWrapper(on_batch, name=key)
