"""evaluate: metrics of Keras and TFLite models, baseline comparison, gates, table."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from compressflow.data.datasets import SklearnDigits
from compressflow.errors import StageFailed
from compressflow.stages.base import Artifact, Environment
from compressflow.stages.evaluate import EvaluateStage, LatencyOptions, Requirements, read_metrics
from compressflow.stages.gates import unmet_requirements
from compressflow.stages.quantize import QuantizeStage
from compressflow.stages.report_table import format_table, human_bytes, readable

import tiny_tf_models as tiny

PRUNE_TARGET = 0.75
CLUSTERS = 8
FAST_LATENCY = LatencyOptions(runs=20, warmup=3)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Environment:
    return Environment(pipeline_dir=tmp_path_factory.mktemp("pipeline"), seed=0,
                       datasets={"digits": SklearnDigits()})


@pytest.fixture(scope="module")
def artifacts(env, tmp_path_factory) -> dict[str, Artifact]:
    """trained, pruned, clustered, qat (Keras); float32 TFLite baseline; int8 and int8-io TFLite of pruned."""
    directory = tmp_path_factory.mktemp("artifacts")
    model = tiny.train_cnn(env)
    pruned = tiny.prune(model, env, sparsity=PRUNE_TARGET)
    found = {
        "trained": tiny.keras_artifact(model, directory / "trained", "trained"),
        "pruned": tiny.keras_artifact(pruned, directory / "pruned", "pruned"),
        "clustered": tiny.keras_artifact(tiny.cluster(model, env, clusters=CLUSTERS), directory / "clustered",
                                         "clustered"),
    }
    found["float"] = tiny.run_into(QuantizeStage(model="trained", method="float32"), env,
                                   {"model": found["trained"]}, "float", directory)
    found["qat"] = tiny.run_into(QuantizeStage(model="pruned", method="qat", scheme="prune_preserving",
                                               data="digits", epochs=1), env, {"model": found["pruned"]}, "qat",
                                 directory)
    for name, io in (("int8", False), ("int8_io", True)):
        stage = QuantizeStage(model="pruned", method="int8", data="digits", int8_io=io, representative_samples=100)
        found[name] = tiny.run_into(stage, env, {"model": found["pruned"]}, name, directory)
    return found


@pytest.mark.tf
def test_metrics_of_keras_and_tflite_models_make_sense(artifacts, env, run_stage):
    names = ["float", "trained", "pruned", "clustered", "qat", "int8", "int8_io"]
    stage = EvaluateStage(models=names, baseline="float", data="digits", top_k=[1, 3], latency=FAST_LATENCY,
                          require=Requirements(max_accuracy_drop=0.05))
    out = run_stage(stage, env, {"models": [artifacts[n] for n in names], "baseline": artifacts["float"]},
                    name="check")

    baseline, models = read_metrics(out)
    assert baseline == "float" and set(models) == set(names) and out.meta["models"] == names
    for name, m in models.items():
        assert 0.0 <= m["accuracy"] <= m["top3_accuracy"] <= 1.0, name
        assert m["accuracy"] > 0.8, name
        assert m["samples"] == 359
        assert 0 < m["latency_ms_median"] <= m["latency_ms_p90"], name
        assert 0 < m["gzip_bytes"] and 0 < m["file_bytes"]
    # the same 2,970 parameters whatever the format (QAT ranges are not parameters)
    assert {models[name]["params"] for name in names} == {2970}
    # pruning shows as sparsity, globally and per layer; int8 keeps the zeros
    assert models["pruned"]["sparsity"] == pytest.approx(PRUNE_TARGET, abs=0.01)
    assert all(layer["sparsity"] == pytest.approx(PRUNE_TARGET, abs=0.01)
               for layer in models["pruned"]["layers"].values())
    assert models["int8"]["sparsity"] >= PRUNE_TARGET - 0.01
    assert models["qat"]["sparsity"] == pytest.approx(PRUNE_TARGET, abs=0.01)
    assert models["trained"]["sparsity"] < 0.05
    assert set(models["int8"]["layers"]) == {"conv", "dense"}
    # clustering shows as unique weights per layer
    assert all(layer["unique_weights"] <= CLUSTERS for layer in models["clustered"]["layers"].values())
    assert models["trained"]["layers"]["dense"]["unique_weights"] > 1000
    # int8 is smaller; int8 input/output are (de)quantized: same accuracy as float io
    assert models["int8"]["gzip_bytes"] < models["float"]["gzip_bytes"]
    assert models["int8"]["gzip_compression"] > 1.5
    assert models["int8_io"]["accuracy"] == pytest.approx(models["int8"]["accuracy"], abs=0.01)
    assert abs(models["int8"]["accuracy_delta"]) <= 0.05
    assert models["int8"]["speedup"] > 0
    assert "accuracy_delta" not in models["float"]

    table = (out.path / "table.txt").read_text()
    assert stage.summary(out) == table
    header, rule, *rows = table.splitlines()
    assert header.split()[:3] == ["model", "kind", "accuracy"] and set(rule) <= {"-", " "}
    assert rows[0].startswith("float *") and "tflite float32" in rows[0]
    assert any(row.startswith("int8_io ") and "tflite int8 io" in row for row in rows)
    assert any(row.startswith("qat ") and "keras qat" in row for row in rows)
    assert "note:" not in table  # a TFLite baseline needs no format note


@pytest.mark.tf
def test_unmet_requirements_fail_naming_model_and_numbers_after_writing_metrics(
        artifacts, env, run_stage, tmp_path):
    stage = EvaluateStage(models=["trained", "int8"], baseline="trained", data="digits", latency=FAST_LATENCY,
                          require=Requirements(min_compression=1000, max_latency_ms=1e-6))
    with pytest.raises(StageFailed) as failure:
        run_stage(stage, env, {"models": [artifacts["trained"], artifacts["int8"]],
                               "baseline": artifacts["trained"]}, name="gate")
    message = str(failure.value)
    assert "2 requirements not met" in message
    assert "model 'int8': gzip size" in message and "min_compression asks for at least 1000x" in message
    assert "model 'int8': median latency" in message and "max_latency_ms 1e-06 ms" in message
    assert "'trained':" not in message.replace("baseline 'trained'", "")  # the baseline is not gated

    written = tmp_path / "outputs" / "gate"
    metrics = json.loads((written / "metrics.json").read_text())
    assert set(metrics["models"]) == {"trained", "int8"}
    table = (written / "table.txt").read_text()
    assert "int8" in table and "note: the baseline 'trained' is a Keras file" in table


@pytest.mark.tf
def test_tflite_model_measured_without_latency(artifacts, env, run_stage):
    stage = EvaluateStage(models=["int8"], data="digits", latency=None, split="train")
    _, models = read_metrics(run_stage(stage, env, {"models": [artifacts["int8"]]}))
    assert "latency_ms_median" not in models["int8"] and models["int8"]["samples"] == 1438
    assert "accuracy_delta" not in models["int8"]


@pytest.mark.tf
def test_a_model_that_predicts_one_class_is_warned_about(env, run_stage, tmp_path):
    from compressflow.stages.tfutil import keras

    k = keras()
    constant = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Flatten(),
                             k.layers.Dense(10, kernel_initializer="zeros",
                                            bias_initializer=k.initializers.Constant([0, 0, 0, 5, 0, 0, 0, 0, 0, 0]))])
    found = {"constant": tiny.keras_artifact(constant, tmp_path / "constant", "constant"),
             "trained": tiny.keras_artifact(tiny.train_cnn(env, epochs=4), tmp_path / "trained", "trained")}
    logs: list[str] = []
    stage = EvaluateStage(models=["trained", "constant"], baseline="trained", data="digits", latency=None)
    out = run_stage(stage, env, {"models": list(found.values()), "baseline": found["trained"]}, logs=logs)
    expected = ("model 'constant' predicts class 3 for 100% of the validation samples: BatchNorm statistics may "
                "not fit (try `batchnorm: freeze`) or the model has not learned")
    metrics = out.metrics()
    assert metrics["warnings"] == [expected]
    assert f"warning: {expected}" in logs
    assert metrics["models"]["constant"]["top_predicted_share"] == 1.0
    assert metrics["models"]["trained"]["top_predicted_share"] < 0.5
    assert "predicts class 3" in out.file("table.txt").read_text()


def test_config_rules():
    with pytest.raises(ValidationError, match="must be one of 'models'"):
        EvaluateStage(models=["a"], baseline="b", data="d")
    with pytest.raises(ValidationError, match="needs 'baseline'"):
        EvaluateStage(models=["a"], data="d", require={"max_accuracy_drop": 0.01})
    with pytest.raises(ValidationError, match="needs latency measured"):
        EvaluateStage(models=["a"], data="d", latency=None, require={"max_latency_ms": 5})
    with pytest.raises(ValidationError):
        EvaluateStage(models=["a"], data="d", top_k=[0])
    with pytest.raises(ValidationError, match="'require.models' names 'c', not in 'models'"):
        EvaluateStage(models=["a", "b"], baseline="a", data="d", require={"min_compression": 2, "models": ["c"]})


def _metrics(accuracy, gzip_bytes, latency, **extra):
    return {"kind": "tflite_model", "label": "tflite", "accuracy": accuracy, "params": 10, "sparsity": 0.5,
            "gzip_bytes": gzip_bytes, "file_bytes": gzip_bytes, "latency_ms_median": latency, **extra}


def test_gates_and_table_without_tensorflow():
    models = {"base": _metrics(0.98, 11_000, 0.2),
              "small": _metrics(0.96, 1_000, 0.1, accuracy_delta=-0.02, gzip_compression=11.0, speedup=2.0)}
    assert unmet_requirements(Requirements(max_accuracy_drop=0.03, min_compression=10), models, "base") == []
    problems = unmet_requirements(Requirements(max_accuracy_drop=0.01, min_compression=12, max_latency_ms=0.05),
                                  models, "base")
    assert problems == [
        "model 'small': accuracy 0.9600 is 2.00 points below baseline 'base' (0.9800); "
        "max_accuracy_drop allows 1.00 points",
        "model 'small': gzip size 1,000 B against baseline 'base''s 11,000 B is a compression of 11.00x; "
        "min_compression asks for at least 12x",
        "model 'small': median latency 0.100 ms per sample is above max_latency_ms 0.05 ms",
    ]
    models["keras"] = _metrics(0.98, 30_000, 0.3, accuracy_delta=0.0, gzip_compression=0.37, speedup=0.7)
    assert len(unmet_requirements(Requirements(min_compression=10), models, "base")) == 1
    assert unmet_requirements(Requirements(min_compression=10, models=["small"]), models, "base") == []
    del models["keras"]
    table = format_table(models, "base").splitlines()
    assert len({len(line) for line in table[:2]}) == 1  # header and rule are aligned
    assert table[3].split() == ["small", "tflite", "0.9600", "-2.00", "pt", "10", "50.0%", "1000", "B",
                                "11.0x", "0.1", "2.00x"]
    assert human_bytes(11_000) == "10.7 KiB" and human_bytes(None) == "-"
    assert [readable(v) for v in (1234.5, 12.34, 1.234, 0.3333, 0.003124, None)] == [
        "1234", "12.3", "1.23", "0.333", "0.00312", "-"]
