"""A small real search on the digits data through the CLI: the shipped prune-cluster-int8 recipe, 3 trials."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import cli, write

pytestmark = [pytest.mark.tf, pytest.mark.slow]

RECIPE = Path(__file__).resolve().parents[2] / "pipelines" / "recipes" / "prune-cluster-int8.yaml"

SEARCH = """
version: 1
name: small-search
seed: 0
datasets:
  digits: {type: sklearn_digits, validation_fraction: 0.2}
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {input_shape: [8, 8, 1], classes: 10}
  trained: {type: fine_tune, model: base, data: digits, epochs: 3}
  float: {type: quantize, model: trained, method: float32}
  best:
    type: search
    recipe: recipes/prune-cluster-int8.yaml
    inputs: {model: trained}
    space:
      sparsity: {low: 0.5, high: 0.8}
      clusters: {choices: [8, 16]}
    data: digits
    baseline: float
    objective: {metric: gzip_size, goal: min}
    constraints: {max_accuracy_drop: 1.0}
    trials: 3
  release: {type: export, model: best, format: tflite, to: out/best.tflite}
"""


def small_recipe() -> str:
    """The shipped recipe with tiny epochs (2 of pruning, 1 of clustering)."""
    text = RECIPE.read_text()
    assert "prune_epochs: 16" in text and "cluster_epochs: 2" in text
    return text.replace("prune_epochs: 16", "prune_epochs: 2").replace("cluster_epochs: 2", "cluster_epochs: 1")


def entry(folder: Path, key: str) -> Path:
    return folder / "cache" / "entries" / key[:2] / key


@pytest.mark.timeout(1800)  # NOTE: 13 stages in fresh processes; a shared 2-core machine can take many minutes
def test_small_search_exports_the_best_trial_and_a_rerun_runs_nothing(tmp_path):
    write(tmp_path / "recipes" / "prune-cluster-int8.yaml", small_recipe())
    pipeline = write(tmp_path / "search.yaml", SEARCH)
    cache = ("--cache", tmp_path / "cache")
    result = cli("run", pipeline, *cache, cwd=tmp_path, timeout=1500)
    assert result.code == 0, result.text

    plan = json.loads(cli("plan", pipeline, "--json", *cache, cwd=tmp_path).out)
    search = entry(tmp_path, plan["best"]["key"])
    rows = json.loads((search / "trials.json").read_text())
    assert [r["number"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert row["state"] == "COMPLETE", row
        assert 0.5 <= row["params"]["sparsity"] <= 0.8 and row["params"]["clusters"] in (8, 16)
        assert 0.0 < row["metrics"]["accuracy"] <= 1.0 and row["metrics"]["gzip_bytes"] > 0
        assert row["values"] == [row["metrics"]["gzip_bytes"]]
    best = min(rows, key=lambda r: (r["values"][0], r["number"]))
    assert f"* best: trial {best['number']}" in result.out

    exported = tmp_path / "out" / "best.tflite"
    best_model = entry(tmp_path, best["output"]["key"]) / "model.tflite"
    assert exported.read_bytes() == best_model.read_bytes()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported))
    interpreter.allocate_tensors()
    (given,), (made,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(given["shape"]) == [1, 8, 8, 1] and list(made["shape"]) == [1, 10]
    # the recipe's int8 model: integer weights inside, float at its edges
    assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details())
    interpreter.set_tensor(given["index"], np.zeros(given["shape"], dtype=given["dtype"]))
    interpreter.invoke()
    assert interpreter.get_tensor(made["index"]).shape == (1, 10)

    again = cli("plan", pipeline, *cache, cwd=tmp_path)
    assert again.code == 0 and "0 to run, 5 cached" in again.out, again.text
    rerun = cli("run", pipeline, *cache, cwd=tmp_path, timeout=1500)
    assert rerun.code == 0, rerun.text
    assert "0 ran, 5 cached" in rerun.out, rerun.text
    assert "best.prune[" not in rerun.text, "a rerun ran a trial's stage"
