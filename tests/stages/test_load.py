"""load: builders, model files in three formats, refusing code without `trust: true`, corrupt files, fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from compressflow.errors import UnsafeModelError
from compressflow.models.safety import ModelFileError
from compressflow.stages.base import Environment
from compressflow.stages.load import LoadStage

from stage_chain import load, make_env, run

FORMATS = {"keras": "{}.keras", "h5": "{}.h5", "saved_model": "{}_saved_model"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A model with a Lambda layer and one without, each saved as .keras, .h5 and SavedModel."""
    from compressflow.stages.tfutil import keras, seed_everything

    k = keras()
    root = tmp_path_factory.mktemp("models")
    seed_everything(1)
    for kind in ("lambda", "plain"):
        inputs = k.Input((8, 8, 1), name="image")
        x = k.layers.Flatten(name="flatten")(inputs)
        if kind == "lambda":
            x = k.layers.Lambda(lambda t: t * 2.0, name="doubler")(x)
        model = k.Model(inputs, k.layers.Dense(10, activation="softmax", name="probs")(x))
        for pattern in FORMATS.values():
            path = root / pattern.format(kind)
            model.save(path, save_format="tf" if path.suffix == "" else None)
        np.save(root / f"{kind}_prediction.npy", model.predict(np.ones((2, 8, 8, 1), "float32"), verbose=0))
    return root


def _env(root: Path) -> Environment:
    return make_env(root, limit=50)


# --------------------------------------------------------------------------- builders


@pytest.mark.tf
def test_builder_output_loads_as_a_plain_tf_keras_model(tmp_path):
    from compressflow.stages.tfutil import keras

    artifact = run(LoadStage(builder="compressflow.models:small_cnn", args={"classes": 10}), _env(tmp_path))
    model = load(artifact)
    assert isinstance(model, keras().Model)
    assert [layer.name for layer in model.layers][1:3] == ["conv1", "conv2"]
    assert artifact.meta["params"] == model.count_params()
    assert artifact.meta["output_shape"] == [None, 10]
    assert "trusted" not in artifact.meta
    assert artifact.metrics()["sparsity"] == 0.0


@pytest.mark.tf
def test_same_seed_gives_the_same_initial_weights(tmp_path):
    env = _env(tmp_path)
    first, second = (load(run(LoadStage(builder="compressflow.models:tiny_cnn"), env, name="student"))
                     for _ in range(2))
    other = load(run(LoadStage(builder="compressflow.models:tiny_cnn"), env, name="another"))
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


@pytest.mark.tf
def test_builder_errors_are_clear(tmp_path):
    from compressflow.errors import StageFailed

    env = _env(tmp_path)
    with pytest.raises(StageFailed, match="did you mean 'small_cnn'"):
        run(LoadStage(builder="compressflow.models:smal_cnn"), env)
    with pytest.raises(StageFailed, match="cannot import module 'no_such_module'"):
        run(LoadStage(builder="no_such_module:build"), env)
    with pytest.raises(StageFailed, match="does not accept args"):
        run(LoadStage(builder="compressflow.models:mlp", args={"colour": "red"}), env)


def test_config_needs_exactly_one_source():
    with pytest.raises(ValidationError, match="exactly one"):
        LoadStage(path="a.keras", builder="compressflow.models:mlp")
    with pytest.raises(ValidationError, match="exactly one"):
        LoadStage()
    with pytest.raises(ValidationError):
        LoadStage(builder="not a function spec")
    with pytest.raises(ValidationError, match="'weights' goes with 'application'"):
        LoadStage(builder="compressflow.models:mlp", weights="w.h5")


# --------------------------------------------------------------------------- model files and trust


@pytest.mark.tf
@pytest.mark.parametrize("fmt", FORMATS)
def test_plain_model_file_loads_without_trust(model_dir, fmt):
    artifact = run(LoadStage(path=FORMATS[fmt].format("plain")), _env(model_dir))
    assert artifact.meta["format"] == fmt
    prediction = load(artifact).predict(np.ones((2, 8, 8, 1), "float32"), verbose=0)
    np.testing.assert_allclose(prediction, np.load(model_dir / "plain_prediction.npy"), rtol=1e-6)


@pytest.mark.tf
@pytest.mark.parametrize("fmt", FORMATS)
def test_lambda_model_file_is_refused_without_trust(model_dir, fmt, tmp_path):
    with pytest.raises(UnsafeModelError) as caught:
        run(LoadStage(path=FORMATS[fmt].format("lambda")), _env(model_dir), name="untrusted", out_root=tmp_path)
    message = str(caught.value)
    assert "'doubler'" in message and "Lambda" in message
    assert "`trust: true`" in message and "'untrusted'" in message
    assert not list(tmp_path.rglob("model.keras"))


@pytest.mark.tf
@pytest.mark.parametrize("fmt", FORMATS)
def test_lambda_model_file_loads_with_trust(model_dir, fmt):
    from compressflow.stages.model_trust import declared_by
    from compressflow.stages.model_io import load_artifact_model

    stage = LoadStage(path=FORMATS[fmt].format("lambda"), trust=True)
    artifact = run(stage, _env(model_dir))
    assert artifact.meta["trusted"] is True
    # The stage output carries the Lambda on; later stages load it because their pipeline's load stage trusts it.
    with declared_by([{"type": "load", "config": stage.model_dump(mode="json")}]):
        model = load_artifact_model(artifact)
    assert "doubler" in [layer.name for layer in model.layers]
    prediction = model.predict(np.ones((2, 8, 8, 1), "float32"), verbose=0)
    np.testing.assert_allclose(prediction, np.load(model_dir / "lambda_prediction.npy"), rtol=1e-6)


@pytest.mark.tf
def test_unregistered_custom_object_is_refused_in_keras_and_h5_files(model_dir, tmp_path):
    import h5py

    keras_file = tmp_path / "custom.keras"
    with zipfile.ZipFile(model_dir / "plain.keras") as src, zipfile.ZipFile(keras_file, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                dense = config["config"]["layers"][-1]
                dense.update(module="evil_package.layers", class_name="Payload")
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    h5_file = tmp_path / "custom.h5"
    h5_file.write_bytes((model_dir / "plain.h5").read_bytes())
    with h5py.File(h5_file, "r+") as fh:
        config = json.loads(fh.attrs["model_config"])
        config["config"]["layers"][-1]["class_name"] = "Payload"
        fh.attrs["model_config"] = json.dumps(config)
    env = _env(tmp_path)
    with pytest.raises(UnsafeModelError, match=r"layer 'probs'.*'evil_package\.layers'.*`trust: true`"):
        run(LoadStage(path="custom.keras"), env)
    with pytest.raises(UnsafeModelError, match=r"layer 'probs'.*Payload.*`trust: true`"):
        run(LoadStage(path="custom.h5"), env)


@pytest.mark.tf
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_corrupt_model_file_gives_a_clear_error(model_dir, tmp_path, damage, suffix):
    original = (model_dir / f"plain{suffix}").read_bytes()
    data = {"truncated": original[: len(original) // 2], "garbage": b"not a model" * 50, "empty": b""}[damage]
    (tmp_path / f"broken{suffix}").write_bytes(data)
    with pytest.raises(ModelFileError, match=f"broken{suffix}"):
        run(LoadStage(path=f"broken{suffix}"), _env(tmp_path))
    with pytest.raises(ModelFileError, match=f"broken{suffix}"):
        run(LoadStage(path=f"broken{suffix}", trust=True), _env(tmp_path))


@pytest.mark.tf
def test_missing_weights_only_and_foreign_files_give_clear_errors(model_dir, tmp_path):
    from compressflow.stages.tfutil import keras

    env = _env(tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        run(LoadStage(path="nowhere.keras"), env)
    keras().models.load_model(model_dir / "plain.keras").save_weights(tmp_path / "only.weights.h5")
    with pytest.raises(ModelFileError, match="weights-only"):
        run(LoadStage(path="only.weights.h5"), env)
    (tmp_path / "not_saved_model").mkdir()
    with pytest.raises(ModelFileError, match="not a SavedModel"):
        run(LoadStage(path="not_saved_model"), env)
    (tmp_path / "no_keras").mkdir()
    (tmp_path / "no_keras" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelFileError, match="SavedModel no_keras: its saved_model.pb is empty"):
        run(LoadStage(path="no_keras"), env)  # NOTE: no Keras metadata: read as a plain SavedModel


def test_path_outside_the_pipeline_folder_is_refused(tmp_path):
    from compressflow.errors import UsageError

    with pytest.raises(UsageError, match="outside the pipeline's folder"):
        LoadStage(path="../elsewhere/model.keras").fingerprint(Environment(pipeline_dir=tmp_path / "pipe"))


# --------------------------------------------------------------------------- applications


@pytest.mark.tf
def test_application_with_a_local_weights_file(tmp_path):
    from compressflow.models import application

    args = {"input_shape": [32, 32, 3], "alpha": 0.25, "classes": 4}
    source = application("MobileNet", **args)
    source.save_weights(tmp_path / "mobilenet.weights.h5")
    env = _env(tmp_path)
    artifact = run(LoadStage(application="MobileNet", args=args, weights="mobilenet.weights.h5"), env)
    model = load(artifact)
    for a, b in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    fingerprint = LoadStage(application="MobileNet", args=args, weights="mobilenet.weights.h5").fingerprint(env)
    assert len(fingerprint["weights_sha256"]) == 64


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_hashes_without_importing_tensorflow_or_the_builder(tmp_path):
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (package / "nets.py").write_text("def build():\n    raise RuntimeError('called!')\n")
    (tmp_path / "model.keras").write_bytes(b"first version")
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from compressflow.stages.base import Environment
        from compressflow.stages.load import LoadStage
        env = Environment(pipeline_dir=Path(sys.argv[1]))
        prints = [LoadStage(path="model.keras").fingerprint(env),
                  LoadStage(builder="userpkg.nets:build").fingerprint(env),
                  LoadStage(builder="compressflow.models:small_cnn").fingerprint(env)]
        print(json.dumps({"prints": prints, "tensorflow": "tensorflow" in sys.modules,
                          "userpkg": "userpkg" in sys.modules}))
    """)

    def fingerprints():
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                              env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=True, timeout=60)
        return json.loads(done.stdout)

    first = fingerprints()
    assert first["tensorflow"] is False and first["userpkg"] is False
    path_print, user_print, builtin_print = first["prints"]
    assert len(path_print["sha256"]) == 64 and len(user_print["source"]) == 64 and len(builtin_print["source"]) == 64
    (tmp_path / "model.keras").write_bytes(b"second version")
    (package / "nets.py").write_text("def build():\n    return None\n")
    second = fingerprints()["prints"]
    assert second[0] != path_print and second[1] != user_print and second[2] == builtin_print


@pytest.mark.tf
def test_builder_with_its_own_layer_class_marks_the_output_trusted(tmp_path, monkeypatch):
    from compressflow.stages.model_io import load_artifact_model

    (tmp_path / "own_layers.py").write_text(textwrap.dedent("""
        import tf_keras as keras

        @keras.saving.register_keras_serializable(package="own")
        class Scale(keras.layers.Layer):
            def call(self, inputs):
                return inputs * 0.5

        def build():
            inputs = keras.Input((8, 8, 1))
            x = keras.layers.Flatten()(Scale(name="half")(inputs))
            return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    artifact = run(LoadStage(builder="own_layers:build"), _env(tmp_path))
    assert artifact.meta["trusted"] is True  # the user's own code: later stages may import it to load
    assert "half" in [layer.name for layer in load_artifact_model(artifact).layers]
