"""The toy search project the search tests share (no TensorFlow).

The toy recipe makes ``(model + a) * b``; toy_measure gives a number ``n`` the accuracy ``1 - n / 100``
and the gzip size ``int(1000 / n)``: a bigger number is smaller and less accurate, so the best feasible
trial is the largest number within the allowed accuracy drop.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli, write

PLUGINS = {"COMPRESSFLOW_PLUGINS": "toy_stages,toy_metrics"}

RECIPE = """
inputs: [model]
params:
  a: 1.0
  b: 2
output: scaled
stages:
  plus:
    type: toy_sum
    inputs: [model]
    add: ${params.a}
  scaled:
    type: toy_scale
    model: plus
    factor: ${params.b}
"""

# NOTE: tests/e2e/test_search_cli.py locates errors by line in this text: keep its lines where they are.
PIPELINE = """
version: 1
name: toysearch
stages:
  base:
    type: toy_number
    value: 1
  best:
    type: search
    recipe: recipes/toy.yaml
    inputs: {model: base}
    space:
      a: {low: 0, high: 5}
      b: {choices: [1, 2, 3]}
    baseline: base
    measure: toy_measure
    objective: {metric: gzip_size, goal: min}
    constraints: {max_accuracy_drop: DROP}
    trials: TRIALS
"""


def search_pipeline(trials: int = 4, drop: float = 0.1, more: str = "") -> str:
    """The toy search pipeline's text with ``trials`` and ``drop``, then ``more`` lines."""
    return PIPELINE.replace("TRIALS", str(trials)).replace("DROP", str(drop)) + more


def write_project(folder: Path, pipeline: str, recipe: str = RECIPE) -> Path:
    """The recipe under ``folder/recipes/toy.yaml`` and the pipeline as ``folder/search.yaml``."""
    write(folder / "recipes" / "toy.yaml", recipe)
    return write(folder / "search.yaml", pipeline)


def entry(pipeline: Path, stage: str = "best", *args: str, env: dict | None = None) -> Path:
    """The cache entry folder of ``stage``, as ``plan --json`` keys it."""
    plan = cli("plan", pipeline, "--json", *args, cwd=pipeline.parent, env=env or PLUGINS)
    key = json.loads(plan.out)[stage]["key"]
    return pipeline.parent / ".compressflow" / "cache" / "entries" / key[:2] / key


def trials_of(pipeline: Path, *args: str, stage: str = "best") -> list[dict]:
    """The rows of the search stage's ``trials.json``."""
    return json.loads((entry(pipeline, stage, *args) / "trials.json").read_text())
