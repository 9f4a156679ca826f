"""Keras model artifacts: loading any of them (QAT included), saving QAT models, listing weights.

Import only from inside a stage's ``run``: it imports TensorFlow.

Quantization-aware models are saved in the HDF5 format (``model.h5``) with
``qat: true`` in the artifact's meta. They need tfmot's ``quantize_scope`` to load;
:func:`load_keras_artifact` opens it when the meta says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compressflow.stages.base import KERAS_MODEL, Artifact, StageContext

QAT_FILE = "model.h5"


def is_qat(artifact: Artifact) -> bool:
    """Whether a Keras artifact is a quantization-aware (fake-quant) model."""
    return bool(artifact.meta.get("qat"))


def load_keras_artifact(artifact: Artifact):
    """A fresh copy of the Keras model of an artifact, in tfmot's quantize scope for QAT models
    (with the user's QuantizeConfig classes the QAT stage used, named in ``quantize_configs``)."""
    from compressflow.stages import model_io, tfutil

    if not is_qat(artifact):
        return model_io.load_artifact_model(artifact)
    from compressflow.stages.qat import config_classes

    with tfutil.tfmot().quantization.keras.quantize_scope(config_classes(artifact.meta.get("quantize_configs", ()))):
        return model_io.load_artifact_model(artifact)


def save_qat_model(model, ctx: StageContext, **meta: Any) -> None:
    """Save a QAT model as the stage's output (``model.h5``) and mark it ``qat``.

    NOTE: tf-keras cannot load a QAT model back from the ``.keras`` format (its
    QuantizeLayer re-creates its variables on load and the weight counts differ);
    the HDF5 format round-trips it exactly.
    """
    from compressflow.stages.model_io import carried_meta

    model.save(ctx.out_dir / QAT_FILE, save_format="h5", include_optimizer=False)
    ctx.set_output(KERAS_MODEL, QAT_FILE, qat=True, **{**carried_meta(ctx), **meta})


@dataclass(frozen=True)
class KerasWeight:
    """One weight array of a Keras layer."""

    layer: str
    name: str
    values: np.ndarray

    @property
    def is_kernel(self) -> bool:
        return self.values.ndim >= 2

    def zero_mask(self) -> np.ndarray:
        return self.values == 0


def _layers_with_weights(layer):
    """(name, weights) of every leaf layer; wrappers report the weights of the layer they wrap."""
    inner = getattr(layer, "layers", None)
    if inner is not None:  # a model or nested model
        for child in inner:
            yield from _layers_with_weights(child)
        return
    wrapped = getattr(layer, "layer", None)
    if wrapped is not None:
        # NOTE: a QAT wrapper takes the kernel over from the layer it wraps (the inner
        # layer no longer lists it), and wrappers add non-trainable state: quantizer
        # ranges, steps, pruning masks. Parameters are the wrapper's trainable weights
        # plus the inner layer's non-trainable ones (batch-norm statistics).
        chosen, seen = [], set()
        for weight in [*layer.trainable_weights, *wrapped.non_trainable_weights]:
            if id(weight) not in seen:
                seen.add(id(weight))
                chosen.append(weight)
        yield layer.name, chosen
    elif type(layer).__name__ == "QuantizeLayer":
        return  # the input quantizer of a QAT model holds ranges only
    else:
        yield layer.name, layer.weights


def keras_parameters(model) -> list[KerasWeight]:
    """Every parameter array of a Keras model, grouped by the layer that owns it."""
    found = []
    for layer_name, weights in _layers_with_weights(model):
        for weight in weights:
            found.append(KerasWeight(layer=layer_name, name=weight.name, values=np.asarray(weight.numpy())))
    return found
