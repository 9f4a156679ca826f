"""A dataset's ``preprocess:`` (every split) and ``augment:`` (the training split only), run inside tf.data.

``preprocess:`` is a ``module:function`` of yours, or ``{function: module:function, args: {...},
batched: true}``: it is called as ``function(x, y, **args)`` on tensors and returns ``(x, y)``, one
sample at a time (``batched: false``, the default) or on batches (``batched: true``). It sees the
inputs after ``scale``. Arrays go through it once when they are loaded (they stay arrays); a stream
goes through it as its samples pass.

``augment:`` is a function of the same form, or a list of built-in Keras preprocessing layers by
name, each ``{name: value}`` (the value fills the layer's first argument, or its two first for
``random_translation`` and ``random_zoom`` when it is a list of two) or ``{name: {argument: value}}``:
``[{random_flip: horizontal}, {random_rotation: 0.1}, {random_translation: [0.1, 0.1]}]``. It runs
on the training batches that Keras ``fit`` reads, reshuffled and augmented anew every epoch, seeded
from the stage's seed; never on the batches that evaluation, validation figures or calibration read.

Checking (the pydantic types and :func:`check_layers`) imports nothing heavy; applying them imports
TensorFlow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

from compressflow.errors import StageFailed, did_you_mean

FUNCTION_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
#: Samples per batch when arrays go through a ``preprocess`` function once.
ARRAY_BATCH = 256


class FunctionStep(BaseModel):
    """A ``module:function`` applied to ``(x, y)`` inside tf.data, with its arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str = Field(pattern=FUNCTION_PATTERN, description="`module:function` taking tensors `(x, y)` "
                                                                "(and `args`) and returning `(x, y)`.")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments given after `x, y`.")
    batched: bool = Field(False, description="Call it on batches (first dimension: samples) instead of one "
                                             "sample at a time.")


def _as_step(value: str | FunctionStep) -> FunctionStep:
    return FunctionStep(function=value) if isinstance(value, str) else value


def _form(value: Any) -> str | None:
    """Which form a ``preprocess`` / ``augment`` value has (so that a mistake is told against that form only)."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "layers"
    return "step" if isinstance(value, (dict, FunctionStep)) else None


_FUNCTION_FORMS = "`module:function` or {function: module:function, args: {...}, batched: true}"
_Text = Annotated[Annotated[str, Field(pattern=FUNCTION_PATTERN)], Tag("text")]
_Step = Annotated[FunctionStep, Tag("step")]

#: ``module:function`` or ``{function, args, batched}``; always a :class:`FunctionStep` once validated.
FunctionSpec = Annotated[Union[_Text, _Step], Discriminator(
    _form, custom_error_type="preprocess_form", custom_error_message=f"give {_FUNCTION_FORMS}"),
    AfterValidator(_as_step)]


# --------------------------------------------------------------------------- built-in augmentation layers


@dataclass(frozen=True)
class BuiltinLayer:
    """A tf-keras preprocessing layer ``augment:`` names: its class, the arguments a plain value fills, the rest."""

    cls: str
    positional: tuple[str, ...]
    options: tuple[str, ...] = ()

    @property
    def arguments(self) -> tuple[str, ...]:
        return (*self.positional, *self.options)


_FILL = ("fill_mode", "interpolation", "fill_value")

#: Layer names ``augment:`` accepts (each gets its seed from the stage's; shape-changing layers are left out).
LAYERS: dict[str, BuiltinLayer] = {
    "random_flip": BuiltinLayer("RandomFlip", ("mode",)),
    "random_rotation": BuiltinLayer("RandomRotation", ("factor",), _FILL),
    "random_translation": BuiltinLayer("RandomTranslation", ("height_factor", "width_factor"), _FILL),
    "random_zoom": BuiltinLayer("RandomZoom", ("height_factor", "width_factor"), _FILL),
    "random_contrast": BuiltinLayer("RandomContrast", ("factor",)),
    "random_brightness": BuiltinLayer("RandomBrightness", ("factor",), ("value_range",)),
    "gaussian_noise": BuiltinLayer("GaussianNoise", ("stddev",)),
}
#: Built-in layers that take inputs of any shape (the others take images).
NOT_IMAGE_LAYERS = frozenset({"gaussian_noise"})
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def layer_arguments(spec: dict[str, Any]) -> tuple[BuiltinLayer, dict[str, Any]]:
    """The layer one ``{name: value}`` entry names, and its keyword arguments; ValueError when it is wrong."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"an augment layer is one {{name: value}} mapping, e.g. {{random_flip: horizontal}}, "
                         f"not {spec!r}")
    name, value = next(iter(spec.items()))
    layer = LAYERS.get(name)
    if layer is None:
        hint = did_you_mean(name, LAYERS)
        raise ValueError(f"unknown augment layer {name!r}" + (f"; {hint}" if hint else "")
                         + f" (the layers are {', '.join(LAYERS)}; or give a module:function)")
    if isinstance(value, dict):
        arguments = dict(value)
        for argument in arguments:
            if argument not in layer.arguments:
                hint = did_you_mean(argument, layer.arguments)
                extra = ("; the seed comes from the stage's" if argument == "seed" else
                         f"; {hint}" if hint else "")
                raise ValueError(f"augment layer {name!r} takes no argument {argument!r}{extra} (it takes "
                                 f"{', '.join(layer.arguments)})")
    elif isinstance(value, list) and len(layer.positional) > 1 and len(value) == len(layer.positional):
        arguments = dict(zip(layer.positional, value))
    else:
        arguments = {layer.positional[0]: tuple(value) if isinstance(value, list) else value}
    missing = [argument for argument in layer.positional[:1] if arguments.get(argument) is None]
    if missing and layer.cls != "RandomFlip":
        raise ValueError(f"augment layer {name!r} needs {missing[0]!r}, e.g. {{{name}: 0.1}}")
    mode = arguments.get("mode")
    if layer.cls == "RandomFlip" and mode is not None and mode not in FLIP_MODES:
        hint = did_you_mean(str(mode), FLIP_MODES)
        raise ValueError(f"random_flip mode {mode!r} is not one of {', '.join(FLIP_MODES)}"
                         + (f"; {hint}" if hint else ""))
    if layer.cls == "RandomFlip" and mode is None:
        arguments.pop("mode", None)
    return layer, arguments


def check_layer(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` when it names a known layer with arguments it takes; else ValueError (with a did-you-mean)."""
    layer_arguments(spec)
    return spec


def check_layers(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``specs`` when there is at least one."""
    if not specs:
        raise ValueError("augment is an empty list; name at least one layer, or leave augment out")
    return specs


_Layers = Annotated[list[Annotated[dict[str, Any], AfterValidator(check_layer)]], AfterValidator(check_layers),
                    Tag("layers")]

#: ``augment:``: a function like ``preprocess:``'s, or a list of built-in layers.
AugmentSpec = Annotated[Union[_Text, _Step, _Layers], Discriminator(
    _form, custom_error_type="augment_form",
    custom_error_message=f"give {_FUNCTION_FORMS}, or a list of layers such as [{{random_flip: horizontal}}]"),
    AfterValidator(lambda value: value if isinstance(value, list) else _as_step(value))]


def function_of(spec: Any) -> str | None:
    """The ``module:function`` a preprocess or augment value names (None for a list of layers)."""
    return spec.function if isinstance(spec, FunctionStep) else None


# --------------------------------------------------------------------------- applying them


def _callable(step: FunctionStep, what: str) -> Callable:
    module_name, _, attr = step.function.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise StageFailed(f"{what} function {step.function}: {exc}") from exc
    return function


def map_function(ds, step: FunctionStep, what: str):
    """``ds`` (unbatched ``(x, y)``) through ``step``'s function, one sample or one batch at a time."""
    function = _callable(step, what)
    args = dict(step.args)

    def call(x, y):
        result = function(x, y, **args)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise StageFailed(f"{what} function {step.function} returned a {type(result).__name__}; it must "
                              "return (x, y)")
        return tuple(result)

    try:
        if step.batched:
            return ds.batch(ARRAY_BATCH).map(call).unbatch()
        return ds.map(call)
    except StageFailed:
        raise
    except Exception as exc:  # NOTE: tracing runs the user's code: any error of theirs surfaces here
        raise StageFailed(f"{what} function {step.function} failed on the tensors of {ds.element_spec}: "
                          f"{type(exc).__name__}: {exc}") from exc


def preprocess_arrays(step: FunctionStep, x, y, what: str):
    """Arrays ``x, y`` through ``step`` once (inside tf.data), back as arrays: inputs float32."""
    import numpy as np

    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    if not len(x):
        return x, y
    ds = map_function(tf.data.Dataset.from_tensor_slices((x, y)), step, what)
    xs, ys = [], []
    try:
        for batch_x, batch_y in ds.batch(ARRAY_BATCH):
            xs.append(np.asarray(batch_x))
            ys.append(np.asarray(batch_y))
    except tf.errors.OpError as exc:
        raise StageFailed(f"{what} function {step.function} failed: {exc.message}") from exc
    return np.concatenate(xs).astype("float32"), np.concatenate(ys)


class Augmentation:
    """What ``augment:`` does to the training batches of a stage (seeded from the stage's seed)."""

    def __init__(self, spec: Any, dataset_name: str):
        self.spec = spec
        self.what = f"dataset {dataset_name!r} augment"

    def batches(self, ds, batch_size: int, seed: int):
        """Training batches of ``batch_size`` from ``ds`` (unbatched, already shuffled), augmented."""
        if isinstance(self.spec, FunctionStep):
            if self.spec.batched:
                return map_function(ds.batch(batch_size), _per_batch(self.spec), self.what)
            return map_function(ds, self.spec, self.what).batch(batch_size)
        self._check_images(ds.element_spec[0].shape)
        layers = self.layers(seed)

        def augment(x, y):
            for layer in layers:
                x = layer(x, training=True)
            return x, y

        return ds.batch(batch_size).map(augment)

    def _check_images(self, shape) -> None:
        """Fail clearly when an image layer is given samples that are not images ``(height, width, channels)``."""
        for spec in self.spec:
            name = next(iter(spec))
            if name not in NOT_IMAGE_LAYERS and shape.rank != 3:
                raise StageFailed(f"{self.what} layer {name!r} works on images (height, width, channels), but the "
                                  f"samples have shape {tuple(shape)}; use gaussian_noise or a module:function for "
                                  "other inputs")

    def layers(self, seed: int) -> list:
        """The built-in layers, each seeded from ``seed`` and its place in the list."""
        from compressflow.stages.tfutil import keras

        k = keras()
        built = []
        for index, spec in enumerate(self.spec):
            layer, arguments = layer_arguments(spec)
            built.append(getattr(k.layers, layer.cls)(**arguments, seed=(seed + index) % 2**31))
        return built


def _per_batch(step: FunctionStep) -> FunctionStep:
    # NOTE: batches are made by the caller here: map the function over them as they are
    return step.model_copy(update={"batched": False})
