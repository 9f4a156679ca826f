"""`--track mlflow` logs the run and each stage to a real local MLflow store (toy stages)."""

from __future__ import annotations

import json

import pytest

from compressflow.cli.parser import main
from experience_helpers import MODELS
from helpers import cli


@pytest.mark.slow
def test_runs_and_metrics_in_a_local_mlflow_store(shop, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("run", shop, "--track", "mlflow", env={"MLFLOW_TRACKING_URI": uri,
                                                        "MLFLOW_EXPERIMENT_NAME": "shop-tests"})
    assert result.code == 0, result.text
    record = json.loads(next((shop.parent / ".compressflow" / "runs").glob("*/run.json")).read_text())
    tracked = record["tracking"]["mlflow"]
    assert tracked["tracking_uri"] == uri

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("shop-tests")
    runs = client.search_runs([experiment.experiment_id])
    parent = client.get_run(tracked["run_id"])
    children = {r.data.tags["compressflow.stage"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == set(record["stages"]) and len(runs) == len(children) + 1
    assert parent.data.tags["compressflow.run_id"] == record["id"] and parent.info.status == "FINISHED"

    check = children["check"]
    measured = record["stages"]["check"]["metrics"]["models"]
    for model in MODELS:
        for metric in ("accuracy", "gzip_bytes", "latency_ms_median", "sparsity"):
            assert check.data.metrics[f"{model}.{metric}"] == pytest.approx(measured[model][metric])
            assert parent.data.metrics[f"check.{model}.{metric}"] == pytest.approx(measured[model][metric])
    assert check.data.metrics["small.gzip_compression"] == pytest.approx(4.0)
    assert check.data.params["baseline"] == "large" and json.loads(check.data.params["models"]) == list(MODELS)
    assert check.data.tags["compressflow.key"] == record["stages"]["check"]["key"]
    artifacts = {a.path for a in client.list_artifacts(check.info.run_id)}
    assert {"metrics.json", "table.txt"} <= artifacts

    tuned = children["tuned"]
    assert tuned.data.params["epochs"] == "3" and tuned.data.tags["compressflow.status"] == "ran"
    history = client.get_metric_history(tuned.info.run_id, "epoch_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
        [(1, pytest.approx(1 / 2)), (2, pytest.approx(1 / 3)), (3, pytest.approx(1 / 4))]

    again = cli("run", shop, "--track", "mlflow", env={"MLFLOW_TRACKING_URI": uri,
                                                       "MLFLOW_EXPERIMENT_NAME": "shop-tests"})
    assert again.code == 0, again.text
    second = {r.info.run_name: r.data.tags["compressflow.status"]
              for r in client.search_runs([experiment.experiment_id])
              if r.data.tags["compressflow.run_id"] != record["id"] and r.data.tags.get("mlflow.parentRunId")}
    assert second == {name: "cached" for name in record["stages"]}, again.text


def test_track_mlflow_without_mlflow_is_a_usage_error(shop, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main(["run", str(shop), "--track", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'compressflow[mlflow]'" in err
    assert not (shop.parent / ".compressflow" / "runs").exists(), "nothing may run"
