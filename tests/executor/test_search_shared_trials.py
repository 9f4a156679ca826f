"""Two searches of one space share their trials through the cache (toy stages, no TensorFlow)."""

from __future__ import annotations

from test_search import run
from toy_search import search_pipeline, trials_of, write_project

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
    text = (search_pipeline(trials=9, drop=0.1, more="    sampler: grid\n")
            .replace("      a: {low: 0, high: 5}", "      a: {low: 0, high: 2, step: 1}"))
    pipeline = write_project(tmp_path, text + SECOND)
    first = run(pipeline, "--until", "best")
    assert first.code == 0, first.text
    second = run(pipeline, "--until", "again")
    assert second.code == 0, second.text
    rows = trials_of(pipeline, stage="again")
    assert len(rows) == 4
    assert all(r["state"] == "COMPLETE" and r["cached"] for r in rows), rows
    assert all(r["metrics"].get("gzip_bytes") for r in rows), rows
