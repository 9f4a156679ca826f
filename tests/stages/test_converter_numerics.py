"""Per-layer numerics of the TFLite converter's quantizations (int8, dynamic): table, ranking, evaluate."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from compressflow.data.datasets import load_splits
from compressflow.stages.base import Artifact
from compressflow.stages.evaluate import EvaluateStage
from compressflow.stages.quantize import QuantizeStage
from compressflow.stages.tflite_weights import read_parameters

import stage_chain as chain

KERNEL_LAYERS = {"conv1", "conv2", "dense1", "probs"}
CALIBRATION = 50


def quantize(name: str, **config) -> tuple[Artifact, tuple[str, ...]]:
    logs: list[str] = []
    artifact = chain.run(QuantizeStage(model="trained", **config), chain.shared_env(), {"model": chain.trained()},
                         name=name, logs=logs)
    return artifact, tuple(logs)


@functools.cache
def int8() -> tuple[Artifact, tuple[str, ...]]:
    return quantize("int8", method="int8", data="digits", representative_samples=CALIBRATION)


@functools.cache
def dynamic() -> tuple[Artifact, tuple[str, ...]]:
    return quantize("dynamic", method="dynamic", data="digits")


@functools.cache
def float_tflite() -> Artifact:
    return quantize("float", method="float32")[0]


def numerics(artifact: Artifact) -> dict:
    return json.loads(artifact.file("numerics.json").read_text())


def integer_kernels(artifact: Artifact) -> set[str]:
    """The layers whose kernels the written model stores as integers (read from its flatbuffer)."""
    return {tensor.layer for tensor in read_parameters(artifact.file())
            if tensor.is_kernel and tensor.dtype.startswith("int")}


def validation() -> np.ndarray:
    return load_splits(chain.shared_env().datasets["digits"], chain.shared_env()).x_val


def assert_ranked_worst_first(table: dict) -> None:
    by_name = {layer["layer"]: layer for layer in table["layers"]}
    worst = [by_name[name] for name in table["worst_layers"]]
    assert worst and all(layer["quantized"] for layer in worst)
    added = [layer["added_error"] for layer in worst]
    assert added == sorted(added, reverse=True)
    others = [layer["added_error"] for layer in table["layers"]
              if layer["quantized"] and layer["layer"] not in table["worst_layers"]]
    assert all(value <= added[-1] for value in others)


# --------------------------------------------------------------------------- the fields and keys


def test_numerics_fields_are_in_the_keys_of_the_methods_that_measure_them():
    measured = QuantizeStage(model="m", method="int8", data="d").key_config()
    assert measured["numerics"] is True and measured["numerics_samples"] == 32
    assert QuantizeStage(model="m", method="int8", data="d", numerics_samples=8).key_config() != measured
    assert QuantizeStage(model="m", method="dynamic", data="d").key_config()["numerics"] is True
    for unmeasured in (QuantizeStage(model="m", method="float16"), QuantizeStage(model="m", method="dynamic"),
                       QuantizeStage(model="m", method="float32", numerics_samples=8)):
        assert not {"numerics", "numerics_samples"} & set(unmeasured.key_config())
    litert = QuantizeStage(model="m", method="litert", recipe="weight_only_wi8_afp32").key_config()
    assert "numerics" not in litert and litert["numerics_samples"] == 32
    assert "litert-quantizer" in QuantizeStage(model="m", method="int8", data="d").libraries
    assert "litert-quantizer" not in QuantizeStage(model="m", method="int8", data="d", numerics=False).libraries
    with pytest.raises(ValidationError, match="litert' always measures"):
        QuantizeStage(model="m", method="litert", recipe="weight_only_wi8_afp32", numerics=False)


# --------------------------------------------------------------------------- int8 and dynamic tables



@pytest.mark.tf
def test_int8_writes_a_row_per_layer_with_finite_errors_ranked_worst_first():
    from ai_edge_litert.interpreter import Interpreter

    artifact, logs = int8()
    table = numerics(artifact)
    float_names = {d["name"] for d in Interpreter(model_path=str(float_tflite().file())).get_tensor_details()}
    assert table["tensors"] and set(table["tensors"]) <= float_names
    assert table["samples"] == 32 and "validation split of 'digits'" in table["inputs"]
    names = [layer["layer"] for layer in table["layers"]]
    assert len(names) == len(set(names))
    quantized = {layer["layer"]: layer for layer in table["layers"] if layer["quantized"]}
    assert KERNEL_LAYERS <= set(quantized) and KERNEL_LAYERS == integer_kernels(artifact)
    for layer in quantized.values():
        assert math.isfinite(layer["added_error"]) and layer["added_error"] >= 0
        assert 0 < layer["output"]["relative_error"] < 0.05 and layer["output"]["dtype"] == "int8"
    for name in KERNEL_LAYERS:
        (weights,) = quantized[name]["weights"]
        assert weights["dtype"] == "int8" and 0 < weights["relative_error"] < 0.01
    assert_ranked_worst_first(table)
    assert artifact.meta["numerics"]["worst_layers"][0]["layer"] == table["worst_layers"][0]
    assert artifact.meta["numerics_file"] == "numerics.json"
    assert any("worst layers: " + table["worst_layers"][0] in line for line in logs)


@pytest.mark.tf
def test_dynamic_counts_as_quantized_only_the_layers_whose_weights_became_int8():
    artifact, _ = dynamic()
    table = numerics(artifact)
    quantized = {layer["layer"] for layer in table["layers"] if layer["quantized"]}
    # NOTE: dynamic range quantization leaves small kernels in float
    assert quantized == integer_kernels(artifact) and quantized < KERNEL_LAYERS
    for layer in table["layers"]:
        if layer["layer"] in KERNEL_LAYERS - quantized:
            assert layer["weights"][0]["mse"] == 0 and layer["weights"][0]["dtype"] == "float32"
    assert all(layer["output"]["dtype"] == "float32" for layer in table["layers"] if layer["output"])
    assert_ranked_worst_first(table)
    assert {entry["layer"] for entry in artifact.meta["numerics"]["worst_layers"]} <= quantized


@pytest.mark.tf
def test_int16x8_measures_its_16_bit_activations():
    artifact, _ = quantize("int16x8", method="int16x8", data="digits", representative_samples=CALIBRATION,
                           numerics_samples=8)
    table = numerics(artifact)
    assert table["samples"] == 8
    quantized = [layer for layer in table["layers"] if layer["quantized"]]
    assert KERNEL_LAYERS <= {layer["layer"] for layer in quantized}
    assert {layer["output"]["dtype"] for layer in quantized if layer["layer"] in KERNEL_LAYERS} == {"int16"}
    assert_ranked_worst_first(table)


@pytest.mark.tf
def test_without_data_or_with_float16_there_is_no_table_and_the_log_says_why():
    for name, config, reason in (("dyn-nodata", dict(method="dynamic"), "no 'data'"),
                                 ("half", dict(method="float16", data="digits"), "float16 model")):
        artifact, logs = quantize(name, **config)
        assert not artifact.file("numerics.json").exists() and "numerics" not in artifact.meta
        assert any("no per-layer numerics" in line and reason in line for line in logs)


# --------------------------------------------------------------------------- what the table measures


@pytest.mark.tf
def test_the_first_layer_error_is_what_the_quantization_debugger_measures():
    from compressflow.stages import keras_artifacts, tflite_convert
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    model = keras_artifacts.load_keras_artifact(chain.trained())
    splits = load_splits(chain.shared_env().datasets["digits"], chain.shared_env())
    calibration = tflite_convert.representative_samples(splits.x_train, CALIBRATION)
    converter = tflite_convert._configured(tf.lite.TFLiteConverter.from_keras_model(model), "int8", calibration,
                                           False)

    def samples():
        for sample in splits.x_val[:32]:
            yield [np.asarray(sample, np.float32)[None, ...]]

    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=samples)
    debugger.run()
    (conv1,) = [stats for name, stats in debugger.layer_statistics.items() if "/conv1/" in name]
    ours = {layer["layer"]: layer for layer in numerics(int8()[0])["layers"]}["conv1"]["output"]
    # NOTE: the first layer's input is exact, so its output error is the layer's own in both measurements
    assert ours["mse"] == pytest.approx(float(conv1["mean_squared_error"]), rel=1e-3)


@pytest.mark.tf
def test_a_layer_whose_quantized_weights_are_perturbed_ranks_worst():
    from compressflow.stages.converter_numerics import numerics_for
    from compressflow.stages.litert_numerics import ranked_layers

    table = numerics(int8()[0])
    kernel_ranking = [layer["layer"] for layer in ranked_layers(table["layers"]) if layer["layer"] in KERNEL_LAYERS]
    victim = kernel_ranking[-1]  # the kernel layer that adds the least error
    perturbed = _scaled_weight_scales(int8()[0].file().read_bytes(), victim, 1.5)
    samples = np.asarray(validation()[:32], np.float32)
    after = numerics_for(float_tflite().file().read_bytes(), perturbed, samples, "validation")
    assert after["worst_layers"][0] == victim != table["worst_layers"][0]
    layers = {layer["layer"]: layer for layer in after["layers"]}
    assert layers[victim]["added_error"] > 10 * max(layer["added_error"] for name, layer in layers.items()
                                                    if name != victim and layer["quantized"])


def _scaled_weight_scales(flatbuffer: bytes, layer: str, factor: float) -> bytes:
    """The model with ``layer``'s int8 kernel dequantizing ``factor`` times larger."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    changed = 0
    for tensor in tree.subgraphs[0].tensors:
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        if f"/{layer}/" in name and tensor.type == schema.TensorType.INT8 and tensor.buffer and \
                len(tensor.shape) >= 2 and tree.buffers[tensor.buffer].data is not None:
            tensor.quantization.scale = [scale * factor for scale in tensor.quantization.scale]
            changed += 1
    assert changed == 1, f"expected one int8 kernel of {layer}, changed {changed}"
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --------------------------------------------------------------------------- evaluate


@pytest.mark.tf
def test_evaluate_shows_the_worst_layers_of_converter_and_litert_models():
    litert = chain.run(QuantizeStage(model="float", method="litert", recipe="weight_only_wi8_afp32", data="digits"),
                       chain.shared_env(), {"model": float_tflite()}, name="litert")
    models = [float_tflite(), _renamed(int8()[0], "int8"), _renamed(dynamic()[0], "dynamic"),
              _renamed(litert, "litert")]
    stage = EvaluateStage(models=["float", "int8", "dynamic", "litert"], baseline="float", data="digits",
                          latency=None)
    output = chain.run(stage, chain.shared_env(), {"models": models, "baseline": float_tflite()}, name="check")
    measured = output.metrics()["models"]
    text = output.file("table.txt").read_text()
    assert "numerics" not in measured["float"]
    for name, artifact in (("int8", int8()[0]), ("dynamic", dynamic()[0]), ("litert", litert)):
        worst = numerics(artifact)["worst_layers"]
        assert [layer["layer"] for layer in measured[name]["numerics"]["worst_layers"]] == worst[:3]
        (line,) = [line for line in text.splitlines() if line.startswith(f"numerics of {name} ")]
        shown = line.split("worst layers: ")[1].split(", ")
        assert [entry.split(" ")[0] for entry in shown] == worst[:3]


def _renamed(artifact: Artifact, stage: str) -> Artifact:
    return Artifact(stage=stage, key=artifact.key, path=artifact.path, kind=artifact.kind, meta=artifact.meta)
