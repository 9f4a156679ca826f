"""Per-layer numerics (``numerics.json``) of a model quantized by the TFLite converter.

The converter's ``int8``, ``int16x8`` and ``dynamic`` models are measured as the ``litert`` path's
are: the float TFLite model (the same source converted with ``float32``) and the written model run
side by side on the first ``numerics_samples`` validation samples of the stage's ``data``, and every
tensor the two share by name is compared (:func:`compressflow.stages.litert_numerics.compare_tensors`).
The table has the same schema and metric names, so ``evaluate``, the report and a ranking read both
alike. A layer counts as quantized when the converter stored its weights or its output as integers
(``dynamic`` leaves small kernels in float).

Why not TensorFlow's ``tf.lite.experimental.QuantizationDebugger``: it only handles calibrated
full-integer int8 (no ``dynamic``, ``int16x8`` or ``float16``), it measures a debug copy of the model
it quantizes again itself rather than the bytes the stage writes, and its layer statistics are
differences only (no cosine similarity, no noise-to-signal ratio).

Not measured:

* ``float16``: the converter stores float16 weights with a DEQUANTIZE op each, and gives the
  dequantized tensors the names the float model uses for other tensors, so the two models cannot
  be compared tensor by tensor (and the debugger has no float16 mode).
* a stage without ``data`` (``dynamic`` may have none): there are no samples of the model's own
  inputs to measure on, and random inputs would rank layers on data the model never sees.
* a quantization-aware model: it was trained with fake-quant ops, so there is no float model of it
  that the numerics would measure the quantization against.
* without LiteRT Quantizer installed (its model comparison runs both models), or with
  ``numerics: false``.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # NOTE: numpy is imported where used: the quantize stage's module is read by every validation
    import numpy as np

#: The converter methods whose models get a numerics table.
NUMERICS_METHODS = ("int8", "int16x8", "dynamic")
INTEGER_TYPES = frozenset({"int4", "int8", "uint8", "int16"})


NUMERICS_FILE = "numerics.json"


def write_numerics(config, ctx, convert, quantized_model: bytes, *, from_qat: bool) -> dict[str, Any]:
    """Write ``numerics.json`` for the ``quantize`` stage ``config``'s conversion, or log why there is none.

    ``convert(method, samples=..., int8_io=...)`` is the stage's converter (it gives the float model).
    Returns what the output's meta carries: the table's summary and file name (empty without a table).
    """
    from compressflow.data.datasets import load_splits
    from compressflow.stages.litert_numerics import describe_worst, summary

    reason = why_not_measured(config.method, config.data, config.numerics, from_qat=from_qat)
    chosen = None
    if reason is None:
        splits = load_splits(ctx.dataset(config.data), ctx.env)
        # NOTE: a stream has no arrays to look at (reading x_val would refuse); its samples come batch by batch
        if not getattr(splits, "streaming", False) and isinstance(splits.x_val, dict):
            reason = f"dataset {config.data!r} gives several inputs (the comparison runs models of one)"
        else:
            chosen = validation_samples(splits, config.data, config.numerics_samples)
            reason = None if chosen is not None else f"dataset {config.data!r} has no validation samples"
    if reason is not None:
        if config.method in (*NUMERICS_METHODS, "float16"):
            ctx.log(f"no per-layer numerics: {reason}")
        return {}
    samples, inputs = chosen
    try:
        table = numerics_for(convert("float32"), quantized_model, samples, inputs)
    except ValueError as exc:  # NOTE: a model the comparison cannot run (several inputs, samples that do not fit)
        ctx.log(f"no per-layer numerics: {exc}")
        return {}
    ctx.write_json(NUMERICS_FILE, table)
    ctx.log(describe_worst(table))
    return {"numerics": summary(table), "numerics_file": NUMERICS_FILE,
            "quantized_layers": [layer["layer"] for layer in table["layers"] if layer["quantized"]]}


def why_not_measured(method: str, data: str | None, enabled: bool, *, from_qat: bool = False) -> str | None:
    """Why a conversion with ``method`` gets no numerics table (None when it gets one)."""
    if not enabled:
        return "numerics: false"
    if from_qat:
        return ("the model is quantization-aware (numerics measure a post-training quantization against the "
                "float model; this one was trained with fake-quant ops)")
    if method not in NUMERICS_METHODS:
        if method == "float16":
            return ("the float16 model gives its dequantized weights names the float model uses for other "
                    "tensors, so the two cannot be compared tensor by tensor")
        return f"method {method} does not quantize"
    if data is None:
        return "the stage has no 'data' to measure the layers on"
    if importlib.util.find_spec("litert_quantizer") is None:
        return "LiteRT Quantizer is not installed (pip install litert-quantizer)"
    return None


def numerics_for(float_model: bytes, quantized_model: bytes, samples: np.ndarray, inputs: str) -> dict[str, Any]:
    """The numerics table of ``quantized_model`` against ``float_model`` on ``samples`` (described by ``inputs``)."""
    from compressflow.stages.litert_graph import read_ops, signature_io
    from compressflow.stages.litert_numerics import compare_tensors, numerics_table

    ops = read_ops(float_model)
    signature, input_name, _ = signature_io(float_model)
    tensors = compare_tensors(float_model, quantized_model, signature, input_name, samples)
    return numerics_table(ops, tensors, quantized_model, quantized=quantized_ops(ops, quantized_model),
                          kept_float=set(), inputs=inputs, samples=len(samples))


def quantized_ops(ops, quantized_model: bytes) -> set[int]:
    """Indices of the float model's ops whose weights or output the converter stored as integers."""
    from compressflow.stages.litert_graph import tensor_types

    stored = tensor_types(quantized_model)
    return {op.index for op in ops
            if any(stored.get(name) in INTEGER_TYPES for name in (*op.weights, *op.outputs[:1]))}


def validation_samples(splits, data: str, count: int) -> tuple[np.ndarray, str] | None:
    """The first ``count`` validation samples and their description; None when the split is empty."""
    if getattr(splits, "streaming", False):
        samples = splits.validation_samples(count)
    else:
        import numpy as np

        samples = np.asarray(splits.x_val[:count], np.float32)
    if not len(samples):
        return None
    return samples, f"the first {len(samples)} samples of the validation split of {data!r}"
