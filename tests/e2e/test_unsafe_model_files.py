"""Model files that would run code, through the real CLI.

The Lambda layer of these models touches a canary file when it is called, which
tf-keras does while loading. Without ``trust: true`` the pipeline is refused before
anything runs (exit 2, located at the ``path`` field, naming the layer and the opt-in)
in all three formats, and the canary is never touched; with ``trust: true`` the run
succeeds and the canary shows the file's code did run. A custom class that no module of
``imports:`` registers is refused before anything runs too, naming the layer and both ways
forward (``imports:``, ``trust: true``).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

FORMATS = {"keras": "payload.keras", "h5": "payload.h5", "saved_model": "payload_saved_model"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(folder with the payload model in three formats and a custom-class .keras file, canary path)."""
    from compressflow.stages.tfutil import keras

    k = keras()
    folder = tmp_path_factory.mktemp("models")
    canary = folder / "CANARY-lambda-ran"
    marker = str(canary)
    inputs = k.Input((8, 8, 1), name="image")
    x = k.layers.Flatten(name="flatten")(inputs)
    x = k.layers.Lambda(lambda t: __import__("pathlib").Path(marker).touch() or t, name="payload")(x)
    model = k.Model(inputs, k.layers.Dense(10, activation="softmax", name="probs")(x))
    for name in FORMATS.values():
        path = folder / name
        model.save(path, save_format="tf" if path.suffix == "" else None)
    canary.unlink()  # building the model called the layer once
    plain = k.Model(inputs, k.layers.Dense(10, activation="softmax", name="probs")(k.layers.Flatten()(inputs)))
    plain.save(folder / "plain.keras")
    with zipfile.ZipFile(folder / "plain.keras") as src, zipfile.ZipFile(folder / "custom.keras", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][-1].update(module="evil_package.layers", class_name="Payload")
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return folder, canary


def pipeline_with(folder: Path, path: str, trust: bool = False) -> Path:
    return write(folder / f"load-{Path(path).stem}-{trust}.yaml", f"""
        version: 1
        name: untrusted
        stages:
          other: {{type: load, builder: "compressflow.models:small_cnn"}}
          model: {{type: load, path: {path}{", trust: true" if trust else ""}}}
        """)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_lambda_model_file_is_refused_before_anything_runs(models, fmt: str):
    folder, canary = models
    pipeline = pipeline_with(folder, FORMATS[fmt])
    for command in ("validate", "run"):
        result = cli(command, pipeline)
        assert result.code == 2, result.text
        assert re.search(rf"{re.escape(str(pipeline))}:5:\d+: error: refusing to load ", result.err), result.err
        assert "layer 'payload' is a Lambda layer" in result.err and "`trust: true`" in result.err
        assert "Traceback" not in result.text
    assert not canary.exists(), "the model file's code ran"
    assert not (folder / ".compressflow" / "cache").exists(), "something ran"


def test_trusted_lambda_model_files_load_and_their_code_runs(models):
    folder, canary = models
    pipeline = write(folder / "trusted.yaml", f"""
        version: 1
        name: trusted
        stages:
          from_keras: {{type: load, path: {FORMATS["keras"]}, trust: true}}
          from_h5: {{type: load, path: {FORMATS["h5"]}, trust: true}}
        """)

    result = cli("run", pipeline, "--progress", "plain")

    assert result.code == 0, result.text
    assert canary.exists(), "trust: true loads the file, and its Lambda ran"
    canary.unlink()


def test_unregistered_custom_class_is_refused_before_anything_runs_naming_both_ways_forward(models):
    folder, canary = models
    pipeline = pipeline_with(folder, "custom.keras")
    for command in ("validate", "run"):
        result = cli(command, pipeline)
        assert result.code == 2, result.text
        assert re.search(rf"{re.escape(str(pipeline))}:5:\d+: error: refusing to load ", result.err), result.err
        assert "layer 'probs' is a custom class Payload from module 'evil_package.layers'" in result.err
        assert "list that module under `imports:`" in result.err and "`trust: true`" in result.err
        assert "Traceback" not in result.text
