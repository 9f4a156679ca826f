"""The JSON Schema given to editors accepts every example pipeline and rejects a broken one."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from compressflow.dsl import pipeline_json_schema

jsonschema = pytest.importorskip("jsonschema")

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def _pipeline_files() -> list[Path]:
    """Every pipeline file under pipelines/ (a YAML mapping with `stages:`; params files are not)."""
    found = []
    for path in sorted(PIPELINES.rglob("*.y*ml")):
        if ".compressflow" in path.parts:
            continue
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "stages" in data:
            found.append(path)
    return found


@pytest.fixture(scope="module")
def validator():
    schema = pipeline_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_there_are_example_pipelines():
    assert PIPELINES / "digits.yaml" in _pipeline_files()


@pytest.mark.parametrize("path", _pipeline_files(), ids=lambda p: str(p.relative_to(PIPELINES)))
def test_schema_accepts_every_example_pipeline(validator, path):
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text())), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


@pytest.mark.parametrize("breakage", ["typo", "wrong_type", "unknown_type", "missing_field"])
def test_schema_rejects_a_broken_pipeline(validator, breakage):
    data = copy.deepcopy(yaml.safe_load((PIPELINES / "digits.yaml").read_text()))
    stages = data["stages"]
    if breakage == "typo":
        stages["trained"]["epocs"] = stages["trained"].pop("epochs")
    elif breakage == "wrong_type":
        stages["trained"]["epochs"] = "many"
    elif breakage == "unknown_type":
        stages["int8"]["type"] = "quantise"
    else:
        del stages["pruned"]["model"]
    assert not validator.is_valid(data)
