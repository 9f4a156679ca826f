"""Quantization-aware training with tfmot (imports TensorFlow; call from a stage's ``run``).

Schemes:

``default``                   ``quantize_apply`` with the default 8-bit scheme
``prune_preserving``          keeps the zeros of a pruned model (PQAT)
``cluster_preserving``        keeps the centroids of a clustered model (CQAT)
``prune_cluster_preserving``  keeps both (PCQAT)

Only some layers are made quantization-aware (:func:`plan_layers`): those the stage selects
(``include`` / ``exclude``) that tfmot's default 8-bit registry supports, or that have a
``quantize_configs`` entry (a ``QuantizeConfig`` of the user's, for a custom layer). The rest
stay float: annotating a layer tfmot cannot quantize (a ``Rescaling``, the ``TFOpLambda``
layers of ``x + 3.0`` in MobileNetV3's hard-swish) fails inside tfmot with errors that do
not say which layer is at fault.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Callable

from compressflow.errors import StageFailed

SCHEMES = ("default", "prune_preserving", "cluster_preserving", "prune_cluster_preserving")
UNSUPPORTED = "not supported by tfmot's 8-bit quantization"
NOT_SELECTED = "not selected by include/exclude"
# Layers followed by a BatchNormalization that tfmot's default transforms quantize together
# (the BatchNormalization alone is not in its registry).
_BATCHNORM_PRODUCERS = ("Conv2D", "DepthwiseConv2D", "Dense")


def quantize_scheme(name: str):
    """The tfmot QuantizeScheme object for a scheme name (None: tfmot's default)."""
    if name == "default":
        return None
    if name == "prune_preserving":
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
            default_8bit_prune_preserve_quantize_scheme as prune_preserve)

        return prune_preserve.Default8BitPrunePreserveQuantizeScheme()
    if name in ("cluster_preserving", "prune_cluster_preserving"):
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
            default_8bit_cluster_preserve_quantize_scheme as cluster_preserve)

        return cluster_preserve.Default8BitClusterPreserveQuantizeScheme(
            preserve_sparsity=name == "prune_cluster_preserving")
    raise ValueError(f"unknown QAT scheme {name!r}; expected one of {', '.join(SCHEMES)}")


# --------------------------------------------------------------------------- user QuantizeConfigs


def import_quantize_config(spec: str):
    """The ``QuantizeConfig`` class named by ``module:Class`` (importing the module runs its code)."""
    from compressflow.stages.tfutil import tfmot

    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure is said the same way
        raise StageFailed(f"quantize config {spec}: cannot import module {module_name!r}: "
                          f"{type(exc).__name__}: {exc}") from exc
    found = getattr(module, name, None)
    base = tfmot().quantization.keras.QuantizeConfig
    if not (isinstance(found, type) and issubclass(found, base)):
        what = "nothing" if found is None else f"a {type(found).__name__}"
        raise StageFailed(f"quantize config {spec}: {name!r} in module {module_name!r} is {what}, not a "
                          "subclass of tfmot.quantization.keras.QuantizeConfig")
    return found


def config_classes(specs) -> dict[str, type]:
    """The custom objects ``quantize_scope`` needs to load a QAT model using the QuantizeConfigs ``specs``
    (``module:Class``): those classes, and every registered custom class under its plain name too.

    NOTE: tfmot's QuantizeWrapper deserialises the layer it wraps by class name only, so a custom
    layer registered as ``package>Layer`` is not found under ``Layer`` without this.
    """
    from compressflow.stages.tfutil import keras

    classes = {cls.__name__: cls for cls in keras().saving.get_custom_objects().values() if isinstance(cls, type)}
    for spec in specs:
        cls = import_quantize_config(spec)
        classes[cls.__name__] = cls
        classes[keras().saving.get_registered_name(cls)] = cls
    return classes


# --------------------------------------------------------------------------- which layers


@dataclass
class LayerPlan:
    """What QAT does with each layer: quantized (with the user's config or tfmot's), or left float."""

    quantized: list[str] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)  # layer -> module:Class of the user's config
    float_layers: dict[str, str] = field(default_factory=dict)  # layer -> why it stays float
    classes: dict[str, str] = field(default_factory=dict)  # layer -> class name, for the log

    def log_float_layers(self, log: Callable[[str], None], details: Callable[[str], None]) -> None:
        """One line per reason layers stay float (names go to ``details`` when many share one)."""
        from compressflow.stages.layer_selection import log_skipped

        unsupported = {name: f"{why}, kept float" for name, why in self.float_layers.items()
                       if why != NOT_SELECTED}
        log_skipped(unsupported, self.classes, "quantizing", log, details)


def _registry():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry)

    return registry.Default8BitQuantizeRegistry()


def _single_inbound(layer):
    nodes = getattr(layer, "inbound_nodes", None) or getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1:
        return None
    inbound = nodes[0].inbound_layers
    return inbound if not isinstance(inbound, (list, tuple)) else None


def _quantized_with_producer(layer, quantized: set[str]) -> bool:
    """A BatchNormalization after a quantized, linear Conv2D / DepthwiseConv2D / Dense: tfmot quantizes the pair."""
    from compressflow.stages.batchnorm import is_batchnorm

    if not is_batchnorm(layer):
        return False
    producer = _single_inbound(layer)
    return (producer is not None and type(producer).__name__ in _BATCHNORM_PRODUCERS
            and producer.name in quantized and producer.get_config().get("activation") == "linear")


def _first_match(name: str, patterns) -> str | None:
    return next((pattern for pattern in patterns if fnmatch(name, pattern)), None)


def plan_layers(model, *, include=(), exclude=(), configs: dict[str, str] | None = None) -> LayerPlan:
    """Which layers of ``model`` to make quantization-aware.

    ``configs`` maps layer name patterns to ``module:Class`` QuantizeConfigs; a layer they match
    is quantized with it (``exclude`` still wins). Raises :class:`StageFailed` naming every layer
    that ``include`` selects but tfmot cannot quantize, and nested or subclassed models.
    """
    from compressflow.stages.tfutil import keras

    k = keras()
    if not isinstance(model, k.Sequential) and not getattr(model, "_is_graph_network", False):
        raise StageFailed(f"tfmot makes Sequential and functional models quantization-aware; this one is a "
                          f"subclassed model ({type(model).__name__})")
    nested = [layer.name for layer in model.layers if isinstance(layer, k.Model)]
    if nested:
        raise StageFailed(f"tfmot cannot quantize a model inside a model; layer{'s' if len(nested) > 1 else ''} "
                          f"{', '.join(map(repr, nested))} {'are models' if len(nested) > 1 else 'is a model'}: "
                          "build the model flat (its layers directly in one functional model)")
    registry, plan, configs = _registry(), LayerPlan(), configs or {}
    refused = []
    for layer in model.layers:
        if isinstance(layer, k.layers.InputLayer):
            continue
        pattern = _first_match(layer.name, configs)
        if _first_match(layer.name, exclude) or (include and not _first_match(layer.name, include)
                                                 and pattern is None):
            plan.float_layers[layer.name] = NOT_SELECTED
        elif pattern is not None:
            plan.quantized.append(layer.name)
            plan.configs[layer.name] = configs[pattern]
        elif registry.supports(layer) or _quantized_with_producer(layer, set(plan.quantized)):
            plan.quantized.append(layer.name)
        elif include:
            refused.append(f"{layer.name} ({type(layer).__name__})")
        else:
            plan.float_layers[layer.name] = UNSUPPORTED
            plan.classes[layer.name] = type(layer).__name__
    if refused:
        raise StageFailed(f"'include' selects {len(refused)} layer{'s' if len(refused) > 1 else ''} that tfmot's "
                          f"8-bit quantization does not support: {', '.join(refused)}. Leave "
                          f"{'them' if len(refused) > 1 else 'it'} out of 'include' (it stays float), or give "
                          "a QuantizeConfig for it in 'quantize_configs'")
    if not plan.quantized:
        raise StageFailed("no layer to make quantization-aware: "
                          + ("; ".join(f"{name}: {why}" for name, why in plan.float_layers.items())
                             or "the model has no layers"))
    return plan


# --------------------------------------------------------------------------- annotate and apply


def make_quantization_aware(model, scheme: str, plan: LayerPlan | None = None):
    """A fake-quant Keras model of ``model``: the layers of ``plan`` (default: every supported one)
    annotated, then ``scheme`` applied.

    Any failure inside tfmot is raised as :class:`StageFailed` naming the layer when tfmot's
    message does.
    """
    from compressflow.stages.tfutil import keras, tfmot

    k, quantization = keras(), tfmot().quantization.keras
    plan = plan if plan is not None else plan_layers(model)
    classes = config_classes(set(plan.configs.values()))
    chosen = set(plan.quantized)

    def annotate(layer):
        if layer.name not in chosen:
            return layer
        spec = plan.configs.get(layer.name)
        try:
            config = import_quantize_config(spec)() if spec else None
            return quantization.quantize_annotate_layer(layer, config)
        except StageFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - tfmot raises anything; say which layer
            raise StageFailed(f"tfmot cannot annotate layer {layer.name!r} ({type(layer).__name__})"
                              + (f" with quantize config {spec}" if spec else "") + f": {_first_line(exc)}") from exc

    scheme_object = quantize_scheme(scheme)
    try:
        with quantization.quantize_scope(classes):
            annotated = k.models.clone_model(model, clone_function=annotate)
            if scheme_object is None:
                return quantization.quantize_apply(annotated)
            return quantization.quantize_apply(annotated, scheme_object)
    except StageFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - AttributeError, RuntimeError, KeyError... from inside tfmot
        raise StageFailed(tfmot_failure(exc, scheme)) from exc


# How tfmot's and tf-keras' messages name a layer: 'calling layer "tf.__operators__.add" (type
# TFOpLambda)', "Layer rescaling:<class '...Rescaling'> is not supported".
_LAYER_IN_MESSAGE = (re.compile(r'calling layer "([^"]+)" \(type (\w+)\)'),
                     re.compile(r"Layer ([^\s:]+):<class '[\w.]*?(\w+)'>"))


def tfmot_failure(exc: BaseException, scheme: str) -> str:
    """What to tell about a failure inside tfmot: the layer it names, the error's first line, what to do."""
    text = str(exc)
    for pattern in _LAYER_IN_MESSAGE:
        found = pattern.search(text)
        if found:
            name, kind = found.groups()
            return (f"tfmot cannot make layer {name!r} ({kind}) quantization-aware (scheme {scheme}): "
                    f"{type(exc).__name__}: {_first_line(exc)}. Keep it float with `exclude: [{name!r}]`, or "
                    "give a QuantizeConfig for it in 'quantize_configs'")
    return (f"tfmot cannot make the model quantization-aware (scheme {scheme}): {type(exc).__name__}: "
            f"{_first_line(exc)}. Keep the layer at fault float with 'exclude', or give a QuantizeConfig for it "
            "in 'quantize_configs'")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:400] if lines else type(exc).__name__


def as_default_scheme(trained, source_model, scheme: str, plan: LayerPlan | None = None):
    """A default-scheme QAT model computing what ``trained`` computes at inference.

    tfmot's collaborative quantizers (prune / cluster preserving) add state that is not
    serialised: a model saved with them cannot be loaded back. At inference they only
    apply the trained ranges to the (masked, clustered) kernels, so copying their
    effective weights into a default-scheme model of the same ``source_model`` (the same
    layers quantized: ``plan``) gives a model that loads in ``quantize_scope`` and converts to
    the same TFLite model.
    """
    plain = make_quantization_aware(source_model, "default", plan)
    if len(plain.layers) != len(trained.layers):
        raise ValueError("the trained QAT model and its default-scheme copy have different layers")
    source_kernels = {layer.name: getattr(layer, "kernel", None) for layer in source_model.layers}
    # NOTE: layers are paired by position: tfmot makes names unique per process
    # (quantize_layer, quantize_layer_1, ...), and both models come from the same source.
    for layer, trained_layer in zip(plain.layers, trained.layers):
        if not layer.weights:
            continue
        available = {_short_name(weight, trained_layer.name): weight for weight in trained_layer.weights}
        values = []
        for weight in layer.weights:
            short = _short_name(weight, layer.name)
            if short not in available:
                raise ValueError(f"layer {layer.name!r}: the trained model has no weight {short!r}")
            value = available[short].numpy()
            inner = getattr(layer, "layer", None)
            source_kernel = source_kernels.get(getattr(inner, "name", None))
            if short == "kernel" and "prune" in scheme and source_kernel is not None:
                # NOTE: the prune-preserving quantizer multiplies the kernel by the input's
                # zero mask at every call; the variable itself is not masked.
                value = value * (source_kernel.numpy() != 0)
            values.append(value)
        layer.set_weights(values)
    return plain


def _short_name(variable, layer_name: str) -> str:
    """``quant_conv/kernel_min:0`` -> ``kernel_min``; ``quantize_layer_2/quantize_layer_2_min:0`` -> ``min``."""
    short = variable.name.split("/")[-1].split(":")[0]
    return short[len(layer_name) + 1:] if short.startswith(layer_name + "_") else short
