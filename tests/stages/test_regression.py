"""A regression end to end: training stages take any loss and metrics, evaluate measures what fits the task
(MAE / MSE / R², no accuracy) on Keras and TFLite models alike, and gates bound MAE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, write
from stage_chain import load, run

from compressflow.data.datasets import SklearnDiabetes, load_splits
from compressflow.errors import GateFailed, StageFailed
from compressflow.stages.base import Environment
from compressflow.stages.cluster import ClusterStage
from compressflow.stages.distill import DistillStage
from compressflow.stages.evaluate import EvaluateStage, LatencyOptions, Requirements
from compressflow.stages.fine_tune import FineTuneStage
from compressflow.stages.load import LoadStage
from compressflow.stages.prune import PruneStage
from compressflow.stages.quantize import QuantizeStage

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[2]
FAST_LATENCY = LatencyOptions(runs=5, warmup=1)
MODELS = ["float", "trained", "pruned", "int8"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Environment:
    # NOTE: no `task:`: float labels with non-integer values make it a regression
    return Environment(pipeline_dir=tmp_path_factory.mktemp("pipeline"), seed=0,
                       datasets={"diabetes": SklearnDiabetes()})


@pytest.fixture(scope="module")
def chain(env):
    """An MLP regressor trained with loss mse, pruned to 50% (mse, mae), int8 and float32 TFLite models."""
    logs: list[str] = []
    found = {"base": run(LoadStage(builder="compressflow.models:mlp_regressor", args={"hidden": [16]}), env,
                         name="base")}
    found["trained"] = run(FineTuneStage(model="base", data="diabetes", loss="mse", metrics=["mae"], epochs=8,
                                         batch_size=16, learning_rate=3e-3), env, {"model": found["base"]},
                           name="trained", logs=logs)
    found["pruned"] = run(PruneStage(model="trained", data="diabetes", loss="mean_squared_error", metrics=["mae"],
                                     schedule={"type": "constant", "target_sparsity": 0.5}, epochs=2,
                                     batch_size=16), env, {"model": found["trained"]}, name="pruned")
    found["int8"] = run(QuantizeStage(model="pruned", method="int8", data="diabetes", representative_samples=100),
                        env, {"model": found["pruned"]}, name="int8")
    found["float"] = run(QuantizeStage(model="trained", method="float32"), env, {"model": found["trained"]},
                         name="float")
    return found, logs


def _evaluate(env, chain, **options):
    found, _ = chain
    stage = EvaluateStage(models=MODELS, baseline="float", data="diabetes", latency=FAST_LATENCY, **options)
    return run(stage, env, {"models": [found[name] for name in MODELS], "baseline": found["float"]}, name="check")


def test_fine_tune_with_loss_mse_reports_the_loss_and_mae_it_trained_on(env, chain):
    found, logs = chain
    metrics = found["trained"].metrics()
    assert {"loss", "val_loss", "mae", "val_mae"} <= set(metrics)
    assert not [key for key in metrics if "accuracy" in key]
    assert "val_mae" in metrics["history"]
    assert any("task: regression (inferred for dataset 'diabetes': float labels with non-integer values" in line
               for line in logs)
    splits = load_splits(env.datasets["diabetes"], env)
    predictions = load(found["trained"]).predict(splits.x_val, verbose=0)[:, 0]
    assert metrics["val_loss"] == pytest.approx(float(np.mean((predictions - splits.y_val) ** 2)), rel=1e-4)
    assert metrics["val_mae"] == pytest.approx(float(np.mean(np.abs(predictions - splits.y_val))), rel=1e-4)


def test_evaluate_reports_mae_mse_and_r2_and_no_accuracy_for_keras_and_tflite_models(env, chain):
    found, _ = chain
    data = _evaluate(env, chain).metrics()
    assert data["task"] == "regression"
    for name in MODELS:
        values = data["models"][name]
        assert {"mae", "mse", "r2"} <= set(values), name
        assert not [key for key in values if "accuracy" in key], name
    splits = load_splits(env.datasets["diabetes"], env)
    predictions = load(found["trained"]).predict(splits.x_val, verbose=0)[:, 0]
    trained = data["models"]["trained"]
    assert trained["mae"] == pytest.approx(float(np.mean(np.abs(predictions - splits.y_val))), rel=1e-5)
    assert trained["r2"] == pytest.approx(1 - np.sum((predictions - splits.y_val) ** 2)
                                          / np.sum((splits.y_val - splits.y_val.mean()) ** 2), rel=1e-4)
    # the float TFLite conversion predicts what the Keras model does
    assert data["models"]["float"]["mae"] == pytest.approx(trained["mae"], abs=1e-4)
    assert data["models"]["int8"]["mae_delta"] == pytest.approx(data["models"]["int8"]["mae"]
                                                                 - data["models"]["float"]["mae"])
    header = _table(data).splitlines()[0].split()
    assert header[2:6] == ["mae", "mse", "r2", "delta"] and "accuracy" not in header


def _table(data) -> str:
    from compressflow.stages.report_table import format_table

    return format_table(data["models"], data["baseline"], metrics=list(data["metric_goals"]), primary="mae")


def test_a_gate_on_mae_passes_within_its_bound_and_fails_beyond_it(env, chain):
    passing = Requirements(metrics={"mae": {"max_increase": 0.5, "relative": True}}, models=["int8"])
    assert "int8" in _evaluate(env, chain, require=passing).metrics()["models"]
    failing = Requirements(metrics={"mean_absolute_error": {"max": 0.01}}, models=["int8"])
    with pytest.raises(GateFailed) as caught:
        _evaluate(env, chain, require=failing)
    assert "model 'int8': mae " in str(caught.value) and "is above max 0.01" in str(caught.value)


def test_an_accuracy_gate_on_an_inferred_regression_is_a_clear_stage_error(env, chain):
    with pytest.raises(StageFailed) as caught:
        _evaluate(env, chain, require=Requirements(max_accuracy_drop=0.01))
    message = str(caught.value)
    assert "'max_accuracy_drop' needs accuracy, which evaluate on dataset 'diabetes', a regression" in message
    assert "set `task:` on the dataset" in message


def test_evaluate_computes_the_users_keras_metrics_from_the_predictions(env, chain):
    values = _evaluate(env, chain, metrics=["RootMeanSquaredError"]).metrics()["models"]
    for name in MODELS:
        assert values[name]["rmse"] == pytest.approx(np.sqrt(values[name]["mse"]), rel=1e-4), name


def test_prune_cluster_qat_and_distill_train_a_regression_with_its_default_loss(env, chain):
    found, _ = chain
    trained = {"model": found["trained"]}
    stages = {
        "prune": (PruneStage(model="trained", data="diabetes", schedule={"type": "constant", "target_sparsity": 0.3},
                             epochs=1), trained),
        "cluster": (ClusterStage(model="trained", data="diabetes", number_of_clusters=8, epochs=1), trained),
        "qat": (QuantizeStage(model="trained", method="qat", data="diabetes", epochs=1), trained),
        "distill": (DistillStage(teacher="trained", student="base", data="diabetes", epochs=1),
                    {"teacher": found["trained"], "student": found["base"]}),
    }
    for name, (stage, inputs) in stages.items():
        output = run(stage, env, inputs, name=name)
        metrics = output.metrics() if output.metrics() else output.meta
        assert "val_mae" in metrics and "val_accuracy" not in metrics, name
        assert np.isfinite(metrics["val_loss"]), name


MODULE = """
import numpy as np
import tensorflow as tf


def half_squared(y_true, y_pred):
    return 0.5 * tf.reduce_mean(tf.square(y_true - y_pred), axis=-1)


def max_error(y_true, y_pred):
    return float(np.max(np.abs(y_true - y_pred)))
"""

PIPELINE = """
version: 1
name: custom
seed: 0
datasets:
  diabetes: {type: sklearn_diabetes, task: regression}
stages:
  base: {type: load, builder: "compressflow.models:mlp_regressor", args: {hidden: [16]}}
  trained:
    type: fine_tune
    model: base
    data: diabetes
    loss: "objectives:half_squared"
    metrics: [mae, "objectives:max_error"]
    epochs: 6
    batch_size: 16
    learning_rate: 0.003
  int8: {type: quantize, model: trained, method: int8, data: diabetes, representative_samples: 100}
  check:
    type: evaluate
    models: [trained, int8]
    baseline: trained
    data: diabetes
    metrics: ["objectives:max_error"]
    latency: null
    require: {metrics: {max_error: {max_increase: 1.0, relative: true}}}
  release: {type: export, model: int8, to: out/int8.tflite, metrics: check}
"""


def test_a_loss_and_a_metric_from_a_module_beside_the_pipeline(tmp_path):
    write(tmp_path / "objectives.py", MODULE)
    pipeline = write(tmp_path / "custom.yaml", PIPELINE)
    result = cli("run", pipeline, timeout=900)
    assert result.code == 0, result.text
    sidecar = json.loads((tmp_path / "out" / "int8.tflite.json").read_text())["metrics"]["values"]
    assert sidecar["max_error"] >= sidecar["mae"] > 0  # the largest error is at least the mean one
    assert "accuracy" not in sidecar
    plan = json.loads(cli("plan", pipeline, "--json").out)
    assert plan["trained"]["action"] == "cached"
    write(tmp_path / "objectives.py", MODULE.replace("0.5 *", "0.25 *"))
    assert json.loads(cli("plan", pipeline, "--json").out)["trained"]["action"] == "run"


@pytest.mark.slow
def test_the_diabetes_regression_example_pipeline_runs_and_passes_its_mae_gate(tmp_path):
    shutil.copy(REPO / "pipelines" / "diabetes-regression.yaml", tmp_path / "diabetes-regression.yaml")
    result = cli("run", tmp_path / "diabetes-regression.yaml", timeout=900)
    assert result.code == 0, result.text
    sidecar = json.loads((tmp_path / "out" / "diabetes-int8.tflite.json").read_text())["metrics"]["values"]
    assert {"mae", "mse", "r2", "mae_delta"} <= set(sidecar) and "accuracy" not in sidecar
    assert sidecar["sparsity"] > 0.6 and sidecar["label"] == "tflite int8"
