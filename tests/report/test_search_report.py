"""The report's search section: every trial plotted (objective against the constraint) and tabled.

The toy recipe makes ``(1 + a) * b`` from the number 1; toy_measure gives a number ``n`` the
accuracy ``1 - n / 100`` and the gzip size ``int(1000 / n)``: against the baseline (1, accuracy 0.99)
a trial's accuracy drop is ``n - 1`` points.
"""

from __future__ import annotations

import os
import re
from html import unescape
from pathlib import Path

import pytest

from compressflow.report.trials_section import from_trials
from helpers import cli, write
from toy_search import PLUGINS, search_pipeline, trials_of, write_project

@pytest.fixture
def searched(tmp_path: Path) -> Path:
    """A toy search project that has run: 10 trials, some over the 5-point bound."""
    pipeline = write_project(tmp_path, search_pipeline(trials=10, drop=0.05))
    result = cli("run", pipeline, cwd=tmp_path, env=PLUGINS)
    assert result.code == 0, result.text
    return pipeline


def trial_rows(pipeline: Path) -> list[dict]:
    return trials_of(pipeline)


def number(row: dict) -> float:
    return (1 + row["params"]["a"]) * row["params"]["b"]


def expected_front(points: dict[int, tuple[float, float]]) -> set[int]:
    """Trials no other trial beats on both (smaller) coordinates."""
    return {n for n, (x, y) in points.items()
            if not any(ox <= x and oy <= y and (ox, oy) != (x, y) for o, (ox, oy) in points.items() if o != n)}


def table_rows(html: str) -> dict[int, str]:
    """The trials table's rows, by trial number: the text each row shows."""
    rows = re.findall(r"<tr data-trial='(\d+)'[^>]*>(.*?)</tr>", html, re.S)
    return {int(n): unescape(re.sub(r"<[^>]+>", " ", body)) for n, body in rows}


def test_the_search_section_plots_and_tables_every_trial_and_marks_the_chosen_and_the_front(searched):
    rows = trial_rows(searched)
    out = searched.parent / "report.html"
    result = cli("report", searched, "-o", out, cwd=searched.parent, env=PLUGINS)
    assert result.code == 0, result.text
    html = out.read_text()
    assert "<h2>Search — best</h2>" in html
    table = table_rows(html)
    assert sorted(table) == [r["number"] for r in rows] == list(range(10))
    for row in rows:  # the table's figures are each trial's own
        n = number(row)
        assert f" {int(1000 / n)} B " in table[row["number"]]
        assert f" {n - 1:.2f} pt " in table[row["number"]]
    feasible = {r["number"] for r in rows if r["feasible"]}
    assert feasible and len(feasible) < len(rows), "the toy space should hold feasible and infeasible trials"
    points = {int(m[0]): m[1] for m in re.findall(r'id="trials-best-trial-(\d+)-(feasible|infeasible)"', html)}
    assert points == {r["number"]: "feasible" if r["feasible"] else "infeasible" for r in rows}
    best = min((r for r in rows if r["feasible"]), key=lambda r: (r["values"][0], r["number"]))["number"]
    assert re.findall(r'id="trials-best-chosen-(\d+)"', html) == [str(best)]
    assert [n for n, text in table.items() if "chosen" in text] == [best]
    front = expected_front({r["number"]: (r["values"][0], number(r) - 1) for r in rows})
    assert {int(n) for n in re.findall(r'id="trials-best-front-(\d+)"', html)} == front
    assert {n for n, text in table.items() if "Pareto" in text} == front
    assert len(re.findall(r'id="trials-best-bound"', html)) == 1 and "max_accuracy_drop 5 pt" in html

    markdown = cli("report", searched, "--format", "markdown", cwd=searched.parent, env=PLUGINS)
    assert markdown.code == 0, markdown.text
    assert "#### Search — best" in markdown.out
    marked = {int(m[0]): m[1] for m in re.findall(r"^\| (\d+)((?: ✔)?(?: ★)?) \|", markdown.out, re.M)}
    assert sorted(marked) == list(range(10))
    assert {n for n, marks in marked.items() if "✔" in marks} == {best}
    assert {n for n, marks in marked.items() if "★" in marks} == front


def test_the_front_leaves_out_dominated_trials_and_two_objectives_are_the_axes():
    def row(n: int, size: float, accuracy: float, feasible: bool = True, state: str = "COMPLETE") -> dict:
        return {"number": n, "params": {"p": n}, "state": state, "values": [size, accuracy], "feasible": feasible,
                "metrics": {"gzip_bytes": size, "accuracy": accuracy}, "reasons": [], "constraints": [0.0]}

    config = {"objective": [{"metric": "gzip_size", "goal": "min"}, {"metric": "accuracy"}], "space": {"p": {}}}
    rows = [row(0, 100, 0.90), row(1, 50, 0.95), row(2, 60, 0.93), row(3, 200, 0.97, feasible=False),
            row(4, 10, 0.5, state="FAIL")]
    search = from_trials("s", config, rows, chosen=1)
    assert (search.x.key, search.y.key) == ("gzip_size", "accuracy") and search.bound is None
    assert search.front == [1, 3]  # 0 and 2 are larger and less accurate than 1; 4 failed
    failed = search.trials[4]
    assert failed.how == "failed" and failed.x is None and not failed.feasible


def test_without_matplotlib_the_trials_table_is_there_and_the_plot_says_how_to_get_it(searched, tmp_path):
    blocked = tmp_path / "blocked"
    write(blocked / "matplotlib" / "__init__.py", "raise ImportError('matplotlib is blocked in this test')\n")
    path = os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")])
    out = tmp_path / "report.html"
    result = cli("report", searched, "-o", out, fresh=True, cwd=searched.parent, env={**PLUGINS, "PYTHONPATH": path})
    assert result.code == 0, result.text
    assert "trials of best" in result.err
    html = out.read_text()
    assert len(table_rows(html)) == 10 and 'id="trials-best-' not in html
    assert "trials of best</b>: not drawn, matplotlib cannot be imported" in html
