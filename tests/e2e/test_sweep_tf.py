"""A small real sweep end to end through the CLI: prune x quantize variants, evaluate, select, export."""

from __future__ import annotations

import json
import re

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

SWEEP = """
version: 1
name: small-sweep
seed: 0
datasets:
  digits: {type: sklearn_digits, limit: 400, validation_fraction: 0.25}
stages:
  base: {type: load, builder: "compressflow.models:tiny_cnn"}
  trained: {type: fine_tune, model: base, data: digits, epochs: 4}
  float: {type: quantize, model: trained, method: float32}
  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: constant, target_sparsity: 0.5}
    epochs: 1
    matrix: {schedule.target_sparsity: [0.5, 0.8]}
  quantized:
    type: quantize
    model: pruned
    data: digits
    representative_samples: 50
    matrix: {method: [int8, dynamic]}
  check:
    type: evaluate
    models: [float, quantized]
    baseline: float
    data: digits
    latency: {runs: 5, warmup: 1}
  best:
    type: select
    candidates: [quantized]
    evaluation: check
    metric: gzip_size
    max_accuracy_drop: 1.0
  release: {type: export, model: best, to: out/best.tflite, metrics: check}
"""

CANDIDATES = [f"quantized[target_sparsity={s},method={m}]" for s in (0.5, 0.8) for m in ("int8", "dynamic")]


def test_small_sweep_selects_and_exports_the_chosen_candidate(tmp_path):
    path = write(tmp_path / "sweep.yaml", SWEEP)
    result = cli("run", path, "--cache", tmp_path / "cache", timeout=600)
    assert result.code == 0, result.text
    table = result.out[result.out.index("\nbest:\n"):]
    header = table.splitlines()[2]
    assert header.split()[:4] == ["candidate", "kind", "accuracy", "delta"] and "passed" in header
    rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("quantized[")}
    assert sorted(rows) == sorted(CANDIDATES)
    for line in rows.values():
        assert re.search(r"\b0\.\d{4}\b.* (B|KiB)\b.*\byes\b", line), line
    plan = json.loads(cli("plan", path, "--json", "--cache", tmp_path / "cache").out)
    best = tmp_path / "cache" / "entries" / plan["best"]["key"][:2] / plan["best"]["key"]
    selection = json.loads((best / "selection.json").read_text())
    chosen = selection["selected"]
    assert chosen in CANDIDATES and re.search(rf"^{re.escape(chosen)} \*", table, re.M)
    assert selection["value"] == min(c["metrics"]["gzip_bytes"] for c in selection["candidates"])
    key = plan[chosen]["key"]
    chosen_model = tmp_path / "cache" / "entries" / key[:2] / key / "model.tflite"
    exported = tmp_path / "out" / "best.tflite"
    assert exported.read_bytes() == chosen_model.read_bytes()
    sidecar = json.loads((tmp_path / "out" / "best.tflite.json").read_text())
    assert sidecar["metrics"]["values"]["gzip_bytes"] == selection["value"]
