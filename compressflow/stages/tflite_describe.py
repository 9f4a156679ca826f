"""What a TFLite file holds: input/output types and quantization, weight and activation types."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from compressflow.stages.litert_runner import LiteRTModel, io_description
from compressflow.stages.tflite_weights import read_parameters, scale_tensor_indices


def describe_tflite(path: Path) -> dict[str, Any]:
    """JSON-ready description of a TFLite model (recorded in a quantize stage's meta).

    ``weight_dtypes``        types of the parameter tensors (kernels and biases)
    ``weight_quantization``  how many parameter tensors are quantized per channel / per tensor
    ``activation_dtypes``    types of the tensors computed at run time (inputs/outputs excluded)
    """
    parameters = read_parameters(path)
    quantization: Counter[str] = Counter()
    for tensor in parameters:
        if tensor.zero_point is None:
            quantization["none"] += 1
        else:
            quantization["per_channel" if tensor.zero_point.size > 1 else "per_tensor"] += 1
    runner = LiteRTModel(path)
    constants = {tensor.index for tensor in parameters if tensor.subgraph == 0} | scale_tensor_indices(path)
    io = {runner.input_detail["index"], runner.output_detail["index"]}
    activations = {np.dtype(detail["dtype"]).name for detail in runner.tensor_details()
                   if detail["index"] not in constants and detail["index"] not in io
                   and len(detail["shape"]) > 1}
    return {
        "input": io_description(runner.input_detail),
        "output": io_description(runner.output_detail),
        "weight_dtypes": sorted({tensor.dtype for tensor in parameters}),
        "weight_quantization": dict(sorted(quantization.items())),
        "activation_dtypes": sorted(activations),
    }
