"""Which ops the TFLite converter cannot quantize: the untrained architecture is converted as the
quantize stage would convert it, calibrated on random samples of the model's input shape
(imports TensorFlow)."""

from __future__ import annotations

from compressflow.preflight.findings import ERROR, OK, WARNING, StageCheck

CALIBRATION_SAMPLES = 4
# Ops that only move values between float and integer at the model's edges.
_BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
_FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64"})


def random_samples(model, count: int = CALIBRATION_SAMPLES, sample_shape=None):
    """``count`` random inputs of the model's input shape (unknown sizes from ``sample_shape``, else 1)."""
    import numpy as np

    if len(model.inputs) > 1:  # NOTE: several inputs: samples by input name, as quantize calibrates them
        rng = np.random.default_rng(0)
        arrays = {tensor.name.split(":")[0]: rng.random((count, *[d or 1 for d in tensor.shape[1:]]),
                                                        dtype=np.float32) for tensor in model.inputs}
        return [{name: array[i] for name, array in arrays.items()} for i in range(count)]
    shape = list(model.input_shape[1:])
    shape = [dim if dim is not None else (sample_shape[i] if sample_shape and i < len(sample_shape) else 1)
             for i, dim in enumerate(shape)]
    return np.random.default_rng(0).random((count, *shape), dtype=np.float32)


def convert(model, method: str, samples, int8_io: bool = False) -> tuple[bytes | None, str | None]:
    """(flatbuffer, None) of the conversion, or (None, why it failed)."""
    from compressflow.stages.tflite_convert import convert_keras_model

    try:
        return convert_keras_model(model, method, samples=samples, int8_io=int8_io), None
    except Exception as exc:  # noqa: BLE001 - the converter raises many kinds; its own words say why
        return None, converter_failure(exc)


def converter_failure(exc: BaseException) -> str:
    """The lines of a converter error that say what went wrong (the rest is MLIR locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    wanted = [line for line in lines if "error:" in line or line.startswith(("TF Select ops:", "Some ops"))]
    chosen = []
    for line in wanted or lines[:1]:
        text = line[line.index("error:") + len("error:"):].strip() if "error:" in line else line
        if text and text not in chosen and len(chosen) < 3:
            chosen.append(text[:300])
    return "; ".join(chosen) or type(exc).__name__


def float_ops(flatbuffer: bytes) -> list[tuple[str, str]]:
    """(op, layer) of each op of the main subgraph that computes on float values."""
    from ai_edge_litert import schema_py_generated as schema

    from compressflow.stages.tflite_weights import layer_name

    tree = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    op_names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    type_names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    subgraph = tree.subgraphs[0]
    found = []
    for op in subgraph.operators or []:
        code = tree.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        if name in _BOUNDARY_OPS:
            continue
        tensors = [subgraph.tensors[i] for i in list(op.inputs if op.inputs is not None else []) if i >= 0]
        if any(type_names.get(t.type) in _FLOAT_TYPES for t in tensors):
            outputs = [subgraph.tensors[i] for i in list(op.outputs if op.outputs is not None else []) if i >= 0]
            tensor_name = outputs[0].name.decode() if outputs and outputs[0].name else ""
            found.append((name, layer_name(tensor_name)))
    return found


def check_conversion(check: StageCheck, method: str, model, sample_shape, cache: dict, *,
                     int8_io: bool = False) -> None:
    """Add what the ``method`` conversion of ``model`` keeps float, or why it fails.

    ``cache`` holds the result per (model, method, int8_io): one conversion per distinct upstream model.
    """
    key = (id(model), method, int8_io)
    if key not in cache:
        flatbuffer, failure = convert(model, method, random_samples(model, sample_shape=sample_shape), int8_io)
        cache[key] = (failure, float_ops(flatbuffer) if flatbuffer is not None else [])
    failure, floats = cache[key]
    if failure is not None:
        check.add(ERROR, f"the TFLite converter cannot convert the model with method {method}: {failure}")
        return
    if floats:
        items = [f"{op} ({layer})" for op, layer in floats]
        ops = sorted({op for op, _ in floats})
        check.add(WARNING, f"{method}: {len(floats)} op{'s' if len(floats) != 1 else ''} the converter cannot "
                           f"quantize stay float ({', '.join(ops)}): the model is not fully integer", items)
    else:
        check.add(OK, f"{method}: every op quantizes")
