"""The report's per-layer numerics of a LiteRT-quantized digits model: worst layers first, one bar per layer."""

from __future__ import annotations

import json
import math
import re
import shutil
from html import unescape
from pathlib import Path

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

PIPELINE = """
version: 1
name: numerics
seed: 0
datasets:
  digits: {type: sklearn_digits}
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {input_shape: [8, 8, 1], classes: 10}
  int4:
    type: quantize
    model: base
    method: litert
    recipe: weight_only_wi4_afp32
    data: digits
  check:
    type: evaluate
    models: [base, int4]
    baseline: base
    data: digits
"""


def entry(pipeline: Path, stage: str) -> Path:
    key = json.loads(cli("plan", pipeline, "--json", cwd=pipeline.parent).out)[stage]["key"]
    return pipeline.parent / ".compressflow" / "cache" / "entries" / key[:2] / key


def layer_rows(html: str) -> list[list[str]]:
    """The numerics table's rows: the text of each cell."""
    rows = re.findall(r"<tr data-layer='[^']*'>(.*?)</tr>", html, re.S)
    return [[unescape(re.sub(r"<[^>]+>", " ", cell)).split() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in rows]


def sort_key(layer: dict) -> tuple[float, float]:
    def number(value):
        return math.inf if value is None else value

    return (-number(layer["added_error"]), -number(layer["output"]["relative_error"]))


def error(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> Path:
    pipeline = write(tmp_path_factory.mktemp("numerics") / "numerics.yaml", PIPELINE)
    result = cli("run", pipeline, cwd=pipeline.parent, timeout=900)
    assert result.code == 0, result.text
    return pipeline


def test_the_numerics_section_lists_the_worst_layer_first_with_one_bar_per_layer(quantized, tmp_path):
    table = json.loads((entry(quantized, "int4") / "numerics.json").read_text())
    expected = sorted((layer for layer in table["layers"] if layer["output"] is not None), key=sort_key)
    out = tmp_path / "report.html"
    result = cli("report", quantized, "-o", out, cwd=quantized.parent)
    assert result.code == 0, result.text
    html = out.read_text()
    assert "<h2>Numerics per layer — int4</h2>" in html
    rows = layer_rows(html)
    assert [row[1][0] for row in rows] == [layer["layer"] for layer in expected]
    assert rows[0][1][0] == table["worst_layers"][0] and "worst" in rows[0][1]
    by_layer = {layer["layer"]: layer for layer in expected}
    for row in rows:
        layer = by_layer[row[1][0]]
        assert row[2] == [layer["op"]]
        bits = {re.search(r"\d+$", w["dtype"]).group(0) for w in layer["weights"]}
        assert row[3] == ([", ".join(sorted(bits))] if bits else ["-"])
        assert row[4] == [error(layer["output"]["relative_error"])]
        assert row[5] == [error(layer["added_error"])]
        assert row[6] == [f"{layer['output']['cosine_similarity']:.4f}"]
    assert expected[0]["added_error"] > 0
    assert {"conv1", "conv2", "dense1", "probs"} <= {row[1][0] for row in rows if row[3] == ["4"]}
    bars = re.findall(r'id="numerics-int4-bar-(\d+)"', html)
    assert sorted(map(int, bars)) == list(range(len(rows))) and len(rows) == len(expected)

    markdown = cli("report", quantized, "--format", "markdown", cwd=quantized.parent)
    assert markdown.code == 0, markdown.text
    lines = markdown.out.splitlines()
    first = lines.index("#### Numerics per layer — int4")
    listed = [line.split("|")[1].strip() for line in lines[first:] if line.startswith("| **")]
    assert listed[:3] == [f"**{layer['layer']}**" for layer in expected[:3]]


def test_without_its_table_the_section_shows_the_worst_layers_the_evaluation_kept(quantized, tmp_path):
    kept = json.loads((entry(quantized, "check") / "metrics.json").read_text())["models"]["int4"]["numerics"]
    gone = entry(quantized, "int4")
    aside = tmp_path / "aside"
    shutil.move(gone, aside)  # as cache gc leaves an entry no ref keeps
    try:
        out = tmp_path / "report.html"
        result = cli("report", quantized, "-o", out, cwd=quantized.parent)
    finally:
        shutil.move(aside, gone)
    assert result.code == 0, result.text
    html = out.read_text()
    assert "<h2>Numerics per layer — int4</h2>" in html and "as evaluation check kept them" in html
    rows = layer_rows(html)
    assert rows and [row[1][0] for row in rows] == [layer["layer"] for layer in kept["worst_layers"]]
    assert len(re.findall(r'id="numerics-int4-bar-\d+"', html)) == len(rows)
