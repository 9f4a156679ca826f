"""Two searches of one space share their trials through the cache (toy stages, no TensorFlow)."""

from __future__ import annotations

import json

from test_search import PIPELINE, PLUGINS, RECIPE, run
from helpers import cli, write

SECOND = """
  again:
    type: search
    recipe: recipes/toy.yaml
    inputs: {model: base}
    space:
      a: {low: 0, high: 2, step: 1}
      b: {choices: [1, 2, 3]}
    baseline: base
    measure: toy_measure
    objective: {metric: gzip_size, goal: min}
    constraints: {max_accuracy_drop: 0.1}
    trials: 4
"""


def test_a_second_search_measures_the_first_ones_trials_from_the_cache(tmp_path):
    write(tmp_path / "recipes" / "toy.yaml", RECIPE)
    text = (PIPELINE.replace("TRIALS", "9").replace("DROP", "0.1")
            .replace("      a: {low: 0, high: 5}", "      a: {low: 0, high: 2, step: 1}")
            .replace("    trials: 9", "    trials: 9\n    sampler: grid"))
    pipeline = write(tmp_path / "search.yaml", text + SECOND)
    first = run(pipeline, "--until", "best")
    assert first.code == 0, first.text
    second = run(pipeline, "--until", "again")
    assert second.code == 0, second.text
    plan = json.loads(cli("plan", pipeline, "--json", cwd=tmp_path, env=PLUGINS).out)
    key = plan["again"]["key"]
    rows = json.loads((tmp_path / ".compressflow" / "cache" / "entries" / key[:2] / key / "trials.json").read_text())
    assert len(rows) == 4
    assert all(r["state"] == "COMPLETE" and r["cached"] for r in rows), rows
    assert all(r["metrics"].get("gzip_bytes") for r in rows), rows
