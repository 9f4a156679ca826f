"""The stage graph drawn by Graphviz's dot when it is installed, and the built-in layout when it fails."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ElementTree

import pytest

from compressflow.report.dag_svg import dag_svg
from dag_helpers import PIPELINES, plan_record


def digits_record() -> dict:
    record = plan_record(PIPELINES / "digits.yaml")
    record["stages"]["pruned"].update(status="failed", error="the loss became nan")
    return record


def test_a_dot_that_fails_leaves_the_graph_to_the_builtin_layout(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text('#!/bin/sh\ntouch "$0.ran"\necho "Error: broken on purpose" >&2\nexit 1\n')
    dot.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("COMPRESSFLOW_GRAPHVIZ", raising=False)
    svg = dag_svg(digits_record())
    assert (bin_dir / "dot.ran").exists(), "dot on the PATH is tried first"
    assert svg.count("data-from=") == len(digits_record()["edges"]) and "data-stage='int8'" in svg
    assert "<title>pruned: failed (the loss became nan)</title>" in svg


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_draws_the_graph_inline_when_it_is_installed(monkeypatch):
    monkeypatch.delenv("COMPRESSFLOW_GRAPHVIZ", raising=False)
    record = digits_record()
    svg = dag_svg(record)
    root = ElementTree.fromstring(svg)  # one well-formed element, nothing before it
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("class") == "dag"
    assert "class=\"node\"" in svg and "data-from=" not in svg, "drawn by dot, not by the built-in layout"
    assert all(f">{name}</text>" in svg for name in record["stages"])
    assert "<title>pruned: failed (the loss became nan)</title>" in svg and "<title>int8 → release</title>" in svg
    assert "http://" not in svg.replace("http://www.w3.org/2000/svg", ""), "the page must not load anything"
    monkeypatch.setenv("COMPRESSFLOW_GRAPHVIZ", "0")
    assert "data-from=" in dag_svg(record), "COMPRESSFLOW_GRAPHVIZ=0 turns dot off"
