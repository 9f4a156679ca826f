"""export: every format loads or runs; the sidecar; publish copies atomically and without TensorFlow."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from compressflow.data.datasets import SklearnDigits
from compressflow.errors import StageFailed, UsageError
from compressflow.stages.base import Artifact, Environment, tree_sha256
from compressflow.stages.evaluate import EvaluateStage
from compressflow.stages.export import ExportStage
from compressflow.stages.quantize import QuantizeStage

import tiny_tf_models as tiny

LINEAGE = [{"stage": "trained", "type": "load", "key": "a" * 64, "config": {"builder": "x:y"}},
           {"stage": "int8", "type": "quantize", "key": "b" * 64, "config": {"method": "int8"}}]
VERSIONS = {"tensorflow": "2.21.0", "tf-keras": "2.21.0", "tensorflow-model-optimization": "0.8.1"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Environment:
    return Environment(pipeline_dir=tmp_path_factory.mktemp("pipeline"), seed=0,
                       datasets={"digits": SklearnDigits()})


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def artifacts(env, work) -> dict[str, Artifact]:
    """trained (Keras), int8 (TFLite), qat (QAT Keras, 1 epoch), check (evaluate of trained and int8)."""
    found = {"trained": tiny.keras_artifact(tiny.train_cnn(env, epochs=4), work / "trained", "trained")}
    found["int8"] = tiny.run_into(QuantizeStage(model="trained", method="int8", data="digits",
                                                representative_samples=50),
                                  env, {"model": found["trained"]}, "int8", work)
    found["qat"] = tiny.run_into(QuantizeStage(model="trained", method="qat", data="digits", epochs=1),
                                 env, {"model": found["trained"]}, "qat", work)
    found["check"] = tiny.run_into(EvaluateStage(models=["trained", "int8"], baseline="trained", data="digits",
                                                 latency=None),
                                   env, {"models": [found["trained"], found["int8"]], "baseline": found["trained"]},
                                   "check", work)
    return found


def export(stage: ExportStage, env, inputs, work: Path, name: str) -> tuple[Artifact, list[Path]]:
    """Run the export stage, then publish it, as the executor does."""
    output = tiny.run_into(stage, env, inputs, name, work, lineage=LINEAGE, versions=VERSIONS)
    return output, stage.publish(output, env)


def litert_scores(path: Path, x) -> np.ndarray:
    from compressflow.stages.litert_runner import LiteRTModel

    return LiteRTModel(path).predict(x)


@pytest.mark.tf
def test_keras_export_loads_and_predicts_like_its_source(artifacts, env, work):
    from compressflow.stages.tfutil import load_keras_model

    _, written = export(ExportStage(model="trained", to="out/digits.keras"), env,
                        {"model": artifacts["trained"]}, work, "keras_export")
    assert written == [env.pipeline_dir / "out/digits.keras", env.pipeline_dir / "out/digits.keras.json"]
    x = tiny.digits(env).x_val[:20]
    np.testing.assert_allclose(load_keras_model(written[0]).predict(x, verbose=0),
                               load_keras_model(artifacts["trained"].file()).predict(x, verbose=0))


@pytest.mark.tf
def test_saved_model_export_serves_the_same_predictions(artifacts, env, work):
    from compressflow.stages.tfutil import import_tensorflow, load_keras_model

    tf = import_tensorflow()
    stage = ExportStage(model="trained", format="saved_model", to="out/digits_saved_model")
    output, written = export(stage, env, {"model": artifacts["trained"]}, work, "saved_model_export")
    assert written[0].is_dir() and (written[0] / "saved_model.pb").is_file()
    x = tiny.digits(env).x_val[:20]
    loaded = tf.saved_model.load(str(written[0]))  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, load_keras_model(artifacts["trained"].file()).predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    # publishing again swaps the directory in; nothing is left beside it
    stage.publish(output, env)
    assert not [p.name for p in written[0].parent.iterdir() if p.name.startswith(".")]


@pytest.mark.tf
def test_tflite_export_copies_tflite_and_converts_keras_to_float32(artifacts, env, work):
    _, copied = export(ExportStage(model="int8", to="out/int8.tflite"), env, {"model": artifacts["int8"]},
                       work, "tflite_copy")
    assert copied[0].read_bytes() == artifacts["int8"].file().read_bytes()

    output, converted = export(ExportStage(model="trained", format="tflite", to="out/float.tflite"), env,
                               {"model": artifacts["trained"]}, work, "tflite_convert")
    sidecar = json.loads(converted[1].read_text())
    assert sidecar["conversion"] == "TFLite conversion, method float32"
    splits = tiny.digits(env)
    accuracy = np.mean(litert_scores(converted[0], splits.x_val).argmax(1) == splits.y_val)
    assert accuracy > 0.8


@pytest.mark.tf
def test_qat_model_exports_as_h5_and_as_int8_tflite(artifacts, env, work):
    from compressflow.stages.keras_artifacts import load_keras_artifact
    from compressflow.stages.tflite_describe import describe_tflite

    stage = ExportStage(model="qat", to="out/qat.keras")
    output = tiny.run_into(stage, env, {"model": artifacts["qat"]}, "qat_keras", work)
    with pytest.raises(UsageError, match="saved as HDF5; name the target 'qat.h5'"):
        stage.publish(output, env)
    written = ExportStage(model="qat", to="out/qat.h5").publish(output, env)
    reloaded = load_keras_artifact(Artifact(stage="q", key="0", path=written[0].parent, kind="keras_model",
                                            meta={"file": written[0].name, "qat": True}))
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in reloaded.layers)

    _, tflite = export(ExportStage(model="qat", format="tflite", to="out/qat.tflite"), env,
                       {"model": artifacts["qat"]}, work, "qat_tflite")
    assert "int8" in describe_tflite(tflite[0])["weight_dtypes"]


@pytest.mark.tf
def test_sidecar_holds_lineage_metrics_versions_and_sha256_and_is_reproducible(artifacts, env, work):
    stage = ExportStage(model="int8", metrics="check", to="release/digits-int8.tflite")
    inputs = {"model": artifacts["int8"], "metrics": artifacts["check"]}
    output, written = export(stage, env, inputs, work, "release")
    assert written[1] == env.pipeline_dir / "release/digits-int8.tflite.json"
    sidecar = json.loads(written[1].read_text())
    assert sidecar["lineage"] == LINEAGE and sidecar["versions"] == VERSIONS
    assert sidecar["sha256"] == hashlib.sha256(written[0].read_bytes()).hexdigest()
    assert sidecar["format"] == "tflite" and sidecar["model"]["stage"] == "int8"
    assert sidecar["model"]["meta"]["method"] == "int8"
    measured = json.loads((artifacts["check"].path / "metrics.json").read_text())["models"]["int8"]
    assert sidecar["metrics"]["values"] == measured and sidecar["metrics"]["baseline"] == "trained"
    assert not {"created", "time", "timestamp"} & set(sidecar)

    again, _ = export(stage, env, inputs, work, "release_again")
    assert (again.path / "sidecar.json").read_bytes() == (output.path / "sidecar.json").read_bytes()


@pytest.mark.tf
def test_metrics_of_a_model_the_evaluate_stage_did_not_measure_is_an_error(artifacts, env, work):
    stage = ExportStage(model="qat", metrics="check", to="out/q.h5")
    with pytest.raises(StageFailed, match="'check' did not measure 'qat' \\(it measured int8, trained\\)"):
        tiny.run_into(stage, env, {"model": artifacts["qat"], "metrics": artifacts["check"]}, "bad_metrics", work)


@pytest.mark.tf
def test_tflite_model_cannot_be_exported_as_keras(artifacts, env, work):
    with pytest.raises(StageFailed, match="is a TFLite model; it can only be exported as tflite"):
        tiny.run_into(ExportStage(model="int8", format="saved_model", to="out/sm"), env,
                      {"model": artifacts["int8"]}, "bad_format", work)


# --------------------------------------------------------------------------- publish (no TensorFlow)


def fake_output(directory: Path, *, payload: bytes = b"TFL3 model bytes", saved_model: bool = False) -> Artifact:
    """An export stage's output as run() leaves it, written by hand."""
    directory.mkdir(parents=True)
    if saved_model:
        (directory / "saved_model" / "variables").mkdir(parents=True)
        (directory / "saved_model" / "saved_model.pb").write_bytes(payload)
        (directory / "saved_model" / "variables" / "variables.index").write_bytes(b"index")
        exported, fmt = "saved_model", "saved_model"
    else:
        (directory / "model.tflite").write_bytes(payload)
        exported, fmt = "model.tflite", "tflite"
    (directory / "sidecar.json").write_text(json.dumps({"sha256": tree_sha256(directory / exported)}))
    (directory / "artifact.json").write_text(json.dumps({"kind": "files", "file": exported, "format": fmt,
                                                        "sidecar": "sidecar.json"}))
    return Artifact.read("release", "c" * 64, directory)


def test_publish_refuses_a_target_outside_the_pipeline_folder_unless_allowed(tmp_path):
    env = Environment(pipeline_dir=tmp_path / "project")
    env.pipeline_dir.mkdir()
    output = fake_output(tmp_path / "cache" / "entry")
    with pytest.raises(UsageError, match="outside the pipeline's folder.*allow_outside: true.*'release'"):
        ExportStage(model="m", to="../x.tflite").publish(output, env)
    assert not (tmp_path / "x.tflite").exists()

    written = ExportStage(model="m", to="../x.tflite", allow_outside=True).publish(output, env)
    assert written == [tmp_path / "x.tflite", tmp_path / "x.tflite.json"]
    assert written[0].read_bytes() == b"TFL3 model bytes"


def test_publish_replaces_atomically_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    env = Environment(pipeline_dir=tmp_path / "project")
    target = env.pipeline_dir / "deep/out/model.tflite"
    output = fake_output(tmp_path / "cache" / "new", payload=b"new model")
    (tmp_path / "cache" / "new" / "model.tflite").chmod(0o444)  # cache files are read-only
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old model")

    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((Path(src), Path(dst))),
                                                         real_replace(src, dst)))
    written = ExportStage(model="m", to="deep/out/model.tflite").publish(output, env)

    assert target.read_bytes() == b"new model" and os.access(target, os.W_OK)
    assert [dst for _, dst in replaced] == written
    assert all(src.parent == dst.parent and src.name.startswith(f".{dst.name}.tmp-") for src, dst in replaced)
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.tflite", "model.tflite.json",
                                                               "model.tflite.lock"]


def test_a_failed_copy_leaves_the_previous_export_in_place(tmp_path, monkeypatch):
    import shutil

    env = Environment(pipeline_dir=tmp_path / "project")
    target = env.pipeline_dir / "model.tflite"
    env.pipeline_dir.mkdir()
    target.write_bytes(b"old model")
    output = fake_output(tmp_path / "cache" / "new", payload=b"new model")

    def broken_copy(src, dst, **kwargs):
        Path(dst).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        ExportStage(model="m", to="model.tflite").publish(output, env)
    assert target.read_bytes() == b"old model"
    assert sorted(p.name for p in env.pipeline_dir.iterdir()) == ["model.tflite"]


def test_publish_swaps_a_saved_model_directory(tmp_path):
    env = Environment(pipeline_dir=tmp_path / "project")
    target = env.pipeline_dir / "out" / "sm"
    (target / "stale").mkdir(parents=True)
    output = fake_output(tmp_path / "cache" / "sm", payload=b"graph", saved_model=True)
    written = ExportStage(model="m", format="saved_model", to="out/sm").publish(output, env)
    assert written == [target, env.pipeline_dir / "out" / "sm.json"]
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "saved_model.pb", "variables", "variables/variables.index"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["sm", "sm.json", "sm.lock"]


def test_publish_does_not_import_tensorflow(tmp_path):
    output = fake_output(tmp_path / "cache" / "entry")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from compressflow.stages.base import Artifact, Environment
        from compressflow.stages.export import ExportStage
        output = Artifact.read("release", "c" * 64, Path({str(output.path)!r}))
        env = Environment(pipeline_dir=Path({str(tmp_path)!r}))
        written = ExportStage(model="m", to="out/m.tflite").publish(output, env)
        assert [p.exists() for p in written] == [True, True], written
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
        assert not heavy, heavy
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_config_rules():
    with pytest.raises(ValidationError, match="format 'keras' needs a target ending in .keras"):
        ExportStage(model="m", format="keras", to="out/m.tflite")
    with pytest.raises(ValidationError, match="writes a directory"):
        ExportStage(model="m", format="saved_model", to="out/m.keras")
    stage = ExportStage(model="m", to="a.tflite", metrics="check")
    assert stage.stage_refs() == {"after": [], "model": ["m"], "metrics": ["check"]}
    assert stage.key_config() == ExportStage(model="m", to="elsewhere/b.tflite", allow_outside=True,
                                             metrics="check").key_config()
