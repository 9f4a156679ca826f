"""Translate models between Keras 3 and tf-keras in one process: architecture, weights, and a check.

tfmot works only with tf-keras (Keras 2), which the stages use (``TF_USE_LEGACY_KERAS=1``). With
that set, ``import keras`` still gives Keras 3, the separate package, so both live side by side:
Keras 3 reads and writes Keras 3 files, tf-keras does the compressing.

A translation rebuilds the architecture in the other version from the model's config
(:mod:`compressflow.models.keras3_config`), copies the weights layer by layer (by layer name,
in weight order, refusing any difference in count or shape), then compares the predictions of
both models on random inputs: a translation that changes what the model computes is refused.

Import only from inside a stage's ``run``: it imports TensorFlow and Keras 3.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compressflow.models.keras3_config import (KerasTranslationError, to_keras3_config, to_tf_keras_config,
                                               translation_problems)

# Artifact meta: where a model came from, so later stages (export) can give it back in kind.
ORIGIN_KEY = "keras_origin"
ORIGIN_VERSION_KEY = "keras_origin_version"
KERAS3_ORIGIN = "keras3"
# What every stage that remakes a model carries over from its input (see model_io.carried_meta).
CARRIED_META = (ORIGIN_KEY, ORIGIN_VERSION_KEY)
# Predictions of a translated model may differ from the original's by this much, relative to the
# largest output (at least 1). NOTE: both run TensorFlow kernels on the same weights, but not always
# the same ones (fused batch normalization, other orders of summation): each layer agrees to a few
# float32 roundings, and normalization layers in a row (BatchNormalization, LayerNormalization,
# GroupNormalization) can amplify that to 1e-4 on random weights. A mistranslation (a lost bias, an
# activation, weights in another order, dropout left on) differs by far more.
TOLERANCE = 1e-3
_SAMPLES = 4
_FREE_DIMENSION = 8


@dataclass(frozen=True)
class Translation:
    """A translated model and what was checked."""

    model: Any
    layers: int
    weights: int
    max_abs_diff: float

    def describe(self) -> str:
        return (f"{self.layers} layers, {self.weights} weight arrays copied; predictions agree "
                f"(max abs difference {self.max_abs_diff:.1e} on random inputs)")


def keras3():
    """The Keras 3 module, imported after TensorFlow is configured for tf-keras."""
    from compressflow.stages.tfutil import import_tensorflow

    import_tensorflow()
    import keras

    if not keras.__version__.startswith("3."):  # pragma: no cover - depends on the installation
        raise KerasTranslationError(f"`import keras` gives Keras {keras.__version__}, not Keras 3; install "
                                    "keras>=3 to read or write Keras 3 models")
    return keras


def is_keras3_model(model: Any) -> bool:
    """Whether ``model`` is a Keras 3 model (not a tf-keras one). Imports Keras 3 only for a candidate."""
    if type(model).__module__.split(".")[0] != "keras":
        return False
    return isinstance(model, keras3().Model)


def seed_keras3_if_imported(seed: int) -> None:
    """Seed Keras 3's own generator too when Keras 3 is already imported (its initializers draw from it)."""
    if "keras" in sys.modules and getattr(sys.modules["keras"], "__version__", "").startswith("3."):
        sys.modules["keras"].utils.set_random_seed(seed)


def origin_meta(version: str) -> dict[str, str]:
    """Artifact meta saying that a model came from Keras ``version``."""
    return {ORIGIN_KEY: KERAS3_ORIGIN, ORIGIN_VERSION_KEY: version}


def from_keras3(model3) -> Translation:
    """The tf-keras copy of a Keras 3 model (Sequential or Functional, nested ones too)."""
    k3 = keras3()
    if not model3.built or not getattr(model3, "inputs", None):
        raise KerasTranslationError("the Keras 3 model is not built, so its layers have no weights to copy yet; "
                                    "give it an input shape (start it with keras.Input)")
    serialized = k3.saving.serialize_keras_object(model3)
    model = _build(to_tf_keras_config(serialized), _build_tf_keras, serialized, "tf-keras")
    weights = copy_weights(model3, model)
    return Translation(model, _count_layers(model), weights, check_predictions(model3, model))


def to_keras3(model) -> Translation:
    """The Keras 3 copy of a tf-keras model (a stripped pruned or clustered one keeps its zeros and clusters)."""
    serialized = {"class_name": type(model).__name__, "config": model.get_config()}
    if serialized["class_name"] not in ("Functional", "Sequential"):
        raise KerasTranslationError(f"a {serialized['class_name']} model (subclassed) has no config to rebuild "
                                    "in Keras 3 from; only Sequential and Functional models translate")
    model3 = _build(to_keras3_config(serialized), _build_keras3, serialized, "Keras 3")
    weights = copy_weights(model, model3)
    return Translation(model3, _count_layers(model3), weights, check_predictions(model, model3))


def load_keras3_file(path: Path, *, trust: bool = False) -> Translation:
    """Load a file saved by Keras 3 and translate it to tf-keras.

    The caller has checked the file (no code runs unless ``trust``); Keras 3 loads it in safe mode
    unless ``trust``.
    """
    from compressflow.models.safety import ModelFileError

    k3 = keras3()
    try:
        model3 = k3.saving.load_model(path, compile=False, safe_mode=not trust)
    except Exception as exc:  # noqa: BLE001 - every loader failure becomes one clear error
        raise ModelFileError(f"Keras 3 cannot load model file {path}: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from exc
    return from_keras3(model3)


def save_as_keras3(model, path: Path) -> Translation:
    """Translate a tf-keras model to Keras 3 and save it at ``path`` (a ``.keras`` file)."""
    translation = to_keras3(model)
    translation.model.save(path)
    return translation


# --------------------------------------------------------------------------- building


def _build_tf_keras(config: dict[str, Any]):
    from compressflow.stages.tfutil import keras

    return keras().layers.deserialize(config)


def _build_keras3(config: dict[str, Any]):
    k3 = keras3()
    cls = k3.Sequential if config["class_name"] == "Sequential" else k3.Model
    return cls.from_config(config["config"])


def _build(config: dict[str, Any], build, serialized: dict[str, Any], target: str):
    """``build(config)``; on failure, the layer whose translated config the target version refused."""
    try:
        return build(config)
    except KerasTranslationError:
        raise
    except Exception as exc:  # noqa: BLE001 - pinned to a layer below
        layer = _failing_layer(config, target)
        where = f"layer {layer}" if layer else "the model"
        raise KerasTranslationError(f"{target} cannot build {where} from its translated config: "
                                    f"{type(exc).__name__}: {_first_line(exc)}") from exc


def _failing_layer(config: dict[str, Any], target: str) -> str | None:
    """``'name' (Class)`` of the first leaf layer that the target version cannot build on its own."""
    if target == "tf-keras":
        from compressflow.stages.tfutil import keras

        layers = keras().layers
    else:
        layers = keras3().layers
    for entry in _leaf_entries(config):
        cls = getattr(layers, entry["class_name"], None)
        try:
            cls.from_config(dict(entry["config"]))
        except Exception:  # noqa: BLE001 - this is the one
            return f"{entry['config'].get('name')!r} ({entry['class_name']})"
    return None


def _leaf_entries(entry: dict[str, Any]):
    for item in entry.get("config", {}).get("layers", []):
        if isinstance(item.get("config"), dict) and "layers" in item["config"]:
            yield from _leaf_entries(item)
        else:
            yield item


# --------------------------------------------------------------------------- weights


def copy_weights(source, target) -> int:
    """Copy every weight of ``source`` into the layer of the same name of ``target``; return the arrays copied.

    Refuses (naming the layer) a layer whose weights differ in number or shape, and a source
    whose weights are not all copied.
    """
    copied = 0
    for name, from_layer, to_layer in _layer_pairs(source, target):
        values = from_layer.get_weights()
        expected = [tuple(w.shape) for w in to_layer.weights]
        given = [tuple(v.shape) for v in values]
        if given != expected:
            raise KerasTranslationError(f"layer {name!r}: the original has weights of shapes {given}, the "
                                        f"translation {expected}; the two versions do not build it alike")
        if values:
            to_layer.set_weights(values)
            copied += len(values)
    total = sum(int(np.prod(w.shape)) for w in source.weights)
    moved = sum(int(np.prod(w.shape)) for w in target.weights)
    if total != moved:
        raise KerasTranslationError(f"the original has {total:,} weight values, the translation {moved:,}")
    return copied


def _layer_pairs(source, target, prefix: str = ""):
    """``(path, source layer, target layer)`` for every leaf layer, matched by name, nested models entered."""
    for layer in target.layers:
        try:
            original = source.get_layer(layer.name)
        except ValueError as exc:
            raise KerasTranslationError(f"layer {prefix + layer.name!r} of the translation is not in the "
                                        "original model") from exc
        if hasattr(layer, "layers") and hasattr(original, "layers"):
            yield from _layer_pairs(original, layer, prefix=f"{prefix}{layer.name}/")
        else:
            yield prefix + layer.name, original, layer


def _count_layers(model) -> int:
    return sum(_count_layers(layer) if hasattr(layer, "layers") else 1 for layer in model.layers)


# --------------------------------------------------------------------------- checking


def random_inputs(model, samples: int = _SAMPLES, seed: int = 0):
    """Random inputs fitting ``model``'s inputs: normal floats, small non-negative integers."""
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [samples] + [_FREE_DIMENSION if d is None else int(d) for d in tuple(tensor.shape)[1:]]
        dtype = np.dtype(getattr(tensor.dtype, "name", str(tensor.dtype)))
        if np.issubdtype(dtype, np.integer):
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays[0] if len(arrays) == 1 else arrays


def check_predictions(original, translated) -> float:
    """The largest difference between both models' predictions on random inputs; refuses one too large."""
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    inputs = random_inputs(original)
    expected = [np.asarray(t) for t in tf.nest.flatten(original(inputs, training=False))]
    got = [np.asarray(t) for t in tf.nest.flatten(translated(inputs, training=False))]
    if [e.shape for e in expected] != [g.shape for g in got]:
        raise KerasTranslationError(f"the translated model gives outputs of shapes {[g.shape for g in got]}, "
                                    f"the original {[e.shape for e in expected]}")
    scale = max([1.0] + [float(np.max(np.abs(e))) for e in expected if e.size])
    diff = max([0.0] + [float(np.max(np.abs(e - g))) for e, g in zip(expected, got) if e.size])
    if not diff <= TOLERANCE * scale:
        raise KerasTranslationError(f"the translated model's predictions differ from the original's by up to "
                                    f"{diff:.3g} on random inputs (allowed {TOLERANCE * scale:.1g}); "
                                    "the two Keras versions do not compute it alike")
    return diff


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


__all__ = ["CARRIED_META", "KERAS3_ORIGIN", "ORIGIN_KEY", "ORIGIN_VERSION_KEY", "KerasTranslationError", "Translation",
           "from_keras3", "is_keras3_model", "keras3", "load_keras3_file", "origin_meta", "save_as_keras3",
           "seed_keras3_if_imported", "to_keras3", "translation_problems"]
