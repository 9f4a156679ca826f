"""A toy project for the progress, record, report and tracking tests (no TensorFlow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import write

EXPERIENCE_PIPELINE = """
version: 1
name: shop
stages:
  small: {type: toy_number, value: 4}
  medium: {type: toy_number, value: 2}
  large: {type: toy_number, value: 1}
  tuned: {type: toy_train, model: medium, epochs: 3}
  check:
    type: toy_evaluate
    models: [large, tuned, small]
    baseline: large
    accuracy: {large: 0.95, tuned: 0.97, small: 0.93}
"""
MODELS = ("large", "tuned", "small")
PARETO = ["small", "tuned"]  # tuned is smaller and more accurate than large


def use_experience_stages(monkeypatch) -> None:
    """Make the toy stages of experience_stages.py known here and in subprocesses."""
    import experience_stages  # noqa: F401  (registers the stage types in this process)

    plugins = os.environ.get("COMPRESSFLOW_PLUGINS", "")
    if "experience_stages" not in plugins:
        monkeypatch.setenv("COMPRESSFLOW_PLUGINS", ",".join(filter(None, [plugins, "experience_stages"])))


@pytest.fixture
def shop(tmp_path: Path, monkeypatch) -> Path:
    """The toy pipeline file in a fresh folder."""
    use_experience_stages(monkeypatch)
    monkeypatch.delenv("COMPRESSFLOW_CACHE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return write(tmp_path / "shop.yaml", EXPERIENCE_PIPELINE)
