"""The search stage on toy stages (no TensorFlow): trials cached by content, resumable, seeded.

The toy project is tests/toy_search.py's.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from helpers import cli, runs, spawn_cli
from toy_search import PLUGINS, entry, search_pipeline, trials_of, write_project

# A stage after the search: a reference to `best` is the best feasible trial's output.
USE = """\
  use:
    type: toy_scale
    model: best
    factor: 1
"""


def project(folder: Path, trials: int = 4, drop: float = 0.1) -> Path:
    return write_project(folder, search_pipeline(trials, drop, USE))


def run(pipeline: Path, *args: str, env: dict | None = None):
    log = pipeline.parent / "runs.log"
    return cli("run", pipeline, *args, cwd=pipeline.parent, env={**PLUGINS, "TOY_RUN_LOG": str(log), **(env or {})})


# NOTE: the killed run and its resumption are both fresh interpreters: a long-lived fork server hashes the
# stages' code once, and a search's study is that of its key (code included).


def trial_runs(pipeline: Path) -> list[str]:
    return [name for name in runs(pipeline.parent / "runs.log") if name.startswith("best.")]


def kill_when_blocked(pipeline: Path, blocked: str) -> Path:
    """Run the search in a fresh process, SIGKILL it once stage ``blocked`` has started; the run log."""
    log = pipeline.parent / "runs.log"
    process = spawn_cli("run", pipeline, cwd=pipeline.parent,
                        env={**PLUGINS, "TOY_RUN_LOG": str(log), "TOY_BLOCK": blocked})
    try:
        while blocked not in runs(log):
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    return log


def test_repeated_search_runs_no_stage_and_more_trials_run_only_the_new_ones(tmp_path):
    pipeline = project(tmp_path, trials=4)
    first = run(pipeline)
    assert first.code == 0, first.text
    assert len(trial_runs(pipeline)) == 4 * 2  # plus and scaled of each trial
    again = run(pipeline)
    assert again.code == 0, again.text
    assert len(trial_runs(pipeline)) == 8, "a repeated search ran a stage"
    assert "0 ran, 3 cached" in again.out
    plan = cli("plan", pipeline, "--set", "stages.best.trials=6", cwd=tmp_path, env=PLUGINS)
    assert "4 trials in the journal, 2 to run" in plan.out, plan.text
    more = run(pipeline, "--set", "stages.best.trials=6")
    assert more.code == 0, more.text
    assert len(trial_runs(pipeline)) == 8 + 2 * 2, "a longer search reran old trials"
    rows = trials_of(pipeline, "--set", "stages.best.trials=6")
    assert [r["number"] for r in rows] == list(range(6))
    assert all(r["state"] == "COMPLETE" for r in rows)


def test_the_output_is_the_best_feasible_trial(tmp_path):
    pipeline = project(tmp_path, trials=8, drop=0.05)
    result = run(pipeline)
    assert result.code == 0, result.text
    rows = trials_of(pipeline)
    for row in rows:
        number = (1 + row["params"]["a"]) * row["params"]["b"]
        assert row["feasible"] == (number - 1 <= 5 + 1e-6), row
    feasible = [r for r in rows if r["feasible"]]
    assert feasible and len(feasible) < len(rows), "the toy space should hold feasible and infeasible trials"
    best = min(feasible, key=lambda r: r["values"][0])
    value = json.loads((entry(pipeline, "best") / "value.json").read_text())
    assert value == pytest.approx((1 + best["params"]["a"]) * best["params"]["b"])
    assert json.loads((entry(pipeline, "use") / "value.json").read_text()) == pytest.approx(value)
    assert f"* best: trial {best['number']}" in result.out


def test_no_feasible_trial_fails_with_the_table_and_the_closest(tmp_path):
    pipeline = project(tmp_path, trials=3, drop=0.0)
    pipeline.write_text(pipeline.read_text().replace("{low: 0, high: 5}", "{low: 1, high: 5}"))
    result = run(pipeline)
    assert result.code == 1, result.text
    assert "no feasible trial among 3" in result.text
    assert "closest: trial" in result.text
    assert result.text.count("pt below baseline (max 0)") == 3 + 1  # each trial's row, and the closest
    assert "constraints: of stage 'best'" in result.text  # what to change, located


def test_the_same_pipeline_asks_the_same_params(tmp_path):
    one, two = project(tmp_path / "one", trials=5), project(tmp_path / "two", trials=5)
    assert run(one).code == 0 and run(two).code == 0
    params = [[r["params"] for r in trials_of(p)] for p in (one, two)]
    assert params[0] == params[1]
    assert len({json.dumps(p, sort_keys=True) for p in params[0]}) > 1, "the trials should differ"
    seeded = project(tmp_path / "three", trials=5)
    seeded.write_text(seeded.read_text().replace("name: toysearch", "name: toysearch\nseed: 7"))
    assert run(seeded).code == 0
    assert [r["params"] for r in trials_of(seeded)] != params[0]


def test_a_search_killed_mid_trial_resumes_with_nothing_lost(tmp_path):
    reference = project(tmp_path / "reference", trials=3)
    assert run(reference).code == 0
    expected = trials_of(reference)
    third = expected[2]["params"]
    blocked = f"best.scaled[a={third['a']!r},b={third['b']!r}]"

    pipeline = project(tmp_path / "killed", trials=3)
    log = kill_when_blocked(pipeline, blocked)
    before = trial_runs(pipeline)
    assert before[-1] == blocked and len(before) == 6

    resumed = cli("run", pipeline, cwd=pipeline.parent, env={**PLUGINS, "TOY_RUN_LOG": str(log)}, fresh=True)
    assert resumed.code == 0, resumed.text
    assert trial_runs(pipeline)[len(before):] == [blocked], "completed trials or stages were computed again"
    rows = trials_of(pipeline)
    assert [r["params"] for r in rows if r["state"] == "COMPLETE"] == [r["params"] for r in expected]
    assert [r["params"] for r in rows if r["interrupted"]] == [third], resumed.text


def test_parallel_trials_with_jobs(tmp_path):
    pipeline = project(tmp_path, trials=4)
    result = run(pipeline, "--jobs", "2")
    assert result.code == 0, result.text
    rows = trials_of(pipeline)
    assert len(rows) == 4 and all(r["state"] == "COMPLETE" for r in rows)
    assert len({json.dumps(r["params"], sort_keys=True) for r in rows}) == 4
    assert len(trial_runs(pipeline)) == 8


EARLY_STOP = "    early_stop: {after: plus, metric: accuracy, margin: 0.01}\n"


def early_project(folder: Path, trials: int = 8) -> Path:
    """The toy search where ``plus`` (1 + a, accuracy drop a / 100) is watched: a > 3 stops the trial."""
    pipeline = project(folder, trials=trials, drop=0.02)
    pipeline.write_text(pipeline.read_text().replace("    trials:", EARLY_STOP + "    trials:"))
    return pipeline


def stops(row: dict) -> bool:
    return row["params"]["a"] / 100 - 0.02 > 0.01


def test_early_stop_prunes_the_trials_whose_watched_stage_misses_by_the_margin(tmp_path):
    pipeline = early_project(tmp_path)
    result = run(pipeline)
    assert result.code == 0, result.text
    rows = trials_of(pipeline)
    assert len(rows) == 8
    stopped = [r for r in rows if stops(r)]
    assert stopped and len(stopped) < len(rows), "the toy space should hold trials that stop and trials that go on"
    for row in rows:
        assert row["state"] == ("PRUNED" if stops(row) else "COMPLETE"), row
        assert row["pruned"] == stops(row)
        assert row["early_stop"]["value"] == pytest.approx(1 - (1 + row["params"]["a"]) / 100)
    for row in stopped:
        assert not row["feasible"] and row["reasons"][0].startswith("stopped after plus: accuracy"), row
    ran = trial_runs(pipeline)
    variant = "[a={a!r},b={b!r}]"
    for row in rows:
        suffix = variant.format(**row["params"])
        assert f"best.plus{suffix}" in ran
        assert (f"best.scaled{suffix}" in ran) == (not stops(row)), "a stopped trial ran its later stages"
    assert len(ran) == 2 * len(rows) - len(stopped)
    table = (entry(pipeline, "best") / "table.txt").read_text()
    assert table.count(" pruned ") == len(stopped), table

    again = run(pipeline)
    assert again.code == 0, again.text
    assert trial_runs(pipeline) == ran, "a repeated search ran a stage"
    assert [r["state"] for r in trials_of(pipeline)] == [r["state"] for r in rows]


def test_early_stop_with_jobs_2_prunes_as_the_trials_say(tmp_path):
    pipeline = early_project(tmp_path, trials=6)
    result = run(pipeline, "--jobs", "2")
    assert result.code == 0, result.text
    rows = trials_of(pipeline)
    assert len(rows) == 6 and any(map(stops, rows)) and not all(map(stops, rows))
    assert [r["state"] for r in rows] == ["PRUNED" if stops(r) else "COMPLETE" for r in rows]
    assert len(trial_runs(pipeline)) == 2 * len(rows) - sum(map(stops, rows))


def test_early_stop_is_part_of_the_key(tmp_path):
    pipeline = early_project(tmp_path, trials=2)
    before = cli("plan", pipeline, "--json", cwd=tmp_path, env=PLUGINS)
    pipeline.write_text(pipeline.read_text().replace("margin: 0.01", "margin: 0.03"))
    after = cli("plan", pipeline, "--json", cwd=tmp_path, env=PLUGINS)
    assert json.loads(before.out)["best"]["key"] != json.loads(after.out)["best"]["key"]


def test_a_search_with_early_stop_killed_in_a_trials_later_stages_resumes(tmp_path):
    reference = early_project(tmp_path / "reference", trials=8)
    assert run(reference).code == 0
    expected = trials_of(reference)
    going = [r for r in expected if not stops(r)]
    assert going and len(going) < len(expected), "the toy space should hold trials that stop and trials that go on"
    blocked = "best.scaled[a={a!r},b={b!r}]".format(**going[-1]["params"])

    pipeline = early_project(tmp_path / "killed", trials=8)
    log = kill_when_blocked(pipeline, blocked)
    before = trial_runs(pipeline)

    resumed = cli("run", pipeline, cwd=pipeline.parent, env={**PLUGINS, "TOY_RUN_LOG": str(log)}, fresh=True)
    assert resumed.code == 0, resumed.text
    after = trial_runs(pipeline)[len(before):]
    assert after[0] == blocked, "the interrupted trial's first part was computed again"
    assert len(trial_runs(pipeline)) - 1 == len(trial_runs(reference)), "a finished stage was computed again"
    rows = [r for r in trials_of(pipeline) if not r["interrupted"]]
    assert [(r["params"], r["state"]) for r in rows] == [(r["params"], r["state"]) for r in expected]
