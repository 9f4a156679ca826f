"""A tiny real run (train 2 epochs, prune 1 with TensorBoard, int8, evaluate) seen from the outside:
plain progress with epoch lines, the report, TensorBoard pruning summaries and MLflow metrics."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from helpers import Result, cli, write
from report_helpers import ReportPage, png_size

pytestmark = pytest.mark.tf

TINY = """
version: 1
name: tiny
datasets:
  digits: {type: sklearn_digits, limit: 500}
stages:
  base: {type: load, builder: "compressflow.models:small_cnn", args: {input_shape: [8, 8, 1], classes: 10}}
  trained: {type: fine_tune, model: base, data: digits, epochs: 2}
  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: constant, target_sparsity: 0.5}
    epochs: 1
    tensorboard: true
  int8: {type: quantize, model: pruned, method: int8, data: digits}
  check:
    type: evaluate
    models: [trained, pruned, int8]
    baseline: trained
    data: digits
    latency: {runs: 3, warmup: 1}
"""
EVALUATED = ("trained", "pruned", "int8")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Result, dict, str]:
    """(pipeline, result of `run --track mlflow` through pipes, its record, MLflow URI)."""
    folder = tmp_path_factory.mktemp("tiny")
    pipeline = write(folder / "tiny.yaml", TINY)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    result = cli("run", pipeline, "--track", "mlflow", env={"MLFLOW_TRACKING_URI": uri, "COMPRESSFLOW_CACHE": "",
                                                            "MLFLOW_EXPERIMENT_NAME": "tiny"})
    assert result.code == 0, result.text
    record = json.loads(next((folder / ".compressflow" / "runs").glob("*/run.json")).read_text())
    return pipeline, result, record, uri


def test_plain_progress_shows_each_epoch_of_real_training(tiny_run):
    _, result, _, _ = tiny_run
    assert "\x1b[" not in result.text
    lines = result.out.splitlines()
    trained = [line for line in lines if line.startswith("  [trained] epoch ")]
    assert [line.split()[2] for line in trained] == ["1/2", "2/2"]
    for line in trained:
        assert re.fullmatch(r"  \[trained\] epoch \d/2  loss \d\.\d{4}  accuracy \d\.\d{4}  val_loss \d\.\d{4}  "
                            r"val_accuracy \d\.\d{4}  \(\d+\.\d s\)", line), line
    assert [line.split()[2] for line in lines if line.startswith("  [pruned] epoch ")] == ["1/1"]
    assert lines.index("trained: running") < lines.index(trained[-1]) < next(
        i for i, line in enumerate(lines) if line.startswith("trained: done in"))


def test_report_holds_every_evaluated_model_and_valid_plots(tiny_run):
    pipeline, _, record, _ = tiny_run
    out = pipeline.parent / "report.html"
    result = cli("report", pipeline, record["id"][:15], "-o", out)
    assert result.code == 0, result.text
    page = ReportPage(out.read_text())
    assert set(page.models) == set(EVALUATED)
    header = page.header()
    measured = record["stages"]["check"]["metrics"]["models"]
    for model in EVALUATED:
        assert page.models[model][header.index("accuracy")] == f"{measured[model]['accuracy'] * 100:.2f}%"
    assert page.models["int8"][header.index("format")] == "tflite int8"
    assert len(page.images) >= 3
    for source in page.images:
        width, height = png_size(base64.b64decode(source.split(",", 1)[1], validate=True))
        assert width >= 400 and height >= 150


def test_tensorboard_logs_hold_the_pruning_summaries(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, record, _ = tiny_run
    assert "tensorboard_dir" not in record["stages"]["trained"]  # it did not ask
    board = Path(record["stages"]["pruned"]["tensorboard_dir"])
    assert board.is_relative_to(Path(record["run_dir"]))
    tags = set()
    for folder in {p.parent for p in board.rglob("events.out.tfevents.*")}:
        events = EventAccumulator(str(folder))
        events.Reload()
        tags |= {*events.Tags()["scalars"], *events.Tags()["tensors"]}
    assert any(tag.endswith("sparsity") for tag in tags), tags
    assert any("loss" in tag for tag in tags), tags


def test_mlflow_holds_each_stage_with_the_measured_metrics(tiny_run):
    from mlflow.tracking import MlflowClient

    _, _, record, uri = tiny_run
    client = MlflowClient(tracking_uri=uri)
    parent_id = record["tracking"]["mlflow"]["run_id"]
    experiment = client.get_experiment_by_name("tiny")
    stages = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])
              if r.data.tags.get("mlflow.parentRunId") == parent_id}
    assert set(stages) == set(record["stages"])
    measured = record["stages"]["check"]["metrics"]["models"]
    for model in EVALUATED:
        for metric in ("accuracy", "gzip_bytes", "sparsity", "latency_ms_median"):
            assert stages["check"].data.metrics[f"{model}.{metric}"] == pytest.approx(measured[model][metric])
    assert stages["pruned"].data.params["schedule.target_sparsity"] == "0.5"
    assert stages["pruned"].data.metrics["sparsity"] == pytest.approx(record["stages"]["pruned"]["summary"]["sparsity"])
    history = client.get_metric_history(stages["trained"].info.run_id, "epoch_loss")
    assert sorted(m.step for m in history) == [1, 2]
    assert "tensorboard" in {a.path for a in client.list_artifacts(stages["pruned"].info.run_id)}
