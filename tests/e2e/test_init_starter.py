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
    _keras_file(tmp_path / "models" / "net.keras", [8, 8, 1], 10)
    result = cli("init", "--model", "models/net.kears", cwd=tmp_path)
    assert result.code == 2 and str(tmp_path.resolve() / "models" / "net.kears") in result.err
    assert "did you mean 'models/net.keras'?" in result.err


def _zip(path: Path, members: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)


NOT_MODELS = {
    # name: (how to make it, what the message says about it)
    "notamodel.keras": (lambda p: p.write_text("just some text\n"), "neither a zip archive nor an HDF5 file"),
    "empty.h5": (lambda p: p.write_bytes(b""), "it is empty"),
    "text.h5": (lambda p: p.write_text("HDF? no\n"), "neither a zip archive nor an HDF5 file"),
    "archive.keras": (lambda p: _zip(p, {"weights.bin": "x"}), "zip archive without config.json"),
    "broken.keras": (lambda p: p.write_bytes(b"PK\x03\x04 and then nothing"), "not a readable zip archive"),
    "model.zip": (lambda p: _zip(p, {"config.json": "{}"}), "Keras loads one only as .keras"),
    "model.tflite": (lambda p: p.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(24)), "it is a TFLite model"),
    "saved": (lambda p: (p.mkdir(), (p / "variables").mkdir()), "folder without saved_model.pb"),
}


@pytest.mark.parametrize("name", sorted(NOT_MODELS))
def test_init_refuses_a_file_that_is_not_a_model(tmp_path, name):
    make, reason = NOT_MODELS[name]
    make(tmp_path / name)
    result = cli("init", "--model", name, cwd=tmp_path)
    assert result.code == 2, result.text
    assert f"error: {name} is not a Keras model file: " in result.err and reason in result.err, result.err
    assert "Traceback" not in result.text
    assert not (tmp_path / "pipeline.yaml").exists() and not (tmp_path / ".compressflow").exists()


def test_init_takes_an_h5_file_and_a_saved_model_folder_by_their_bytes(tmp_path):
    (tmp_path / "net.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(504))
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "saved_model.pb").write_bytes(b"")
    for given, output in (("net.h5", "from-h5.yaml"), ("exported", "from-saved-model.yaml")):
        result = cli("init", "--model", given, "-o", output, cwd=tmp_path)
        assert result.code == 0, result.text
        assert yaml.safe_load((tmp_path / output).read_text())["stages"]["base"]["path"] == given
    # a plain SavedModel (no Keras layers) cannot be pruned: its starter quantizes it directly
    stages = yaml.safe_load((tmp_path / "from-saved-model.yaml").read_text())["stages"]
    assert "pruned" not in stages and stages["int8"]["model"] == "base"
    assert "pruned" in yaml.safe_load((tmp_path / "from-h5.yaml").read_text())["stages"]


def test_init_reads_the_model_file_within_the_limits_every_model_file_is_read_with(tmp_path):
    """A config nested deeper than the limit (a file built to exhaust the parser) is refused, not parsed."""
    path = tmp_path / "deep.keras"
    deep = "[" * 5000 + "]" * 5000
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", '{"class_name": "Sequential", "config": ' + deep + "}")
    result = cli("init", "--model", "deep.keras", "-o", "compress.yaml", cwd=tmp_path)
    assert result.code == 2, result.text
    assert "COMPRESSFLOW_MODEL_MAX_CONFIG_DEPTH" in result.err and "Traceback" not in result.text
    assert not (tmp_path / "compress.yaml").exists()
