"""A training stage whose loss becomes NaN fails the run clearly and caches nothing for that stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf


def test_nan_loss_fails_with_a_clear_message_and_nothing_is_cached(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, (120, 8, 8, 1)).astype("float32")
    x[:, 3, 3, 0] = np.nan  # one broken pixel in every image, as a bad preprocessing step leaves it
    np.savez(tmp_path / "broken.npz", x=x, y=rng.integers(0, 10, 120))
    pipeline = write(tmp_path / "pipeline.yaml", """
        version: 1
        name: diverges
        datasets:
          broken: {type: npz, path: broken.npz, scale: 0.0625}
        stages:
          base: {type: load, builder: "compressflow.models:small_cnn", args: {filters: [4, 8], dense: 16}}
          trained: {type: fine_tune, model: base, data: broken, epochs: 1, batch_size: 32}
          float: {type: quantize, model: trained, method: float32}
        """)

    result = cli("run", pipeline, "--progress", "plain")

    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert "trained: FAILED" in result.text and "the training loss became nan at epoch 1, batch 1" in result.text
    assert "the model is not saved" in result.text
    plan = json.loads(cli("plan", pipeline, "--json").out)
    assert {name: item["action"] for name, item in plan.items()} == {"base": "cached", "trained": "run",
                                                                     "float": "run"}
    listed = cli("cache", "ls", pipeline)
    assert "trained" not in listed.out and "1 entries" in listed.out, listed.text
    entries = pipeline.parent / ".compressflow" / "cache" / "entries"
    assert [p.name for p in entries.rglob(".*")] == [], "an unfinished entry was left behind"
