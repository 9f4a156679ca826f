"""Quantization-aware training with tfmot (imports TensorFlow; call from a stage's ``run``).

Schemes:

``default``                   ``quantize_apply`` with the default 8-bit scheme
``prune_preserving``          keeps the zeros of a pruned model (PQAT)
``cluster_preserving``        keeps the centroids of a clustered model (CQAT)
``prune_cluster_preserving``  keeps both (PCQAT)
"""

from __future__ import annotations

SCHEMES = ("default", "prune_preserving", "cluster_preserving", "prune_cluster_preserving")


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


def make_quantization_aware(model, scheme: str):
    """Annotate every supported layer of ``model`` and apply ``scheme``: a fake-quant Keras model."""
    import tensorflow_model_optimization as tfmot

    quantization = tfmot.quantization.keras
    annotated = quantization.quantize_annotate_model(model)
    scheme_object = quantize_scheme(scheme)
    if scheme_object is None:
        return quantization.quantize_apply(annotated)
    return quantization.quantize_apply(annotated, scheme_object)


def as_default_scheme(trained, source_model, scheme: str):
    """A default-scheme QAT model computing what ``trained`` computes at inference.

    tfmot's collaborative quantizers (prune / cluster preserving) add state that is not
    serialised: a model saved with them cannot be loaded back. At inference they only
    apply the trained ranges to the (masked, clustered) kernels, so copying their
    effective weights into a default-scheme model of the same ``source_model`` gives a
    model that loads in ``quantize_scope`` and converts to the same TFLite model.
    """
    plain = make_quantization_aware(source_model, "default")
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
