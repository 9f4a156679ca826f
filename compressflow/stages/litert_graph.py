"""The ops of a float TFLite model as LiteRT Quantizer sees them: op type, scope, layer and tensors.

A *scope* is what the quantizer's regular expressions are searched in: the op's output tensor
names joined with ``;`` (``small_cnn/conv2/Relu;small_cnn/conv2/BiasAdd;...;``). The *layer* is the
Keras layer those names come from (``conv2``), made unique when one layer gives several ops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from compressflow.stages.tflite_weights import layer_name


@dataclass(frozen=True)
class GraphOp:
    """One op of the main subgraph."""

    index: int
    op: str  # TFLite op name: CONV_2D, FULLY_CONNECTED, ...
    scope: str
    layer: str
    inputs: tuple[str, ...]  # activation inputs (computed at run time)
    weights: tuple[str, ...]  # constant inputs of rank 2 or more
    outputs: tuple[str, ...]

    @property
    def exact_regex(self) -> str:
        """A regular expression that selects this op alone."""
        return "^" + re.escape(self.scope) + "$"


def read_ops(flatbuffer: bytes) -> list[GraphOp]:
    """The ops of the model's first subgraph, in execution order."""
    from litert_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    names = [fb.get_tensor_name(tensor) for tensor in subgraph.tensors]

    def constant(index: int) -> bool:
        data = model.buffers[subgraph.tensors[index].buffer].data
        return data is not None and len(data) > 0

    ops: list[GraphOp] = []
    layer_of: dict[str, str] = {}  # tensor name -> the layer of the op that computes it
    for index, op in enumerate(subgraph.operators or []):
        code = model.operatorCodes[op.opcodeIndex].builtinCode
        op_name = fb.TFL_OP_CODE_TO_NAME.get(code)
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        outputs = [int(i) for i in (op.outputs if op.outputs is not None else []) if i >= 0]
        weights = tuple(names[i] for i in inputs if constant(i) and len(subgraph.tensors[i].shape or []) >= 2)
        kind = str(op_name.value if op_name is not None else f"CUSTOM{code}")
        activations = tuple(names[i] for i in inputs if not constant(i))
        layer = _layer(weights, [names[i] for i in outputs], activations, layer_of, kind, index)
        for i in outputs:
            layer_of[names[i]] = layer
        ops.append(GraphOp(index=index, op=kind, scope=fb.get_op_scope(op, subgraph.tensors), layer=layer,
                           inputs=activations, weights=weights, outputs=tuple(names[i] for i in outputs)))
    return _unique_layers(ops)


def _layer(weights, outputs, inputs, layer_of, kind: str, index: int) -> str:
    """The layer name of an op: from its weights' or outputs' names, else after the op that feeds it.

    An op whose output is a signature output (``StatefulPartitionedCall:0``) carries no layer path: a
    softmax after ``probs`` is named ``probs/softmax``.
    """
    for name in (*weights, *outputs):
        if "/" in name:
            return layer_name(name)
    before = next((layer_of[name] for name in inputs if name in layer_of), None)
    return f"{before}/{kind.lower()}" if before else f"{kind.lower()}{index}"


def _unique_layers(ops: list[GraphOp]) -> list[GraphOp]:
    """Number the layers that give more than one op: ``conv2``, ``conv2#2``."""
    seen: dict[str, int] = {}
    unique = []
    for op in ops:
        seen[op.layer] = seen.get(op.layer, 0) + 1
        if seen[op.layer] > 1:
            op = GraphOp(op.index, op.op, op.scope, f"{op.layer}#{seen[op.layer]}", op.inputs, op.weights,
                         op.outputs)
        unique.append(op)
    return unique


def signature_io(flatbuffer: bytes) -> tuple[str, str, tuple[int, ...]]:
    """The serving signature's key, its one input's name and that input's shape (batch first)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=bytes(flatbuffer))
    signatures = interpreter.get_signature_list()
    if not signatures:
        raise ValueError("the model has no signature; convert it with the TFLite converter from a Keras model")
    key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
    inputs = signatures[key]["inputs"]
    if len(inputs) != 1:
        raise ValueError(f"only models with one input are supported (signature {key!r} has {len(inputs)})")
    runner = interpreter.get_signature_runner(key)
    detail = runner.get_input_details()[inputs[0]]
    return key, inputs[0], tuple(int(d) for d in detail["shape"])


def tensor_types(flatbuffer: bytes) -> dict[str, str]:
    """The stored type of every tensor of the first subgraph by name: ``float32``, ``int8``, ``int4``..."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    tree = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    types = {}
    for tensor in tree.subgraphs[0].tensors or []:
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name or "")
        types[name] = names.get(tensor.type, "?")
    return types
