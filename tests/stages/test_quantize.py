"""quantize: every post-training method runs in LiteRT; QAT with every scheme; determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from compressflow.data.datasets import SklearnDigits
from compressflow.errors import StageFailed
from compressflow.stages.base import Artifact, Environment
from compressflow.stages.quantize import QuantizeStage

import tiny_tf_models as tiny

PRUNE_TARGET = 0.75
CLUSTERS = 8


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Environment:
    return Environment(pipeline_dir=tmp_path_factory.mktemp("pipeline"), seed=0,
                       datasets={"digits": SklearnDigits()})


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def float_model(env):
    return tiny.train_cnn(env)


@pytest.fixture(scope="module")
def float_artifact(float_model, models_dir) -> Artifact:
    return tiny.keras_artifact(float_model, models_dir / "trained", "trained")


@pytest.fixture(scope="module")
def float_accuracy(float_model, env) -> float:
    splits = tiny.digits(env)
    scores = float_model.predict(splits.x_val, verbose=0)
    return float(np.mean(scores.argmax(1) == splits.y_val))


@pytest.fixture(scope="module")
def pruned_model(float_model, env):
    return tiny.prune(float_model, env, sparsity=PRUNE_TARGET)


@pytest.fixture(scope="module")
def inputs_by_scheme(float_model, pruned_model, env, models_dir) -> dict[str, Artifact]:
    """The input each QAT scheme is meant for: float, pruned, clustered, pruned + clustered."""
    clustered = tiny.cluster(float_model, env, clusters=CLUSTERS)
    pruned_clustered = tiny.cluster(pruned_model, env, clusters=CLUSTERS, preserve_sparsity=True)
    return {
        "default": tiny.keras_artifact(float_model, models_dir / "s_default", "trained"),
        "prune_preserving": tiny.keras_artifact(pruned_model, models_dir / "s_pruned", "pruned"),
        "cluster_preserving": tiny.keras_artifact(clustered, models_dir / "s_clustered", "clustered"),
        "prune_cluster_preserving": tiny.keras_artifact(pruned_clustered, models_dir / "s_pc", "pruned_clustered"),
    }


def litert_accuracy(path, env) -> float:
    from compressflow.stages.litert_runner import LiteRTModel

    splits = tiny.digits(env)
    return float(np.mean(LiteRTModel(path).predict(splits.x_val).argmax(1) == splits.y_val))


# (method, int8_io) -> expected weight dtypes, activation dtypes, io dtype
EXPECTED = {
    ("float32", False): ({"float32"}, {"float32"}, "float32"),
    ("dynamic", False): ({"float32", "int8"}, {"float32"}, "float32"),
    ("float16", False): ({"float16"}, {"float32"}, "float32"),
    ("int8", False): ({"int8", "int32"}, {"int8"}, "float32"),
    ("int8", True): ({"int8", "int32"}, {"int8"}, "int8"),
    ("int16x8", False): ({"int8", "int64"}, {"int16"}, "float32"),
}


@pytest.mark.tf
@pytest.mark.parametrize("method,int8_io", list(EXPECTED), ids=[f"{m}{'-int8io' if io else ''}" for m, io in EXPECTED])
def test_post_training_method_runs_in_litert_with_expected_types(
        method, int8_io, float_artifact, float_accuracy, env, run_stage):
    stage = QuantizeStage(model="trained", method=method, data="digits", int8_io=int8_io,
                          representative_samples=100)
    out = run_stage(stage, env, {"model": float_artifact})

    assert out.kind == "tflite_model" and out.file().name == "model.tflite"
    weights, activations, io_dtype = EXPECTED[(method, int8_io)]
    assert set(out.meta["weight_dtypes"]) == weights
    assert set(out.meta["activation_dtypes"]) == activations
    assert out.meta["input"]["dtype"] == io_dtype and out.meta["output"]["dtype"] == io_dtype
    assert out.meta["method"] == method and out.meta["from_qat"] is False
    if int8_io:
        assert out.meta["input"]["scale"] > 0 and out.meta["output"]["scale"] > 0
    assert abs(litert_accuracy(out.file(), env) - float_accuracy) <= 0.03


@pytest.mark.tf
def test_int8_conversion_is_byte_identical(float_artifact, env, run_stage):
    stage = QuantizeStage(model="trained", method="int8", data="digits", representative_samples=50)
    first = run_stage(stage, env, {"model": float_artifact}, name="int8_a")
    second = run_stage(stage, env, {"model": float_artifact}, name="int8_b")
    assert first.file().read_bytes() == second.file().read_bytes()
    assert first.meta["representative_samples"] == 50


@pytest.mark.tf
def test_tflite_input_is_refused_with_a_clear_message(float_artifact, env, run_stage):
    converted = run_stage(QuantizeStage(model="trained", method="float32"), env, {"model": float_artifact},
                          name="as_tflite")
    with pytest.raises(StageFailed, match="needs a Keras model, but 'as_tflite' gives a tflite_model"):
        run_stage(QuantizeStage(model="as_tflite", method="dynamic"), env, {"model": converted})


@pytest.fixture(scope="module")
def qat_output(inputs_by_scheme, env, tmp_path_factory):
    """QAT (1 epoch) of a scheme on the input meant for ``source`` (default: the scheme's own), run once."""
    directory = tmp_path_factory.mktemp("qat")
    done: dict[tuple[str, str], Artifact] = {}

    def get(scheme: str, source: str | None = None) -> Artifact:
        source = source or scheme
        if (scheme, source) not in done:
            artifact = inputs_by_scheme[source]
            stage = QuantizeStage(model=artifact.stage, method="qat", scheme=scheme, data="digits", epochs=1,
                                  batch_size=64, learning_rate=1e-4)
            done[scheme, source] = tiny.run_into(stage, env, {"model": artifact}, f"qat_{scheme}_{source}",
                                                 directory)
        return done[scheme, source]

    return get


@pytest.mark.tf
@pytest.mark.parametrize("scheme", ["default", "prune_preserving", "cluster_preserving", "prune_cluster_preserving"])
def test_qat_scheme_gives_a_loadable_keras_model_that_keeps_what_it_preserves(scheme, qat_output, env):
    from compressflow.stages.keras_artifacts import load_keras_artifact

    out = qat_output(scheme)
    assert out.kind == "keras_model" and out.file().name == "model.h5"
    assert out.meta["qat"] is True and out.meta["scheme"] == scheme
    model = load_keras_artifact(out)
    splits = tiny.digits(env)
    accuracy = float(np.mean(model.predict(splits.x_val, verbose=0).argmax(1) == splits.y_val))
    assert accuracy > 0.6 and accuracy == pytest.approx(out.meta["val_accuracy"], abs=1e-6)
    if "prune" in scheme:
        assert tiny.kernel_sparsity(model) == pytest.approx(PRUNE_TARGET, abs=0.01)
    if "cluster" in scheme:
        # Centroids (and the zero kept by sparsity preservation) stay the only values. tfmot
        # trains the centroids of a Conv2D per output channel, of other layers per kernel.
        limit = CLUSTERS + (1 if "prune" in scheme else 0)
        per_channel = tiny.kernel_unique_counts(model, per_channel=True)
        assert all(count <= limit for count in per_channel.values()), per_channel
        dense = [count for name, count in tiny.kernel_unique_counts(model).items() if "dense" in name]
        assert dense and all(count <= limit for count in dense)


@pytest.mark.tf
def test_default_qat_of_a_pruned_model_loses_its_zeros(qat_output):
    from compressflow.stages.keras_artifacts import load_keras_artifact

    plain = load_keras_artifact(qat_output("default", "prune_preserving"))
    assert tiny.kernel_sparsity(plain) < PRUNE_TARGET - 0.2


@pytest.mark.tf
def test_qat_model_converted_by_a_following_stage_is_int8(qat_output, env, run_stage):
    qat_artifact = qat_output("prune_preserving")
    out = run_stage(QuantizeStage(model="qat", method="dynamic"), env, {"model": qat_artifact})
    assert out.meta["from_qat"] is True
    assert set(out.meta["weight_dtypes"]) == {"int8", "int32"}
    assert set(out.meta["activation_dtypes"]) == {"int8"}
    assert litert_accuracy(out.file(), env) > 0.6

    from compressflow.stages.tflite_weights import read_parameters

    kernels = [t for t in read_parameters(out.file()) if t.is_kernel]
    zeros = sum(int(t.zero_mask().sum()) for t in kernels) / sum(t.values.size for t in kernels)
    assert zeros >= PRUNE_TARGET - 0.01  # the pruned zeros survive QAT and conversion

    full = run_stage(QuantizeStage(model="qat", method="int8", data="digits", int8_io=True,
                                   representative_samples=50), env, {"model": qat_artifact})
    assert full.meta["input"]["dtype"] == "int8" and litert_accuracy(full.file(), env) > 0.6


@pytest.mark.tf
@pytest.mark.parametrize("method", ["float16", "int16x8", "qat"])
def test_qat_model_is_not_converted_to_float16_int16x8_or_trained_again(method, qat_output, env, run_stage):
    stage = QuantizeStage(model="qat", method=method, data="digits")
    with pytest.raises(StageFailed, match="quantization-aware model"):
        run_stage(stage, env, {"model": qat_output("prune_preserving")})


def test_config_rules():
    with pytest.raises(ValidationError, match="needs 'data'"):
        QuantizeStage(model="m", method="int8")
    with pytest.raises(ValidationError, match="'int8_io' goes with method 'int8'"):
        QuantizeStage(model="m", method="dynamic", int8_io=True)
    with pytest.raises(ValidationError, match="'qat' needs at least 1 epoch"):
        QuantizeStage(model="m", method="qat", data="d", epochs=0)
    with pytest.raises(ValidationError, match="'scheme' goes with method 'qat'"):
        QuantizeStage(model="m", method="dynamic", scheme="prune_preserving")
    assert QuantizeStage(model="m", method="qat", data="d").output_kind() == "keras_model"
    assert QuantizeStage(model="m", method="dynamic").output_kind() == "tflite_model"
    # training options do not change a conversion's cache key
    assert QuantizeStage(model="m", method="dynamic", epochs=9).key_config() == \
        QuantizeStage(model="m", method="dynamic").key_config()
    json.dumps(QuantizeStage(model="m", method="qat", data="d").key_config())


def test_qat_layer_fields_go_with_qat_and_stay_out_of_conversion_keys():
    for field, value in (("include", ["conv*"]), ("exclude", ["dense"]), ("quantize_configs", {"x": "m:Config"})):
        with pytest.raises(ValidationError, match=f"'{field}' goes with method 'qat'"):
            QuantizeStage(model="m", method="int8", data="d", **{field: value})
        qat = QuantizeStage(model="m", method="qat", data="d", **{field: value})
        assert qat.key_config()[field] == value
    with pytest.raises(ValidationError, match="quantize_configs"):
        QuantizeStage(model="m", method="qat", data="d", quantize_configs={"x": "not a class spec"})
    conversion = QuantizeStage(model="m", method="dynamic").key_config()
    assert not {"include", "exclude", "quantize_configs", "batchnorm"} & set(conversion)
