"""What a ``quantize`` stage with ``method: litert`` does: float TFLite in, LiteRT Quantizer, numerics out.

1. The float model: a Keras input is converted with the TFLite converter (no optimisation); a
   TFLite input must be a float one (``method: float32``).
2. The recipe or rules are checked against the model's ops before anything is quantized.
3. Static (integer-activation) quantization is calibrated on the first ``representative_samples``
   of the training split, as the converter's int8 path is.
4. ``numerics.json`` compares every tensor with the float model on the first ``numerics_samples``
   of the validation split (seeded random normal inputs when the stage has no ``data``).
5. ``keep_float`` keeps the worst layers in float and quantizes again.

Outputs: ``model.tflite``, ``numerics.json``, ``recipe.json`` (the library's recipe, to reproduce
it with LiteRT Quantizer directly).
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import numpy as np

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, TFLITE_MODEL

TFLITE_FILE = "model.tflite"
NUMERICS_FILE = "numerics.json"
RECIPE_FILE = "recipe.json"


def run_litert(config, ctx) -> None:
    """Quantize ``ctx.input('model')`` as the ``quantize`` stage ``config`` says."""
    from compressflow.stages import litert_quantize as lq
    from compressflow.stages.litert_graph import read_ops, signature_io
    from compressflow.stages.litert_keep_float import keep_layers_in_float
    from compressflow.stages.litert_numerics import describe_worst, ranked_layers, summary
    from compressflow.stages.tflite_describe import describe_tflite

    if importlib.util.find_spec("litert_quantizer") is None:
        raise StageFailed("method litert needs LiteRT Quantizer: pip install 'compressflow[tf]' "
                          "(or pip install litert-quantizer)")
    float_model = _float_model(ctx)
    ops = read_ops(float_model)
    signature, input_name, input_shape = signature_io(float_model)
    sources = ([lq.recipe_source(config.recipe)] if config.recipe is not None
               else [lq.rule_source(rule, position) for position, rule in enumerate(config.rules)])
    chosen = lq.check_entries(sources, ops)
    by_index = {op.index: op for op in ops}
    ctx.log(f"LiteRT Quantizer, {_what(config)}: quantizes {', '.join(by_index[i].layer for i in sorted(chosen))}")

    splits = _splits(config, ctx)
    entries = lq.flatten(sources)
    calibration = None
    if lq.needs_calibration(entries):
        calibration = _calibration(config, ctx, splits, float_model, entries, signature, input_name)
    quantized = lq.quantize(float_model, entries, calibration)
    samples, inputs = _numerics_inputs(config, ctx, splits, input_shape)
    table = _table(float_model, quantized, ops, signature, input_name, samples, inputs, set(chosen), set())
    ctx.log(describe_worst(table))

    kept_record = None
    if config.keep_float is not None:
        ranked = [by_index[op_index] for op_index in _ranked_indices(table, ops, ranked_layers)]

        def requantize(kept):
            return lq.quantize(float_model, lq.flatten([*sources, lq.float_layers_source(kept)]), calibration)

        accuracy = float_accuracy = None
        if config.data is not None and len(splits.x_val):
            def accuracy(model: bytes) -> float:
                return _accuracy(model, splits.x_val, splits.y_val)
            float_accuracy = accuracy(float_model)
        kept = keep_layers_in_float(config.keep_float, ranked, quantized, requantize, accuracy, float_accuracy,
                                    ctx.log)
        quantized = kept.model
        kept_record = kept.record()
        table = _table(float_model, quantized, ops, signature, input_name, samples, inputs, set(chosen),
                       {op.index for op in kept.layers})
        ctx.log(describe_worst(table))

    path = ctx.out_dir / TFLITE_FILE
    path.write_bytes(quantized)
    ctx.write_json(NUMERICS_FILE, table)
    (ctx.out_dir / RECIPE_FILE).write_text(json.dumps(lq.flatten(
        [*sources, lq.float_layers_source([by_index[i] for i in _kept_indices(table, ops)])]), indent=2,
        default=str))
    description = describe_tflite(path)
    ctx.log(f"litert: {len(float_model)} -> {len(quantized)} bytes ({len(float_model) / len(quantized):.1f}x), "
            f"weights {', '.join(description['weight_dtypes'])}, activations "
            f"{', '.join(description['activation_dtypes']) or 'none'}")
    ctx.set_output(TFLITE_MODEL, TFLITE_FILE, method="litert", recipe=config.recipe,
                   rules=None if config.rules is None else [rule.describe() for rule in config.rules],
                   quantized_layers=[layer["layer"] for layer in table["layers"] if layer["quantized"]],
                   keep_float=kept_record, numerics=summary(table), numerics_file=NUMERICS_FILE,
                   float_bytes=len(float_model), from_qat=False,
                   representative_samples=None if calibration is None else _calibration_count(config, splits),
                   **description)


def _what(config) -> str:
    if config.recipe is not None:
        return f"recipe {config.recipe}"
    return f"{len(config.rules)} rule{'s' if len(config.rules) != 1 else ''}"


def _float_model(ctx) -> bytes:
    """The float TFLite model to quantize: the input's, or the input Keras model converted."""
    from compressflow.stages import keras_artifacts, tflite_convert
    from compressflow.stages.tflite_weights import read_parameters

    source = ctx.input("model")
    if source.kind == TFLITE_MODEL:
        data = source.file().read_bytes()
        stored = {tensor.dtype for tensor in read_parameters(data)} - {"float32", "int32"}
        method = source.meta.get("method")
        if (method is not None and method != "float32") or stored:
            raise StageFailed(f"method litert quantizes a float model, but {source.stage!r} is already quantized "
                              f"({method or ', '.join(sorted(stored))}); give it the float TFLite model "
                              "(a quantize stage with method: float32) or the Keras model")
        return data
    if source.kind != KERAS_MODEL:
        raise StageFailed(f"quantize stage {ctx.name!r} needs a Keras or TFLite model, but {source.stage!r} "
                          f"gives a {source.kind}")
    if keras_artifacts.is_qat(source):
        raise StageFailed(f"{source.stage!r} is a quantization-aware model: it carries its own int8 ranges; "
                          "convert it with method int8 (or dynamic) instead of litert")
    model = keras_artifacts.load_keras_artifact(source)
    flatbuffer = tflite_convert.convert_keras_model(model, "float32")
    ctx.log(f"converted {source.stage!r} to a float TFLite model ({len(flatbuffer)} bytes)")
    return flatbuffer


def _splits(config, ctx):
    if config.data is None:
        return None
    from compressflow.data.datasets import load_splits

    return load_splits(ctx.dataset(config.data), ctx.env)


def _calibration_count(config, splits) -> int:
    return min(config.representative_samples, len(splits.x_train))


def _calibration(config, ctx, splits, float_model, entries, signature, input_name):
    from compressflow.stages import litert_quantize as lq
    from compressflow.stages.tflite_convert import representative_samples

    if splits is None:
        raise StageFailed("this quantization has integer activations and needs 'data' for calibration")
    samples = representative_samples(splits.x_train, config.representative_samples)
    if len(samples) == 0:
        raise StageFailed(f"dataset {config.data!r} has no training samples to calibrate on")
    if len(samples) < config.representative_samples:
        ctx.log(f"the training split has {len(samples)} samples; calibrating on all of them")
    ctx.log(f"calibrating activation ranges on {len(samples)} training samples")
    return lq.calibrate(float_model, entries, signature, input_name, samples)


def _numerics_inputs(config, ctx, splits, input_shape) -> tuple[np.ndarray, str]:
    count = config.numerics_samples
    if splits is not None and len(splits.x_val):
        samples = np.asarray(splits.x_val[:count], np.float32)
        return samples, f"the first {len(samples)} samples of the validation split of {config.data!r}"
    rng = np.random.default_rng(ctx.seed)
    samples = rng.standard_normal((count, *input_shape[1:])).astype(np.float32)
    return samples, f"{count} seeded random normal samples (the stage has no data)"


def _table(float_model, quantized, ops, signature, input_name, samples, inputs, chosen, kept) -> dict[str, Any]:
    from compressflow.stages.litert_numerics import compare_tensors, numerics_table

    tensors = compare_tensors(float_model, quantized, signature, input_name, samples)
    return numerics_table(ops, tensors, quantized, quantized=chosen, kept_float=kept, inputs=inputs,
                          samples=len(samples))


def _ranked_indices(table, ops, ranked_layers) -> list[int]:
    index_of = {op.layer: op.index for op in ops}
    return [index_of[layer["layer"]] for layer in ranked_layers(table["layers"])]


def _kept_indices(table, ops) -> list[int]:
    index_of = {op.layer: op.index for op in ops}
    return [index_of[layer["layer"]] for layer in table["layers"] if layer["kept_float"]]


def _accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from compressflow.stages.litert_runner import LiteRTModel
    from compressflow.stages.measure import accuracy

    return accuracy(LiteRTModel(model).predict(x), y)["accuracy"]
