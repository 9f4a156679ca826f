"""An export's sidecar lists the versions of the libraries in its lineage's keys: LiteRT Quantizer after litert."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

PIPELINE = """
version: 1
name: litert-export
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {input_shape: [8, 8, 1], classes: 10}
  int4: {type: quantize, model: base, method: litert, recipe: weight_only_wi4_afp32}
  float: {type: quantize, model: base, method: float32}
  release: {type: export, model: int4, to: out/int4.tflite}
  release_float: {type: export, model: float, to: out/float.tflite}
"""


def test_a_litert_quantized_export_lists_litert_quantizer_and_a_float_one_does_not(tmp_path):
    pipeline = write(tmp_path / "p.yaml", PIPELINE)
    result = cli("run", pipeline, cwd=tmp_path, timeout=900)
    assert result.code == 0, result.text
    litert = json.loads((tmp_path / "out" / "int4.tflite.json").read_text())["versions"]
    assert litert["litert-quantizer"] == version("litert-quantizer")
    assert litert["ai-edge-litert"] == version("ai-edge-litert")
    assert litert["tensorflow"] == version("tensorflow")
    plain = json.loads((tmp_path / "out" / "float.tflite.json").read_text())["versions"]
    assert "litert-quantizer" not in plain and plain["tensorflow"] == version("tensorflow")
