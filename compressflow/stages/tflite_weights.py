"""The parameters stored in a TFLite flatbuffer, read without running the model.

A TFLite file keeps its weights as constant tensors: tensors whose buffer holds
data. This module decodes them with LiteRT's flatbuffer schema (no TensorFlow).

Which constant tensors count as parameters:

* every constant tensor of a float or quantized-integer type (float32, float16,
  int8, uint8, int16, ...): kernels, float biases, folded batch norms;
* integer (int32 / int64) constants only where they are the bias operand of a
  convolution or fully-connected op (the bias of an int8 / int16x8 model).
  Other integer constants are shapes, axes or paddings, not parameters;
* int4 and int2 constants (LiteRT Quantizer), unpacked to one int8 value per weight.

The scales of block-wise quantized tensors are stored as tensors too; they are quantization
parameters, like per-channel scales, not weights.

A parameter tensor of rank 2 or more is a *kernel*: sparsity and clustering are
measured on kernels, as they are on Keras models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_WEIGHT_TYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64,
                 "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16}
_INDEX_TYPES = {"INT32": np.int32, "INT64": np.int64}
# Sub-byte integer types, packed low bits first (two int4 or four int2 values per byte).
_PACKED_BITS = {"INT4": 4, "INT2": 2}
# Operand position of the bias, per op (the only integer constants that are parameters).
_BIAS_OPERAND = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "CONV_3D": 2,
                 "TRANSPOSE_CONV": 3}


@dataclass(frozen=True)
class ConstantTensor:
    """A parameter tensor of a TFLite model, as stored (quantized values stay integers)."""

    subgraph: int
    index: int
    name: str
    layer: str
    dtype: str
    values: np.ndarray
    zero_point: np.ndarray | None  # per channel along quantized_dimension, or one value
    quantized_dimension: int

    @property
    def is_kernel(self) -> bool:
        return self.values.ndim >= 2

    def zero_mask(self) -> np.ndarray:
        """True where the stored value represents 0.0 (the zero point for quantized tensors)."""
        if self.zero_point is None or self.zero_point.size == 0:
            return self.values == 0
        if self.zero_point.size == 1:
            return self.values == self.zero_point.reshape(())
        shape = [1] * self.values.ndim
        shape[self.quantized_dimension] = -1
        return self.values == self.zero_point.reshape(shape)


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def layer_name(tensor_name: str) -> str:
    """The Keras layer a converter-named tensor came from.

    ``sequential/conv2d/Relu;sequential/conv2d/BiasAdd`` -> ``conv2d``;
    names without a path (``arith.constant``) are kept as they are.
    """
    first = tensor_name.split(";", 1)[0]
    parts = first.split("/")
    if len(parts) >= 3:
        return "/".join(parts[1:-1])
    return first


def read_parameters(model: bytes | Path) -> list[ConstantTensor]:
    """Every parameter tensor of a TFLite model (all subgraphs), in file order."""
    from ai_edge_litert import schema_py_generated as schema

    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    type_names = _enum_names(schema.TensorType)
    op_names = _enum_names(schema.BuiltinOperator)
    opcodes = [op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
               for code in tree.operatorCodes or []]

    found: list[ConstantTensor] = []
    for subgraph_index, subgraph in enumerate(tree.subgraphs or []):
        bias_tensors = set()
        scale_tensors = _blockwise_scale_tensors(subgraph)
        for op in subgraph.operators or []:
            position = _BIAS_OPERAND.get(opcodes[op.opcodeIndex])
            inputs = list(op.inputs) if op.inputs is not None else []
            if position is not None and len(inputs) > position and inputs[position] >= 0:
                bias_tensors.add(int(inputs[position]))
        for index, tensor in enumerate(subgraph.tensors or []):
            type_name = type_names.get(tensor.type, "?")
            if index in scale_tensors:
                continue
            if type_name in _WEIGHT_TYPES or type_name in _PACKED_BITS:
                dtype = _WEIGHT_TYPES.get(type_name, np.int8)
            elif type_name in _INDEX_TYPES and index in bias_tensors:
                dtype = _INDEX_TYPES[type_name]
            else:
                continue
            raw = _buffer_bytes(tree.buffers[tensor.buffer], data) if tensor.buffer else None
            if raw is None:
                continue  # not a constant: an activation or an input
            shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
            if type_name in _PACKED_BITS:
                values = unpack_integers(raw, _PACKED_BITS[type_name], shape)
            else:
                values = np.frombuffer(raw, dtype=dtype).reshape(shape)
            name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name or "")
            quant = tensor.quantization
            zero_point = None
            axis = 0
            if quant is not None and quant.zeroPoint is not None and len(quant.zeroPoint):
                zero_point = np.asarray(quant.zeroPoint, dtype=np.int64)
                axis = int(quant.quantizedDimension or 0)
            found.append(ConstantTensor(subgraph=subgraph_index, index=index, name=name, layer=layer_name(name),
                                        dtype=type_name.lower(), values=values, zero_point=zero_point,
                                        quantized_dimension=axis))
    return found


def unpack_integers(raw: bytes, bits: int, shape: list[int]) -> np.ndarray:
    """Signed ``bits``-bit integers packed low bits first into bytes, as int8 of ``shape``."""
    count = int(np.prod(shape)) if shape else 1
    packed = np.frombuffer(raw, dtype=np.uint8)
    per_byte = 8 // bits
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    values = ((packed[:, None] >> shifts[None, :]) & ((1 << bits) - 1)).reshape(-1)[:count].astype(np.int8)
    values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values).astype(np.int8)
    return values.reshape(shape)


def scale_tensor_indices(model: bytes | Path) -> set[int]:
    """Indices (in the first subgraph) of the tensors holding block-wise quantization scales."""
    from ai_edge_litert import schema_py_generated as schema

    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    return _blockwise_scale_tensors(tree.subgraphs[0]) if tree.subgraphs else set()


def _blockwise_scale_tensors(subgraph) -> set[int]:
    """Indices of the tensors that hold the scales of block-wise quantized tensors."""
    scales = set()
    for tensor in subgraph.tensors or []:
        details = getattr(tensor.quantization, "details", None) if tensor.quantization is not None else None
        for name in ("scales", "zeroPoints"):
            index = getattr(details, name, None)
            if isinstance(index, int) and index >= 0:
                scales.add(index)
    return scales


def _buffer_bytes(buffer, data: bytes) -> bytes | None:
    """The bytes of a buffer: inline, or (models over 2 GB) at an offset in the file."""
    if buffer is None:
        return None
    if buffer.data is not None and len(buffer.data):
        return np.asarray(buffer.data, dtype=np.uint8).tobytes()
    if buffer.offset and buffer.offset > 1 and buffer.size:
        return bytes(data[buffer.offset:buffer.offset + buffer.size])
    return None
