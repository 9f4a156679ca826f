"""Keras (or plain SavedModel) -> TFLite conversion for every post-training method (imports TensorFlow).

Methods:

``float32``  plain conversion, no optimisation: the float baseline for size comparisons
``dynamic``  dynamic-range quantization: int8 weights (large enough tensors), float activations
``float16``  float16 weights, float32 compute
``int8``     full integer: int8 weights and activations calibrated on representative samples;
             with ``int8_io`` the model's input and output are int8 too
``int16x8``  int16 activations, int8 weights (16x8 mode), calibrated like int8

A quantization-aware-trained model carries its own int8 ranges: converting it with
any optimisation gives an int8 model.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

PTQ_METHODS = ("float32", "dynamic", "float16", "int8", "int16x8")
CALIBRATED_METHODS = ("int8", "int16x8")


def representative_samples(x, count: int):
    """The calibration samples: the first ``count`` of ``x`` (the seeded training order).

    For dict features (a model with several inputs) they are a list of samples, each a dict by input
    name: the converter feeds a model's inputs by the names of its signature.
    """
    if isinstance(x, dict):
        first = {name: np.asarray(value[:count], dtype=np.float32) for name, value in x.items()}
        taken = min((len(value) for value in first.values()), default=0)
        return [{name: value[i] for name, value in first.items()} for i in range(taken)]
    return np.asarray(x[:count], dtype=np.float32)


def _representative_dataset(samples):
    def generate() -> Iterator[list[np.ndarray] | dict[str, np.ndarray]]:
        for sample in samples:
            if isinstance(sample, dict):
                yield {name: value[None, ...] for name, value in sample.items()}
            else:
                yield [sample[None, ...]]

    return generate


def convert_keras_model(model, method: str, *, samples: np.ndarray | None = None,
                        int8_io: bool = False) -> bytes:
    """Convert a tf-keras model to TFLite flatbuffer bytes with ``method``.

    ``samples`` (calibration inputs) are required for ``int8`` and ``int16x8``.
    """
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    _check_arguments(method, samples, int8_io)
    return _configured(tf.lite.TFLiteConverter.from_keras_model(model), method, samples, int8_io).convert()


def convert_saved_model(path, method: str, *, signature: str, samples: np.ndarray | None = None,
                        int8_io: bool = False) -> bytes:
    """Convert the ``signature`` of a SavedModel folder to TFLite flatbuffer bytes with ``method``."""
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    _check_arguments(method, samples, int8_io)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[signature])
    return _configured(converter, method, samples, int8_io).convert()


def _check_arguments(method: str, samples, int8_io: bool) -> None:
    if method not in PTQ_METHODS:
        raise ValueError(f"unknown conversion method {method!r}; expected one of {', '.join(PTQ_METHODS)}")
    if method in CALIBRATED_METHODS and (samples is None or len(samples) == 0):
        raise ValueError(f"method {method!r} needs representative samples")
    if int8_io and method != "int8":
        raise ValueError("int8 input/output goes with method 'int8'")


def _configured(converter, method: str, samples, int8_io: bool):
    """``converter`` set up for ``method``."""
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    if method != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if method == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif method == "int8":
        converter.representative_dataset = _representative_dataset(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif method == "int16x8":
        converter.representative_dataset = _representative_dataset(samples)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter
