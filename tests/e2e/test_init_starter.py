"""`compressflow init` writes a starter pipeline that validates (no TensorFlow)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import cli


def _keras_file(path: Path, input_shape: list[int], classes: int) -> Path:
    """A .keras archive whose config.json describes a small Sequential model (no weights needed)."""
    config = {"class_name": "Sequential", "config": {"name": "net", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, *input_shape], "name": "input"}},
        {"class_name": "Flatten", "config": {"name": "flat"}},
        {"class_name": "Dense", "config": {"name": "probs", "units": classes, "activation": "softmax"}}]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "2.21.0"}))
    return path


def test_init_without_a_model_writes_the_example_with_a_schema_modeline(tmp_path):
    result = cli("init", cwd=tmp_path)
    assert result.code == 0, result.text
    text = (tmp_path / "pipeline.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=.compressflow/pipeline.schema.json"
    assert cli("validate", "pipeline.yaml", cwd=tmp_path).code == 0
    data = yaml.safe_load(text)
    assert data["stages"]["base"]["builder"] == "compressflow.models:small_cnn"
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((tmp_path / ".compressflow" / "pipeline.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    again = cli("init", cwd=tmp_path)
    assert again.code == 2 and "--force" in again.err
    assert cli("init", "--force", cwd=tmp_path).code == 0


@pytest.mark.parametrize("shape, dataset", [([8, 8, 1], "sklearn_digits"), ([28, 28, 1], "npz")])
def test_init_for_a_model_file_loads_it_and_picks_data_that_fits(tmp_path, shape, dataset):
    _keras_file(tmp_path / "models" / "my net.keras", shape, 10)
    result = cli("init", "--model", "models/my net.keras", "-o", "compress.yaml", cwd=tmp_path)
    assert result.code == 0, result.text
    text = (tmp_path / "compress.yaml").read_text()
    data = yaml.safe_load(text)
    assert data["name"] == "compress"
    assert data["stages"]["base"] == {"type": "load", "path": "models/my net.keras"}
    assert data["datasets"]["data"]["type"] == dataset
    assert data["stages"]["release"]["to"] == "out/my-net-int8.tflite"
    assert f"input {tuple(shape)}, 10 outputs" in text
    validate = cli("validate", "compress.yaml", cwd=tmp_path)
    if dataset == "npz":
        assert "28x28x1" in text and "data.npz" in result.out
        assert validate.code == 2 and f"nothing at {tmp_path.resolve() / 'data.npz'}" in validate.err, validate.text
        np.savez(tmp_path / "data.npz", x=np.zeros((4, 28, 28, 1), "float32"), y=np.arange(4))
        validate = cli("validate", "compress.yaml", cwd=tmp_path)
    assert validate.code == 0, validate.text


def test_init_with_a_missing_model_file_is_a_usage_error(tmp_path):
    result = cli("init", "--model", "nope.keras", cwd=tmp_path)
    assert result.code == 2 and "does not exist" in result.err
    assert not (tmp_path / "pipeline.yaml").exists()
