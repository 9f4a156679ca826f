"""A small real TensorFlow pipeline through the CLI: reproducible, cached, incremental."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

SMALL = """
version: 1
name: small
seed: 3
datasets:
  digits: {type: sklearn_digits, limit: 600}
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {filters: [8, 16], dense: 32}
  trained: {type: fine_tune, model: base, data: digits, epochs: 3}
  float: {type: quantize, model: trained, method: float32}
  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: constant, target_sparsity: 0.5}
    epochs: 1
  int8: {type: quantize, model: pruned, method: int8, data: digits, representative_samples: 50}
  check:
    type: evaluate
    models: [float, pruned, int8]
    baseline: float
    data: digits
    latency: {runs: 5, warmup: 1}
  release: {type: export, model: int8, to: out/small.tflite, metrics: check}
"""

DETERMINISTIC_METRICS = ("accuracy", "gzip_bytes", "file_bytes", "sparsity", "params", "nonzero_params")


def ran_stages(output: str) -> list[str]:
    return [line.split(":")[0] for line in output.splitlines() if line.endswith(("s", "s)")) and ": done in" in line]


def metrics_of(project: Path) -> dict:
    plan = json.loads(cli("plan", project / "small.yaml", "--json").out)
    key = plan["check"]["key"]
    data = json.loads((project / ".compressflow/cache/entries" / key[:2] / key / "metrics.json").read_text())
    # NOTE: a .keras file is a zip with timestamps, so only TFLite files are byte-reproducible.
    return {model: {k: v for k, v in values.items() if k in DETERMINISTIC_METRICS
                    and not (values["kind"] == "keras_model" and k.endswith("_bytes"))}
            for model, values in data["models"].items()}


@pytest.fixture(scope="module")
def two_cold_runs(tmp_path_factory):
    projects = []
    for name in ("first", "second"):
        project = tmp_path_factory.mktemp(name)
        write(project / "small.yaml", SMALL)
        result = cli("run", project / "small.yaml", timeout=600)
        assert result.code == 0, result.text
        projects.append((project, result))
    return projects


def test_cold_runs_are_reproducible(two_cold_runs):
    (first, _), (second, _) = two_cold_runs
    assert (first / "out/small.tflite").read_bytes() == (second / "out/small.tflite").read_bytes()
    sidecars = [json.loads((p / "out/small.tflite.json").read_text()) for p in (first, second)]
    for sidecar in sidecars:
        sidecar.pop("metrics")  # measured latencies differ from run to run; the rest must not
    assert sidecars[0] == sidecars[1]
    assert metrics_of(first) == metrics_of(second)


def test_second_run_is_fully_cached_and_imports_no_tensorflow(two_cold_runs):
    project, _ = two_cold_runs[0]
    code = ("import sys\nfrom compressflow.cli.parser import main\n"
            f"rc = main(['run', {str(project / 'small.yaml')!r}])\n"
            "assert rc == 0, rc\nassert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 to run, 7 cached" in proc.stdout
    # export writes its file on every run, cached or not
    assert "release: wrote" in proc.stdout


def test_editing_quantize_reruns_only_quantize_evaluate_export(two_cold_runs):
    project, _ = two_cold_runs[1]
    pipeline = project / "small.yaml"
    pipeline.write_text(pipeline.read_text().replace("representative_samples: 50", "representative_samples: 60"))
    plan = json.loads(cli("plan", pipeline, "--json").out)
    assert sorted(n for n, s in plan.items() if s["action"] == "run") == ["check", "int8", "release"]
    assert plan["int8"]["reasons"] == ["config changed: representative_samples 50 -> 60"]
    result = cli("run", pipeline, timeout=600)
    assert result.code == 0, result.text
    assert sorted(line.split(":")[0] for line in result.out.splitlines() if ": done in" in line) == \
        ["check", "int8", "release"]
