"""The HTML report and Markdown summary of a recorded run (toy stages, no TensorFlow)."""

from __future__ import annotations

import base64

import pytest

from compressflow.report.data import pareto_front
from experience_helpers import MODELS, PARETO
from helpers import cli
from report_helpers import ReportPage, png_size

def test_pareto_front_keeps_what_nothing_beats_on_both_size_and_accuracy():
    points = {"big": (100, 0.95), "better": (50, 0.97), "tiny": (10, 0.90), "worse": (60, 0.90),
              "tie": (10, 0.90), "missing": (None, 0.99)}
    assert pareto_front(points) == ["tiny", "tie", "better"]  # equal points do not beat each other
    assert pareto_front({"only": (1, 0.5)}) == ["only"]


@pytest.mark.slow
def test_html_report_has_every_model_valid_plots_and_the_stage_graph(shop):
    assert cli("run", shop).code == 0
    result = cli("report", shop)
    assert result.code == 0, result.text
    reports = list((shop.parent / ".compressflow" / "reports").glob("*.html"))
    assert len(reports) == 1 and str(reports[0]) in result.out
    html = reports[0].read_text()
    page = ReportPage(html)
    assert "Models — check" in page.titles and "Pipeline" in page.titles and "Training" in page.titles
    header = page.header()
    assert header[:4] == ["model", "format", "accuracy", "Δ accuracy"]
    table = page.models
    assert set(table) == set(MODELS) and all(len(row) == len(header) for row in table.values())
    column = {name: i for i, name in enumerate(header)}
    assert table["tuned"][column["accuracy"]] == "97.00%"
    assert table["tuned"][column["Δ accuracy"]] == "+2.00 pt"
    assert table["small"][column["gzip size"]] == "22.0 KiB"
    assert table["small"][column["gzip ratio"]] == "4.00×"
    assert "baseline" in table["large"][0]
    assert {name for name, row in table.items() if "Pareto" in row[0]} == set(PARETO)
    assert len(page.images) == 4  # accuracy vs size, latency, sparsity per layer, training curves
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        width, height = png_size(base64.b64decode(source.split(",", 1)[1], validate=True))
        assert width >= 400 and height >= 150
    assert page.svgs == 1 and all(f">{name}</text>" in html for name in (*MODELS, "medium", "check"))
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html, \
        "the page must not load anything"


def test_markdown_summary_for_ci_comments(shop):
    assert cli("run", shop).code == 0
    result = cli("report", shop, "--format", "markdown")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[0] == "### ✅ compressflow · shop · ok"
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| **")}
    assert set(rows) == {f"**{m}**" + (" (baseline)" if m == "large" else "") + (" ★" if m in PARETO else "")
                         for m in MODELS}
    assert "| 97.00% | +2.00 pt |" in rows["**tuned** ★"]
    written = cli("report", shop, "--format", "markdown", "-o", shop.parent / "summary.md")
    assert written.code == 0 and (shop.parent / "summary.md").read_text() == result.out


def test_report_of_a_failed_run_says_so(shop):
    shop.write_text(shop.read_text().replace("value: 1}", "value: 1, fail: true}"))
    assert cli("run", shop).code == 1
    out = shop.parent / "r.html"
    assert cli("report", shop, "latest", "-o", out).code == 0
    page = ReportPage(out.read_text())
    stages = {row[0]: row for row in page.rows if len(row) == 6 and row[0] != "stage"}
    assert stages["large"][2] == "failed" and "failed on purpose" in stages["large"][5]
    assert stages["check"][2] in ("blocked", "not run")
    assert "No evaluate stage finished" in out.read_text()


@pytest.mark.parametrize("ref", ["nope", "latest"])
def test_report_without_runs_or_with_an_unknown_run_is_a_usage_error(shop, ref):
    result = cli("report", shop, ref)
    assert result.code == 2 and "Traceback" not in result.text


@pytest.mark.slow
def test_selection_of_a_select_stage_is_shown_and_marked(shop):
    import json

    from compressflow.report.html import render_html
    from compressflow.report.markdown import render_markdown

    assert cli("run", shop).code == 0
    record = json.loads(next((shop.parent / ".compressflow" / "runs").glob("*/run.json")).read_text())
    record["stages"]["best"] = {  # what a select stage's record holds (selection.json and its table)
        "type": "select", "status": "ran", "key": "ab" * 32, "seconds": 0.1, "reasons": ["new"],
        "inputs": {"candidates": ["tuned", "small"], "evaluation": ["check"]},
        "selection": {"selected": "tuned", "metric": "gzip_size", "goal": "minimize", "value": 45000,
                      "evaluation": "check", "baseline": "large",
                      "candidates": [{"name": "tuned", "passed": True, "reasons": [], "value": 45000},
                                     {"name": "small", "passed": False, "value": 22500,
                                      "reasons": ["accuracy drop 2.00 points > 1 point"]}]},
        "table": "candidate  gzip size\ntuned *    43.9 KiB\n"}
    page = ReportPage(render_html(record))
    assert "Selection — best" in page.titles
    assert "selected" in page.models["tuned"][0] and "selected" not in page.models["small"][0]
    candidates = {row[0].replace("selected", ""): row for row in page.rows if len(row) == 3 and row[0] != "candidate"}
    assert candidates["tuned"][2] == "✓ passed"
    assert candidates["small"][2] == "✗ accuracy drop 2.00 points > 1 point"
    markdown = render_markdown(record)
    assert "Selected **tuned** by gzip_size (minimize)." in markdown
    assert "| **tuned** ★ ✔ selected |" in markdown
