"""A grid search on toy stages (no TensorFlow) tries every point of its space once and finishes."""

from __future__ import annotations

from test_search import project, run, trials_of


def test_grid_search_tries_every_point_once_and_commits_the_best(tmp_path):
    pipeline = project(tmp_path, trials=50)
    grid = ["--set", "stages.best.sampler=grid", "--set", "stages.best.space.a={low: 0, high: 2, step: 1}"]
    result = run(pipeline, *grid)
    assert result.code == 0, result.text
    rows = trials_of(pipeline, *grid)
    points = sorted((r["params"]["a"], r["params"]["b"]) for r in rows)
    assert points == [(a, b) for a in (0.0, 1.0, 2.0) for b in (1, 2, 3)]
    assert all(r["state"] == "COMPLETE" for r in rows)
