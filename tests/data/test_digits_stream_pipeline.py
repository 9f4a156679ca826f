"""pipelines/digits-stream.yaml (a python dataset of tf.data splits) runs offline from a copy of its folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_the_streaming_example_pipeline_runs(tmp_path):
    for name in ("digits-stream.yaml", "digits_stream.py"):
        shutil.copy(REPO / "pipelines" / name, tmp_path / name)
    result = cli("run", tmp_path / "digits-stream.yaml", "--set", "params.epochs=3", "--set",
                 "params.prune_epochs=3", "--set", "params.max_accuracy_drop=1", timeout=900)
    assert result.code == 0, result.text
    exported = tmp_path / "out" / "digits-stream-int8.tflite"
    assert exported.stat().st_size > 0
    metrics = json.loads(Path(f"{exported}.json").read_text())
    assert metrics
    assert "measuring int8 (tflite_model) on 359 validation samples" in result.text
    table = result.out[result.out.index("check:\nmodel"):]
    assert "int8     tflite int8" in table
