"""docs/data.md: every dataset type has an example, and each example validates and loads as shown."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from compressflow.data.datasets import load_splits
from compressflow.stages.base import Environment
from compressflow.stages.registry import dataset_types
from compressflow.dsl.schema import pipeline_model

from helpers import cli, write

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "data.md").read_text()
# NOTE: a tfds dataset must be prepared beforehand (it is never downloaded): its example is only validated
NOT_LOADED = {"tfds"}
SHAPES = {"sklearn_diabetes": (10,)}


def _sections() -> dict[str, str]:
    parts = re.split(r"^## `(\w+)`\n", DOC, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _common_pipeline() -> dict:
    return yaml.safe_load(_blocks(DOC.split("## Two ways")[0], "yaml")[0])


def _example(kind: str) -> tuple[dict, dict, str | None]:
    """The example's datasets, its stages (the common ones where it gives none) and its setup code."""
    text = _sections()[kind]
    snippet = yaml.safe_load(_blocks(text, "yaml")[-1])
    python = _blocks(text, "python")
    name = next(iter(snippet["datasets"]))
    stages = snippet.get("stages") or {}
    common = _common_pipeline()["stages"]
    if len(stages) < 2:  # the common stages, reading this dataset (with the example's model where it has one)
        stages = {**{key: ({**stage, "data": name} if "data" in stage else stage) for key, stage in common.items()},
                  **stages}
    return snippet["datasets"], stages, python[-1] if python else None


def test_every_dataset_type_has_a_section():
    pipeline_model()  # registers the types
    assert set(dataset_types()) <= set(_sections()), sorted(set(dataset_types()) - set(_sections()))


@pytest.mark.tf
@pytest.mark.parametrize("kind", sorted(set(_sections())))
def test_the_example_validates_and_loads(tmp_path, kind):
    datasets, stages, setup = _example(kind)
    if kind == "python":  # the function shown is the one beside pipelines/digits-stream.yaml
        source = (REPO / "pipelines" / "digits_stream.py").read_text()
        assert setup in source
        (tmp_path / "digits_stream.py").write_text(source)
        setup = None
    if kind == "tfds":
        (tmp_path / datasets["mnist"]["data_dir"]).mkdir()  # where it would have been prepared
    if setup is not None and kind not in NOT_LOADED:
        subprocess.run([sys.executable, "-c", setup], cwd=tmp_path, check=True, timeout=600)
    document = {**_common_pipeline(), "datasets": datasets, "stages": stages}
    path = write(tmp_path / "p.yaml", yaml.safe_dump(document, sort_keys=False))
    result = cli("validate", path)
    assert result.code == 0, result.text
    if kind in NOT_LOADED:
        return
    config = pipeline_model().model_validate(document).datasets
    name, dataset = next(iter(config.items()))
    sys.path.insert(0, str(tmp_path))
    try:
        splits = load_splits(dataset, Environment(pipeline_dir=tmp_path, seed=0, datasets=dict(config)), name)
    finally:
        sys.path.remove(str(tmp_path))
    assert tuple(splits.sample_shape) == SHAPES.get(kind, (8, 8, 1))
    assert len(splits.task_labels) > 100
