"""quantize with method litert: LiteRT Quantizer recipes and rules, calibration, numerics, keep_float, errors."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from compressflow.data.datasets import SklearnDigits, load_splits
from compressflow.errors import StageFailed
from compressflow.stages.base import Artifact, Environment
from compressflow.stages.evaluate import EvaluateStage
from compressflow.stages.litert_recipes import ALGORITHMS, RECIPES
from compressflow.stages.quantize import QuantizeStage
from compressflow.stages.tflite_weights import read_parameters

import stage_chain as chain
from helpers import cli, write

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[2]
AGREEMENT = 0.95  # share of validation samples whose class matches the float model's

# name -> (config, the weight type it stores, its activation types)
FAMILIES = {
    "weight_only_wi8": (dict(recipe="weight_only_wi8_afp32"), "int8", {"float32"}),
    "weight_only_wi4": (dict(recipe="weight_only_wi4_afp32", data="digits"), "int4", {"float32"}),
    "dynamic_wi8": (dict(recipe="dynamic_wi8_afp32"), "int8", {"float32"}),
    "dynamic_wi4": (dict(recipe="dynamic_wi4_afp32"), "int4", {"float32"}),
    "static_wi8_ai8": (dict(recipe="static_wi8_ai8", data="digits", representative_samples=50), "int8", {"int8"}),
    "static_wi8_ai16": (dict(recipe="static_wi8_ai16", data="digits", representative_samples=50), "int8",
                        {"int16"}),
}
MIXED_RULES = [{"layers": ".*", "weights": 4}, {"layers": "dense1", "weights": 8}]


@functools.cache
def float_tflite() -> Artifact:
    """The shared trained model converted to a float TFLite model (method float32)."""
    return chain.run(QuantizeStage(model="trained", method="float32"), chain.shared_env(),
                     {"model": chain.trained()}, name="float")


@functools.cache
def validation():
    splits = load_splits(chain.shared_env().datasets["digits"], chain.shared_env())
    return splits.x_val, splits.y_val


@functools.cache
def float_classes() -> np.ndarray:
    from compressflow.stages.litert_runner import LiteRTModel

    return LiteRTModel(float_tflite().file()).predict(validation()[0]).argmax(1)


def litert(env: Environment | None = None, source: Artifact | None = None, **config) -> tuple[Artifact, list[str]]:
    """Run a litert quantize stage on the float TFLite model (or ``source``); its output and its log."""
    logs: list[str] = []
    stage = QuantizeStage(model="float", method="litert", **config)
    artifact = chain.run(stage, env or chain.shared_env(), {"model": source or float_tflite()}, name="q",
                         logs=logs)
    return artifact, logs


@functools.cache
def family(name: str) -> tuple[Artifact, tuple[str, ...]]:
    artifact, logs = litert(**FAMILIES[name][0])
    return artifact, tuple(logs)


def agreement(path: Path) -> float:
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401  (the runtime the model must run in)

    from compressflow.stages.litert_runner import LiteRTModel

    return float(np.mean(LiteRTModel(path).predict(validation()[0]).argmax(1) == float_classes()))


def kernel_types(artifact: Artifact) -> dict[str, str]:
    """The stored type of each layer's kernel."""
    return {tensor.layer: tensor.dtype for tensor in read_parameters(artifact.file()) if tensor.is_kernel}


def numerics(artifact: Artifact) -> dict:
    return json.loads(artifact.file("numerics.json").read_text())


# --------------------------------------------------------------------------- the library


def test_recipe_names_are_the_library_single_model_recipes():
    from litert_quantizer import algorithm_manager, recipe

    single, bundles = set(), set()
    for name in dir(recipe):
        value = getattr(recipe, name)
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        made = value()
        (single if isinstance(made, list) else bundles).add(name)
    assert set(RECIPES) == single
    assert bundles and all(name.startswith("gemma") for name in bundles)  # LiteRT-LM mappings, left out
    assert set(ALGORITHMS.values()) <= {key.value for key in algorithm_manager.AlgorithmName}


# --------------------------------------------------------------------------- recipe families


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_recipe_family_runs_in_litert_and_predicts_like_the_float_model(name):
    artifact, logs = family(name)
    _, weight_type, activations = FAMILIES[name]
    assert artifact.meta["method"] == "litert" and artifact.meta["recipe"] == FAMILIES[name][0]["recipe"]
    assert set(kernel_types(artifact).values()) == {weight_type}
    assert set(artifact.meta["activation_dtypes"]) & activations == activations
    assert agreement(artifact.file()) >= AGREEMENT
    assert artifact.file().stat().st_size < float_tflite().file().stat().st_size
    assert any("numerics on" in line for line in logs)


def test_a_hadamard_recipe_runs_one_sample_at_a_time_where_litert_cannot_batch_it():
    artifact, _ = litert(recipe="dynamic_wi4c_hr_afp32", data="digits")
    assert set(kernel_types(artifact).values()) >= {"int4"}
    assert agreement(artifact.file()) >= 0.9  # XNNPack cannot resize this model to a batch of 128


def test_int4_is_smaller_than_int8_which_is_smaller_than_float():
    size = {name: family(name)[0].file().stat().st_size for name in ("weight_only_wi4", "weight_only_wi8",
                                                                     "dynamic_wi4", "dynamic_wi8")}
    floating = float_tflite().file().stat().st_size
    assert size["weight_only_wi4"] < size["weight_only_wi8"] < floating
    assert size["dynamic_wi4"] < size["dynamic_wi8"] < floating
    assert floating / size["weight_only_wi4"] > 4  # most of the model is kernels, now half a byte each


def test_a_keras_input_is_converted_to_float_first():
    artifact, logs = litert(source=chain.trained(), recipe="weight_only_wi4_afp32")
    assert any("converted 'trained' to a float TFLite model" in line for line in logs)
    assert artifact.file().read_bytes() == family("weight_only_wi4")[0].file().read_bytes()


# --------------------------------------------------------------------------- rules


def test_rules_give_mixed_precision_and_a_later_rule_wins():
    mixed, _ = litert(rules=MIXED_RULES)
    assert kernel_types(mixed) == {"conv1": "int4", "conv2": "int4", "dense1": "int8", "probs": "int4"}
    assert agreement(mixed.file()) >= AGREEMENT
    sizes = [family(name)[0].file().stat().st_size for name in ("weight_only_wi4", "weight_only_wi8")]
    assert sizes[0] < mixed.file().stat().st_size < sizes[1]
    assert mixed.meta["rules"][1].startswith("weights int8 channel")

    reversed_order, _ = litert(rules=MIXED_RULES[::-1])
    assert set(kernel_types(reversed_order).values()) == {"int4"}


def test_static_rules_calibrate_on_the_data_they_are_given(tmp_path):
    env = Environment(pipeline_dir=tmp_path, seed=0, datasets={
        "digits": SklearnDigits(limit=chain.DIGITS_LIMIT),
        "darker": SklearnDigits(limit=chain.DIGITS_LIMIT, scale=1 / 32)})  # pixel values half as large
    rules = [{"layers": "conv", "weights": 8, "activations": 8}]
    scales = {}
    for data in ("digits", "darker"):
        artifact, logs = litert(env, rules=rules, data=data, representative_samples=40)
        assert "calibrating activation ranges on 40 training samples" in logs
        assert artifact.meta["representative_samples"] == 40
        assert kernel_types(artifact) == {"conv1": "int8", "conv2": "int8", "dense1": "float32", "probs": "float32"}
        scales[data] = _quantized_input_scale(artifact)
    assert scales["darker"] == pytest.approx(scales["digits"] / 2, rel=0.05)


def _quantized_input_scale(artifact: Artifact) -> float:
    """The scale of the int8 tensor the model's float input is quantized into."""
    from compressflow.stages.litert_runner import LiteRTModel

    details = LiteRTModel(artifact.file()).tensor_details()
    quantized = [d for d in details if d["name"].startswith("serving_default") and d["dtype"] == np.int8]
    assert len(quantized) == 1, [d["name"] for d in details]
    return float(quantized[0]["quantization"][0])


# --------------------------------------------------------------------------- numerics and keep_float


def test_the_numerics_table_names_real_tensors_and_the_worst_layers():
    from ai_edge_litert.interpreter import Interpreter

    artifact, logs = family("weight_only_wi4")
    table = numerics(artifact)
    float_names = {d["name"] for d in Interpreter(model_path=str(float_tflite().file())).get_tensor_details()}
    assert table["tensors"] and set(table["tensors"]) <= float_names
    assert table["samples"] == 32 and "validation split of 'digits'" in table["inputs"]
    layers = {layer["layer"]: layer for layer in table["layers"]}
    for name in ("conv1", "conv2", "dense1", "probs"):
        assert layers[name]["quantized"]
        (weights,) = layers[name]["weights"]
        assert weights["tensor"] in float_names and weights["dtype"] == "int4"
        assert 0 < weights["relative_error"] < 0.1 and weights["cosine_similarity"] > 0.9
    assert not layers["pool"]["quantized"]
    (model_input,) = [entry for entry in table["tensors"].values() if entry["role"] == "input"]
    assert model_input["mse"] == 0
    assert table["worst_layers"] and set(table["worst_layers"]) <= {"conv1", "conv2", "dense1", "probs"}
    worst = table["worst_layers"][0]
    assert any("worst layers: " + worst in line for line in logs)
    assert artifact.meta["numerics"]["worst_layers"][0]["layer"] == worst


def test_keep_float_layers_keeps_the_worst_layer_in_float():
    worst = numerics(family("weight_only_wi4")[0])["worst_layers"][0]
    artifact, logs = litert(recipe="weight_only_wi4_afp32", data="digits", keep_float={"layers": 1})
    assert artifact.meta["keep_float"] == {"layers": [worst]}
    kernels = kernel_types(artifact)
    assert kernels.pop(worst) == "float32" and set(kernels.values()) == {"int4"}
    assert any(f"keep_float: keeping {worst} in float" in line for line in logs)
    kept = [layer for layer in numerics(artifact)["layers"] if layer["kept_float"]]
    assert [layer["layer"] for layer in kept] == [worst] and not kept[0]["quantized"]
    assert worst not in artifact.meta["quantized_layers"]


def test_keep_float_max_accuracy_drop_keeps_layers_until_the_bound_holds():
    from compressflow.stages.litert_runner import LiteRTModel

    # conv2 with 2-bit weights and dynamic activations ruins the model; the other layers are fine at 4 bits
    rules = [{"layers": ".*", "weights": 4}, {"layers": "conv2", "weights": 2, "activations": "dynamic"}]
    artifact, logs = litert(rules=rules, data="digits", keep_float={"max_accuracy_drop": 0.02})
    record = artifact.meta["keep_float"]
    assert record["float_accuracy"] - record["attempts"][0]["accuracy"] > 0.02  # the bound did not hold at first
    assert record["layers"] == ["conv2"]
    x, y = validation()
    measured = float(np.mean(LiteRTModel(artifact.file()).predict(x).argmax(1) == y))
    assert measured == pytest.approx(record["accuracy"])
    assert record["float_accuracy"] - measured <= 0.02
    assert kernel_types(artifact) == {"conv1": "int4", "conv2": "float32", "dense1": "int4", "probs": "int4"}
    assert any("keep_float: keeping conv2 in float" in line for line in logs)


# --------------------------------------------------------------------------- evaluate


def test_evaluate_measures_litert_models_like_the_others(tmp_path):
    artifact = family("weight_only_wi4")[0]
    stage = EvaluateStage(models=["float", "int4"], baseline="float", data="digits")
    inputs = {"models": [float_tflite(), _renamed(artifact, "int4")], "baseline": float_tflite()}
    metrics = chain.run(stage, chain.shared_env(), inputs, name="check").metrics()["models"]
    int4, floating = metrics["int4"], metrics["float"]
    assert int4["label"] == "tflite litert weight_only_wi4_afp32"
    assert int4["accuracy"] >= floating["accuracy"] - 0.03
    assert int4["file_bytes"] < floating["file_bytes"] / 4 and int4["gzip_bytes"] < floating["gzip_bytes"]
    assert int4["latency_ms_median"] > 0
    assert int4["params"] == floating["params"]  # int4 kernels are counted, unpacked
    for layer in ("conv1", "conv2", "dense1", "probs"):
        assert int4["layers"][layer]["unique_weights"] <= 16 < floating["layers"][layer]["unique_weights"]
    assert int4["numerics"]["worst_layers"] and int4["numerics"]["output_cosine_similarity"] > 0.9
    assert "numerics" not in floating


def _renamed(artifact: Artifact, stage: str) -> Artifact:
    return Artifact(stage=stage, key=artifact.key, path=artifact.path, kind=artifact.kind, meta=artifact.meta)


# --------------------------------------------------------------------------- errors


def test_a_rule_that_matches_no_layer_is_an_error_naming_the_layers():
    with pytest.raises(StageFailed, match=r"rules\[1\] \(layers: 'dense9'\) matches no layer") as caught:
        litert(rules=[{"layers": ".*", "weights": 4}, {"layers": "dense9", "weights": 8}])
    assert "conv1 (CONV_2D)" in str(caught.value) and "dense1 (FULLY_CONNECTED)" in str(caught.value)


def test_a_recipe_the_model_ops_do_not_support_is_an_error():
    # 8-bit weights in blocks of 64 are supported by none of this model's ops
    with pytest.raises(StageFailed, match="recipe 'dynamic_wi8b64_afp32' quantizes none of the layers"):
        litert(recipe="dynamic_wi8b64_afp32")


def test_an_already_quantized_model_is_refused():
    with pytest.raises(StageFailed, match="already quantized"):
        litert(source=family("weight_only_wi8")[0], recipe="weight_only_wi4_afp32")


PIPELINE = """\
version: 1
name: litert
datasets:
  digits: {{type: sklearn_digits}}
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
  int4:
    type: quantize
    model: base
    method: litert
{body}
"""


@pytest.mark.parametrize("body, line, expected", [
    ("    recipe: weight_only_wi4\n", 13, "did you mean 'weight_only_wi4_afp32'?"),
    ("    recipe: static_wi8_ai8\n", 9, "recipe 'static_wi8_ai8' quantizes activations: it needs 'data'"),
    ("    rules:\n      - {layers: dense1, weights: 8}\n      - {layers: 'conv(', weights: 4}\n", 15,
     "not a valid regular expression"),
    ("    rules:\n      - {layers: dense1, weights: 8, activations: 8}\n", 9, "rules[0] quantizes activations"),
    ("    recipe: weight_only_wi8_afp32\n    numerics: false\n", 9, "'litert' always measures the per-layer"),
], ids=["unknown_recipe", "static_without_data", "bad_regex", "static_rule_without_data", "litert_without_numerics"])
def test_invalid_litert_settings_exit_2_located(tmp_path, body, line, expected):
    path = write(tmp_path / "p.yaml", PIPELINE.format(body=body))
    result = cli("validate", path)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert f"{path}:{line}:" in result.err and expected in result.err, result.err


# --------------------------------------------------------------------------- the example pipeline


@pytest.mark.slow
def test_the_int4_example_pipeline_runs(tmp_path):
    shutil.copy(REPO / "pipelines" / "digits-int4.yaml", tmp_path / "digits-int4.yaml")
    result = cli("run", tmp_path / "digits-int4.yaml", "--set", "params.epochs=3", "--set", "params.prune_epochs=3",
                 "--set", "params.max_accuracy_drop=1", timeout=900)
    assert result.code == 0, result.text
    exported = tmp_path / "out" / "digits-int4.tflite"
    assert exported.exists() and json.loads(Path(f"{exported}.json").read_text())
    assert "tflite litert weight_only_wi4_afp32" in result.out
