"""Per-layer numerics of a quantized TFLite model against its float model (``numerics.json``).

Both models run side by side on the same samples (LiteRT Quantizer's validation, every tensor
kept); each tensor of the quantized model is compared, dequantized, with the float model's tensor
of the same name:

``mse``                mean squared error
``cosine_similarity``  1.0 when the tensors point the same way
``relative_error``     noise-to-signal power: mse / mean square of the float tensor (both averaged
                       over the samples); null where it is unbounded (the float tensor is all zeros
                       or the quantized one overflows)

Per layer (op), the table gives the error of its weights and of its output, and its *added
error*: the output's relative error minus the largest relative error among its inputs. Errors
carry forward through a network, so a late layer's output is never better than its input; the
added error is what the layer itself contributes, and it is what ``keep_float`` ranks by.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from compressflow.stages.litert_graph import GraphOp, tensor_types

METRIC_DOCS = {
    "mse": "mean squared error against the float model's tensor",
    "cosine_similarity": "cosine of the angle between the quantized and float tensors (1.0 is the same direction)",
    "relative_error": "mse / mean square of the float tensor, each averaged over the samples (noise-to-signal power)",
    "added_error": "relative error of a layer's output minus the largest relative error of its inputs",
}


def compare_tensors(float_model: bytes, quantized_model: bytes, signature: str, input_name: str,
                    samples: np.ndarray) -> dict[str, dict[str, Any]]:
    """Errors of every tensor both models have, averaged over ``samples``: name -> role and metrics."""
    from litert_quantizer import model_validator
    from litert_quantizer.utils import validation_utils
    from litert_quantizer.utils.validation_utils import ValidationErrorMetric as Metric

    from compressflow.stages.litert_quantize import quiet

    data = {signature: [{input_name: np.asarray(sample, np.float32)[None, ...]} for sample in samples]}
    metrics = [Metric.MSE, Metric.COSINE_SIMILARITY, Metric.SNR]
    # NOTE: the SNR slot measures the float tensor's power instead: the library averages each metric
    # over samples, and a mean of per-sample SNRs is dominated by the samples with the least noise.
    functions = [validation_utils.get_validation_func(Metric.MSE),
                 validation_utils.get_validation_func(Metric.COSINE_SIMILARITY), _signal_power]
    with quiet():
        result = model_validator.compare_model(bytes(float_model), bytes(quantized_model), data, metrics,
                                               compare_fns=functions, use_xnnpack=True, num_threads=1)
    comparison = result.get_signature_comparison_result(signature)
    tensors: dict[str, dict[str, Any]] = {}
    for role, group in (("input", comparison.input_tensors), ("output", comparison.output_tensors),
                        ("constant", comparison.constant_tensors), ("activation", comparison.intermediate_tensors)):
        for name, values in group.items():
            tensors[name] = {"role": role, **_metrics(values)}
    return tensors


def _signal_power(quantized: np.ndarray, reference: np.ndarray) -> float:
    """Mean square of the float model's tensor (called as the library calls its metrics)."""
    values = np.asarray(reference, np.float64).reshape(-1)
    return float(np.mean(np.square(values))) if values.size else 0.0


def _metrics(values: dict[str, float]) -> dict[str, float | None]:
    mse, power = float(values["mse"]), float(values["snr"])
    relative = mse / power if power > 0 else (0.0 if mse == 0 else math.inf)
    return {"mse": _finite(mse), "cosine_similarity": _finite(float(values["cosine_similarity"])),
            "relative_error": _finite(relative)}


def _finite(value: float) -> float | None:
    """``value``, or None where it is infinite or NaN (JSON has no such numbers): an unbounded error."""
    return value if math.isfinite(value) else None


def numerics_table(ops: Sequence[GraphOp], tensors: dict[str, dict[str, Any]], quantized_model: bytes, *,
                   quantized: set[int], kept_float: set[int], inputs: str, samples: int) -> dict[str, Any]:
    """The JSON-ready table: per tensor, per layer, the model's output and the worst layers."""
    stored = tensor_types(quantized_model)
    for name, entry in tensors.items():
        entry["dtype"] = stored.get(name)

    def relative(name: str) -> float:
        if name not in tensors:
            return 0.0
        value = tensors[name]["relative_error"]
        return math.inf if value is None else float(value)

    layers = []
    for op in ops:
        output = op.outputs[0] if op.outputs else None
        input_error = max((relative(name) for name in op.inputs), default=0.0)
        layers.append({
            "layer": op.layer, "op": op.op, "quantized": op.index in quantized and op.index not in kept_float,
            "kept_float": op.index in kept_float,
            "weights": [{"tensor": name, **tensors[name]} for name in op.weights if name in tensors],
            "output": {"tensor": output, **tensors[output]} if output in tensors else None,
            "input_relative_error": _finite(input_error),
            "added_error": _added(relative(output), input_error) if output in tensors else None,
        })
    outputs = {name: entry for name, entry in tensors.items() if entry["role"] == "output"}
    return {"reference": "the float TFLite model", "inputs": inputs, "samples": samples, "metrics": METRIC_DOCS,
            "model_output": outputs, "layers": layers,
            "worst_layers": [layer["layer"] for layer in ranked_layers(layers)[:5]], "tensors": tensors}


def _added(output_error: float, input_error: float) -> float | None:
    if math.isinf(output_error):
        return None if not math.isinf(input_error) else 0.0
    return max(0.0, output_error - input_error)


def ranked_layers(layers: list[dict[str, Any]], *, quantized_only: bool = True) -> list[dict[str, Any]]:
    """Layers by added error, largest first (quantized layers only, unless told otherwise)."""
    chosen = [layer for layer in layers if layer["output"] is not None and (layer["quantized"] or not quantized_only)]
    return sorted(chosen, key=lambda layer: (-_unbounded(layer["added_error"]),
                                             -_unbounded(layer["output"]["relative_error"])))


def _unbounded(value: float | None) -> float:
    """An error as a number to sort by: None (unbounded) sorts as infinity."""
    return math.inf if value is None else float(value)


def summary(table: dict[str, Any], count: int = 3) -> dict[str, Any]:
    """What a stage's meta and an evaluation keep of a table: the output's error and the worst layers."""
    output = next(iter(table["model_output"].values()), {})
    return {"samples": table["samples"],
            "output_relative_error": output.get("relative_error"),
            "output_cosine_similarity": output.get("cosine_similarity"),
            "worst_layers": [{"layer": layer["layer"], "op": layer["op"], "added_error": layer["added_error"]}
                             for layer in ranked_layers(table["layers"])[:count]]}


def describe_worst(table: dict[str, Any], count: int = 3) -> str:
    """One log line: the output's error, then the worst layers with their added error."""
    brief = summary(table, count)
    output = brief["output_relative_error"]
    text = (f"numerics on {brief['samples']} samples ({table['inputs']}): output relative error "
            f"{_number(output)}, cosine {_number(brief['output_cosine_similarity'])}")
    if brief["worst_layers"]:
        text += "; worst layers: " + ", ".join(f"{layer['layer']} ({layer['op']}) +{_number(layer['added_error'])}"
                                               for layer in brief["worst_layers"])
    return text


def _number(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:.3g}"
