"""Without matplotlib the HTML report is written all the same, each plot replaced by how to get it."""

from __future__ import annotations

import os
import re
from html import unescape
from pathlib import Path

from experience_helpers import MODELS
from helpers import cli, write
from report_helpers import ReportPage

PLOTS = ("accuracy against gzip size", "latency", "sparsity per layer", "training curves")
HINT = "pip install 'compressflow[report]' to draw it"


def test_the_tf_extra_brings_what_the_report_draws_with():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    tf_extra = re.search(r"^tf = \[(.*?)^\]", pyproject, re.S | re.M)
    assert tf_extra is not None and re.search(r'^\s*"matplotlib>=', tf_extra.group(1), re.M)


def test_report_without_matplotlib_writes_the_page_and_says_how_to_draw_the_plots(shop, tmp_path):
    assert cli("run", shop).code == 0
    blocked = tmp_path / "blocked"  # a matplotlib that cannot be imported, ahead of the real one
    write(blocked / "matplotlib" / "__init__.py", "raise ImportError('matplotlib is blocked in this test')\n")
    path = os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")])
    out = tmp_path / "report.html"
    result = cli("report", shop, "-o", out, fresh=True, env={"PYTHONPATH": path})
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    assert "4 plots not drawn" in result.err and "pip install 'compressflow[report]'" in result.err
    html = out.read_text()
    page = ReportPage(html)
    assert page.images == [] and page.svgs == 1
    assert set(page.models) == set(MODELS), "the models table is there without plots"
    text = unescape(re.sub(r"<[^>]+>", "", html))  # what the page shows
    for plot in PLOTS:
        assert f"{plot}: not drawn, matplotlib cannot be imported (matplotlib is blocked in this test)" in text
    assert text.count(HINT) == len(PLOTS)
