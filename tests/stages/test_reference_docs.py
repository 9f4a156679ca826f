"""docs/stages.md is generated from the stage models, and every stage's example validates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from compressflow.dsl import load_pipeline
from compressflow.stages.describe import markdown_reference
from compressflow.stages.registry import stage_types

DOCS = Path(__file__).resolve().parents[2] / "docs" / "stages.md"

CONTEXT = """
version: 1
name: example
datasets:
  digits: {type: sklearn_digits}
stages:
  base: {type: load, builder: "compressflow.models:small_cnn"}
  trained: {type: fine_tune, model: base, data: digits}
  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: constant, target_sparsity: 0.5}
  check: {type: evaluate, models: [trained, pruned], baseline: trained, data: digits}
"""


def test_reference_is_up_to_date():
    assert DOCS.read_text() == markdown_reference(built_in_only=True) + "\n", \
        "docs/stages.md is stale: run python -m compressflow.stages.describe > docs/stages.md"


BUILT_IN = sorted(kind for kind, cls in stage_types().items()
                  if cls.__module__.startswith("compressflow.") and cls.example)


def test_every_built_in_stage_has_an_example():
    missing = [kind for kind, cls in stage_types().items()
               if cls.__module__.startswith("compressflow.") and not cls.example and kind != "pipeline"]
    assert missing == []


@pytest.mark.parametrize("kind", BUILT_IN)
def test_example_validates(tmp_path, kind):
    document = yaml.safe_load(CONTEXT)
    body = yaml.safe_load(textwrap.dedent(stage_types()[kind].example))
    document["stages"][f"my_{kind}"] = {"type": kind, **body}
    pipeline = load_pipeline(document)
    assert pipeline.stages[f"my_{kind}"].kind == kind
