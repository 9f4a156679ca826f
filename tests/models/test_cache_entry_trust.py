"""Whether a model's Lambda code runs is decided by the pipeline being run, not by the cache entry.

Someone who can write to a shared cache writes an entry under the key of a pipeline's load stage:
its model has a Lambda layer that touches a canary file when tf-keras loads it, and its
``artifact.json`` says ``trusted``. The pipeline's load stage does not say ``trust: true``, so the
next stage, which loads that model from the entry, refuses it and the canary stays untouched. A
pipeline whose load stage says ``trust: true`` still gives its Lambda model on to the next stage.
An ``.h5`` entry (what a QAT stage writes), whose Lambda tf-keras runs even in safe mode, is
inspected and refused unless the pipeline trusts it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import compressflow.api
from helpers import cli, write

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(folder with plain.keras and payload.keras, the canary payload.keras touches when loaded)."""
    from compressflow.stages.tfutil import keras

    k = keras()
    folder = tmp_path_factory.mktemp("entry-trust")
    canary = folder / "CANARY-entry-lambda-ran"
    marker = str(canary)
    inputs = k.Input((8, 8, 1), name="image")
    flat = k.layers.Flatten(name="flatten")(inputs)
    k.Model(inputs, k.layers.Dense(10, activation="softmax", name="probs")(flat)).save(folder / "plain.keras")
    payload = k.layers.Lambda(lambda t: __import__("pathlib").Path(marker).touch() or t, name="payload")(flat)
    k.Model(inputs, k.layers.Dense(10, activation="softmax", name="probs")(payload)).save(folder / "payload.keras")
    canary.unlink()  # building the model called the layer once
    return folder, canary


def pipeline(folder: Path, name: str, model: str, trust: bool = False) -> Path:
    return write(folder / f"{name}.yaml", f"""
        version: 1
        name: {name}
        stages:
          model: {{type: load, path: {model}{", trust: true" if trust else ""}}}
          small: {{type: quantize, model: model, method: float16}}
        """)


def forge_load_entry(pipeline_file: Path, cache: Path, model_file: Path) -> None:
    """Write, under the key of stage ``model``, an entry holding ``model_file`` and saying it is trusted."""
    planned = compressflow.api.plan(pipeline_file, cache_dir=cache).stages["model"]
    assert planned.action == "run"
    store = compressflow.api.open_cache(pipeline_file, cache, log=lambda _: None)
    with store.writer(planned.key.key, stage="model", key_doc=planned.key.doc) as out:
        shutil.copy(model_file, Path(out) / "model.keras")
        (Path(out) / "metrics.json").write_text(json.dumps({"params": 650, "sparsity": 0.0, "kernels": {}}))
        (Path(out) / "artifact.json").write_text(json.dumps({
            "kind": "keras_model", "file": "model.keras", "source": "path", "format": "keras", "params": 650,
            "trusted": True, "input_shape": [None, 8, 8, 1], "output_shape": [None, 10]}))
    assert compressflow.api.plan(pipeline_file, cache_dir=cache).stages["model"].action == "cached"


def test_an_entry_saying_trusted_does_not_make_an_untrusting_pipeline_run_its_lambda(models, tmp_path):
    folder, canary = models
    cache = tmp_path / "shared-cache"
    victim = pipeline(folder, "untrusting", "plain.keras")
    forge_load_entry(victim, cache, folder / "payload.keras")

    result = cli("run", victim, "--cache", cache, "--progress", "plain")

    assert not canary.exists(), "the Lambda layer of the cache entry ran"
    assert result.code == 1, result.text
    assert "small: FAILED" in result.out and "Lambda" in result.out, result.text
    assert "Traceback" not in result.text


def test_a_pipeline_whose_load_stage_trusts_its_file_gives_the_lambda_model_on(models, tmp_path):
    folder, canary = models
    trusting = pipeline(folder, "trusting", "payload.keras", trust=True)

    result = cli("run", trusting, "--cache", tmp_path / "cache", "--progress", "plain")

    assert result.code == 0, result.text
    assert canary.exists(), "trust: true on the load stage lets its file's Lambda run"
    canary.unlink()


def test_an_h5_entry_whose_lambda_tf_keras_would_run_even_in_safe_mode_is_refused_unless_trusted(models, tmp_path):
    from compressflow.errors import UnsafeModelError
    from compressflow.stages.base import Artifact
    from compressflow.stages.model_trust import declared_by
    from compressflow.stages.model_io import load_artifact_model
    from compressflow.stages.tfutil import keras

    folder, canary = models
    entry = tmp_path / "entry"
    entry.mkdir()
    keras().models.load_model(folder / "payload.keras", compile=False, safe_mode=False).save(entry / "model.h5")
    canary.unlink()
    (entry / "artifact.json").write_text(json.dumps({"kind": "keras_model", "file": "model.h5", "trusted": True}))
    artifact = Artifact.read("model", "0" * 64, entry)

    with pytest.raises(UnsafeModelError, match=r"layer 'payload' is a Lambda layer.*`trust: true`"):
        load_artifact_model(artifact)
    assert not canary.exists(), "the Lambda layer of the .h5 entry ran"

    with declared_by([{"type": "load", "config": {"type": "load", "path": "payload.keras", "trust": True}}]):
        assert "payload" in [layer.name for layer in load_artifact_model(artifact).layers]
    assert canary.exists()
    canary.unlink()
