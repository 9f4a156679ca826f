"""A latency gate measured on one machine is measured again on another; what does not measure latency is reused."""

from __future__ import annotations

import json

import pytest

from compressflow.stages.machine import MACHINE_ID_VARIABLE

from helpers import cli, write

pytestmark = pytest.mark.tf

PIPELINE = """
version: 1
name: gated
seed: 1
datasets:
  digits: {type: sklearn_digits, limit: 200}
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {filters: [4, 8], dense: 16}
  float: {type: quantize, model: base, method: float32}
  gate:
    type: evaluate
    models: [base, float]
    baseline: base
    data: digits
    latency: {runs: 3, warmup: 1}
    require: {max_latency_ms: 10000}
  plain: {type: evaluate, models: [base, float], data: digits, latency: null}
"""


def on(machine: str, *args):
    return cli(*args, env={MACHINE_ID_VARIABLE: machine}, timeout=600)


def plan_lines(result) -> dict[str, str]:
    return {line.split()[0]: line.split(None, 1)[1] for line in result.out.splitlines()[:4]}


def test_a_latency_gate_is_measured_again_under_another_machine(tmp_path):
    pipeline = write(tmp_path / "gated.yaml", PIPELINE)
    first = on("ci-a", "run", pipeline)
    assert first.code == 0, first.text
    assert "latency measured on machine ci-a" in first.out

    same = on("ci-a", "plan", pipeline)
    assert set(plan_lines(same).values()) == {"cached"}, same.out

    other = on("ci-b", "plan", pipeline)
    assert other.code == 0, other.text
    lines = plan_lines(other)
    assert lines["gate"] == f"run (machine changed: measured on ci-a, this is ci-b (named by {MACHINE_ID_VARIABLE}))"
    assert lines["plain"] == lines["base"] == lines["float"] == "cached"
    assert "latency of gate is measured on machine ci-b" in other.out

    second = on("ci-b", "run", pipeline)
    assert second.code == 0, second.text
    keys = json.loads(on("ci-b", "plan", pipeline, "--json").out)
    assert {name: item["action"] for name, item in keys.items()} == dict.fromkeys(keys, "cached"), keys
    assert keys["gate"]["machine"]["id"] == "ci-b" and "machine" not in keys["plain"]
    entry = tmp_path / ".compressflow/cache/entries" / keys["gate"]["key"][:2] / keys["gate"]["key"]
    metrics = json.loads((entry / "metrics.json").read_text())
    assert metrics["machine"]["id"] == "ci-b"
    assert all(m["latency_ms_median"] > 0 for m in metrics["models"].values())

    shown = on("ci-b", "show", pipeline)
    assert shown.code == 0, shown.text
    assert "latency measured on machine ci-b" in shown.out
    report = on("ci-b", "report", pipeline)
    assert report.code == 0, report.text
    (html,) = (tmp_path / ".compressflow" / "reports").glob("*.html")
    assert "latency measured on machine ci-b (named by COMPRESSFLOW_MACHINE_ID)" in html.read_text()
    # NOTE: each machine keeps its own measurement: back on the first, nothing runs.
    back = on("ci-a", "plan", pipeline)
    assert set(plan_lines(back).values()) == {"cached"}, back.out
