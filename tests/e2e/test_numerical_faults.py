"""Numerical faults fail the run clearly and cache nothing for the failing stage.

NaN or inf in the data is refused where the data is loaded, naming the dataset, split, samples and
positions (a TensorFlow build may or may not show it as a NaN loss); a learning rate so high that
training diverges is reported as divergence, not as bad data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf


def _assert_nothing_cached_for_trained(pipeline: Path) -> None:
    plan = json.loads(cli("plan", pipeline, "--json").out)
    assert {name: item["action"] for name, item in plan.items()} == {"base": "cached", "trained": "run",
                                                                     "float": "run"}
    listed = cli("cache", "ls", pipeline)
    assert "trained" not in listed.out and "1 entries" in listed.out, listed.text
    entries = pipeline.parent / ".compressflow" / "cache" / "entries"
    assert [p.name for p in entries.rglob(".*")] == [], "an unfinished entry was left behind"


def test_nan_in_the_data_fails_naming_the_samples_and_nothing_is_cached(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, (120, 8, 8, 1)).astype("float32")
    x[:, 3, 3, 0] = np.nan  # one broken pixel in every image, as a bad preprocessing step leaves it
    np.savez(tmp_path / "broken.npz", x=x, y=rng.integers(0, 10, 120))
    pipeline = write(tmp_path / "pipeline.yaml", """
        version: 1
        name: bad-data
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
    failure = next(line for line in result.text.splitlines() if line.startswith("trained: FAILED"))
    assert "dataset 'broken' holds values no model can use; train split: inputs hold NaN in 96 of 96 samples" \
        in failure
    assert "validation split: inputs hold NaN in 24 of 24 samples" in failure
    assert failure.count("at 1 feature position: (3, 3, 0)") == 2 and "nan_to_num" in failure
    assert "learning_rate" not in failure
    _assert_nothing_cached_for_trained(pipeline)


def test_a_huge_learning_rate_on_clean_data_is_reported_as_divergence(tmp_path: Path):
    pipeline = write(tmp_path / "pipeline.yaml", """
        version: 1
        name: diverges
        datasets:
          digits: {type: sklearn_digits, layout: flat, limit: 300}
        stages:
          base: {type: load, builder: "compressflow.models:mlp", args: {hidden: [64, 64, 64], logits: true}}
          trained: {type: fine_tune, model: base, data: digits, epochs: 3, optimizer: sgd, learning_rate: 10.0}
          float: {type: quantize, model: trained, method: float32}
        """)

    result = cli("run", pipeline, "--progress", "plain")

    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    failure = next(line for line in result.text.splitlines() if line.startswith("trained: FAILED"))
    # Which of the two shows first (the loss, or a weight while the loss stayed finite) is TensorFlow's business.
    assert re.search(r"the training loss became (nan|inf) at epoch \d+, batch \d+"
                     r"|weight \S+ became NaN or infinite while the training loss stayed finite", failure), failure
    assert "the model is not saved. Try a lower learning_rate (now 10)" in failure
    assert "holds values no model can use" not in failure, failure
    _assert_nothing_cached_for_trained(pipeline)
