"""Keras 3 in, Keras 3 out: files and builders from Keras 3 run through tfmot and are exported back as Keras 3.

The Keras 3 models are made, and the exports read, by plain Keras 3 (`import keras` in a fresh
interpreter without TF_USE_LEGACY_KERAS), as a user of Keras 3 would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from compressflow.models.keras3_config import to_keras3_config, to_tf_keras_config, translation_problems
from compressflow.models.keras3_layers import SHARED_LAYERS

from helpers import cli, write

SPARSITY = 0.5

# Made by plain Keras 3: a Sequential CNN, a Functional model with a skip connection (also as HDF5), a model with
# layers tf-keras cannot rebuild, and the module of a builder that returns a Keras 3 model.
MAKE_MODELS = """
import keras
from keras import layers

keras.utils.set_random_seed(3)
cnn = keras.Sequential([
    keras.Input((8, 8, 1)),
    layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
    layers.BatchNormalization(name="bn1"),
    layers.MaxPooling2D(2, name="pool"),
    layers.Flatten(name="flatten"),
    layers.Dropout(0.2, name="dropout"),
    layers.Dense(32, activation="relu", name="dense1"),
    layers.Dense(10, activation="softmax", name="probs"),
], name="cnn")
cnn.save("models/cnn.keras")

image = keras.Input((8, 8, 1), name="image")
x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(image)
y = layers.Conv2D(8, 3, padding="same", name="branch")(x)
y = layers.BatchNormalization(name="branch_bn")(y)
x = layers.Add(name="skip")([x, y])
x = layers.MaxPooling2D(2, name="pool")(x)
x = layers.Flatten(name="flatten")(x)
outputs = layers.Dense(10, activation="softmax", name="probs")(x)
skip = keras.Model(image, outputs, name="skip")
skip.save("models/skip.keras")
skip.save("models/skip.h5")

features = keras.Input((8, 8, 1), name="features")
x = layers.Flatten(name="flatten")(features)
x = layers.RMSNormalization(name="rms")(x)
x = layers.LayerNormalization(rms_scaling=True, name="rms_scaled")(x)
outputs = layers.Dense(10, activation="relu6", name="head")(x)
keras.Model(features, outputs, name="odd").save("models/odd.keras")
"""

BUILDER = '''
"""A builder written against plain Keras 3."""

import keras
from keras import layers


def tiny(classes=10):
    inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="probs")(x), name="tiny")
'''

PIPELINE = f"""
version: 1
name: keras3
datasets:
  digits: {{type: sklearn_digits, limit: 300}}
stages:
  cnn: {{type: load, path: models/cnn.keras}}
  skip: {{type: load, path: models/skip.keras}}
  skip_h5: {{type: load, path: models/skip.h5}}
  built: {{type: load, builder: "k3models:tiny"}}
  cnn_pruned:
    type: prune
    model: cnn
    data: digits
    schedule: {{type: constant, target_sparsity: {SPARSITY}}}
    epochs: 1
  skip_pruned:
    type: prune
    model: skip
    data: digits
    schedule: {{type: constant, target_sparsity: {SPARSITY}}}
    epochs: 1
  cnn_int8: {{type: quantize, model: cnn_pruned, method: int8, data: digits, representative_samples: 50}}
  check:
    type: evaluate
    models: [cnn, cnn_pruned, cnn_int8, skip_pruned]
    baseline: cnn
    data: digits
    latency: null
  cnn_keras: {{type: export, model: cnn_pruned, format: keras, to: out/cnn.keras}}
  cnn_tf_keras: {{type: export, model: cnn_pruned, format: tf_keras, to: out/cnn-tf.keras}}
  cnn_tflite: {{type: export, model: cnn_int8, to: out/cnn.tflite}}
  skip_keras: {{type: export, model: skip_pruned, to: out/skip.keras}}
  built_keras: {{type: export, model: built, to: out/built.keras}}
"""

# Read the exports with plain Keras 3 (and the tf-keras export with tf_keras), in a fresh interpreter.
READ_EXPORTS = """
import json, sys
import numpy as np
import keras
import tf_keras
from sklearn.datasets import load_digits

x = (load_digits().images[:64, :, :, None] / 16.0).astype("float32")
found = {"keras": keras.__version__}
for name in ("cnn", "skip", "built"):
    model = keras.saving.load_model(f"out/{name}.keras")
    kernels = {layer.name: np.asarray(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")}
    found[name] = {"class": type(model).__module__ + "." + type(model).__name__,
                   "zeros": {k: float(np.mean(v == 0)) for k, v in kernels.items()},
                   "prediction": np.asarray(model.predict(x, verbose=0)).tolist()}
reference = tf_keras.models.load_model("out/cnn-tf.keras", compile=False)
found["cnn_tf_keras"] = {"class": type(reference).__module__,
                         "prediction": reference.predict(x, verbose=0).tolist()}
json.dump(found, sys.stdout)
"""


def plain_keras3(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter where ``import keras`` is plain Keras 3."""
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A pipeline folder with models saved by plain Keras 3 and a Keras 3 builder module."""
    folder = tmp_path_factory.mktemp("keras3")
    (folder / "models").mkdir()
    made = plain_keras3(MAKE_MODELS, folder)
    assert made.returncode == 0, made.stderr[-3000:]
    write(folder / "k3models.py", BUILDER)
    return folder


@pytest.fixture(scope="module")
def ran(project) -> tuple[Path, object]:
    """The pipeline run through the command line: (pipeline file, result)."""
    pipeline = write(project / "keras3.yaml", PIPELINE)
    result = cli("run", pipeline, env={"COMPRESSFLOW_CACHE": ""})
    return pipeline, result


@pytest.fixture(scope="module")
def exports(ran, project) -> dict:
    """What plain Keras 3 reads in the exported files."""
    _, result = ran
    assert result.code == 0, result.text
    read = plain_keras3(READ_EXPORTS, project)
    assert read.returncode == 0, read.stderr[-3000:]
    return json.loads(read.stdout)


def _stored_keras_version(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json"))["keras_version"]


# --------------------------------------------------------------------------- through a pipeline


@pytest.mark.tf
def test_keras3_files_and_builder_run_through_prune_int8_evaluate_and_export(ran, project):
    _, result = ran
    assert result.code == 0, result.text
    for path in ("models/cnn.keras", "models/skip.keras", "models/skip.h5"):
        assert f"model file {path} was saved by Keras 3." in result.text, path
    assert "translated to tf-keras" in result.text
    assert "gave a Keras 3." in result.text
    for name in ("cnn", "skip", "built"):
        assert _stored_keras_version(project / "out" / f"{name}.keras").startswith("3."), name
    assert _stored_keras_version(project / "out" / "cnn-tf.keras").startswith("2.")
    assert (project / "out" / "cnn.tflite").read_bytes()[4:8] == b"TFL3"
    sidecar = json.loads((project / "out" / "cnn.keras.json").read_text())
    # the pruned model remembers where the model it was made from came from
    assert sidecar["model"]["stage"] == "cnn_pruned"
    assert sidecar["model"]["meta"]["keras_origin"] == "keras3"
    assert sidecar["model"]["meta"]["keras_origin_version"].startswith("3.")
    assert sidecar["conversion"].startswith("translated back to Keras 3.")
    assert json.loads((project / "out" / "cnn-tf.keras.json").read_text())["conversion"] == "copy"


@pytest.mark.tf
def test_plain_keras3_loads_the_exports_with_their_sparsity(exports):
    assert exports["keras"].startswith("3.")
    for name in ("cnn", "skip", "built"):
        assert exports[name]["class"].startswith("keras.src.models."), exports[name]["class"]
    assert exports["cnn"]["class"].endswith(".Sequential") and exports["skip"]["class"].endswith(".Functional")
    for name, kernels in (("cnn", ("conv1", "dense1", "probs")), ("skip", ("stem", "branch", "probs"))):
        for kernel in kernels:
            assert exports[name]["zeros"][kernel] >= SPARSITY - 0.01, (name, kernel, exports[name]["zeros"])
    assert exports["built"]["zeros"]["conv"] < 0.1  # the builder's model was not pruned


@pytest.mark.tf
def test_the_keras3_export_predicts_what_the_tf_keras_export_does(exports):
    import numpy as np

    assert exports["cnn_tf_keras"]["class"].startswith("tf_keras.")
    np.testing.assert_allclose(exports["cnn"]["prediction"], exports["cnn_tf_keras"]["prediction"], atol=1e-5)


# --------------------------------------------------------------------------- refused before anything runs


@pytest.mark.tf
def test_a_keras3_file_with_untranslatable_layers_is_refused_at_validate_time(project):
    pipeline = write(project / "odd.yaml", """
        version: 1
        name: odd
        stages:
          odd: {type: load, path: models/odd.keras}
    """)
    for command in ("validate", "run"):
        result = cli(command, pipeline, cwd=project, env={"COMPRESSFLOW_CACHE": ""})
        assert result.code == 2, result.text
        assert "Traceback" not in result.text
        assert "odd.yaml:4:" in result.text
        assert "saved by Keras 3." in result.text
        assert "layer 'rms' (RMSNormalization)" in result.text
        assert "layer 'rms_scaled' (LayerNormalization): `rms_scaling: True`" in result.text
        assert "layer 'head' (Dense): activation 'relu6' is Keras 3 only" in result.text
        assert "import tf_keras as keras" in result.text
        assert "layer 'flatten'" not in result.text


# --------------------------------------------------------------------------- translation in one process


def _keras3_models():
    """Keras 3 models that, together, hold every layer class both versions share."""
    import keras
    from keras import layers as L

    def seq(shape, *layers, dtype="float32"):
        return keras.Sequential([keras.Input(shape, dtype=dtype), *layers])

    models = {
        "core": seq((4,), L.Dense(3, activation="silu", kernel_regularizer=keras.regularizers.L1L2(0.1, 0.2),
                                  kernel_constraint=keras.constraints.MaxNorm(3)),
                    L.EinsumDense("ab,bc->ac", output_shape=4, bias_axes="c"), L.Activation("gelu"), L.Identity(),
                    L.Masking(), L.ActivityRegularization(0.1), L.ReLU(max_value=6.0),
                    L.LeakyReLU(negative_slope=0.2), L.PReLU(), L.ELU(), L.Softmax(), L.Dropout(0.2),
                    L.GaussianNoise(0.1), L.GaussianDropout(0.1), L.AlphaDropout(0.1)),
        "embedding": seq((5,), L.Embedding(10, 3), L.Flatten(), dtype="int32"),
        "conv1d": seq((8, 2), L.Conv1D(2, 3), L.Conv1DTranspose(2, 3), L.DepthwiseConv1D(3), L.SeparableConv1D(2, 3),
                      L.MaxPooling1D(), L.AveragePooling1D(2), L.ZeroPadding1D(), L.Cropping1D(), L.UpSampling1D(),
                      L.SpatialDropout1D(0.1), L.GlobalMaxPooling1D()),
        "conv2d": seq((8, 8, 2), L.Conv2D(2, 3, padding="same"), L.Conv2DTranspose(2, 3),
                      L.DepthwiseConv2D(3, depth_multiplier=2), L.SeparableConv2D(2, 3), L.ZeroPadding2D(),
                      L.MaxPooling2D(1), L.Cropping2D(), L.UpSampling2D(interpolation="bilinear"),
                      L.AveragePooling2D(2), L.SpatialDropout2D(0.1), L.BatchNormalization(), L.LayerNormalization(),
                      L.GroupNormalization(groups=2), L.UnitNormalization(), L.GlobalMaxPooling2D()),
        "conv3d": seq((6, 6, 6, 2), L.Conv3D(2, 3, padding="same"), L.Conv3DTranspose(2, 3), L.MaxPooling3D(),
                      L.ZeroPadding3D(), L.Cropping3D(), L.UpSampling3D(), L.AveragePooling3D(2),
                      L.SpatialDropout3D(0.1), L.GlobalMaxPooling3D()),
        "pooling": seq((8, 2), L.Reshape((4, 4)), L.GlobalAveragePooling1D()),
        "pooling2d": seq((4, 4, 2), L.GlobalAveragePooling2D()),
        "pooling3d": seq((4, 4, 4, 2), L.GlobalAveragePooling3D()),
        "reshape": seq((4, 2), L.Flatten(), L.Reshape((2, 4)), L.Permute((2, 1)), L.Flatten(), L.RepeatVector(2),
                       L.Flatten()),
        "preprocessing": seq((8, 8, 3), L.Rescaling(1 / 255.0, offset=-1), L.CenterCrop(6, 6), L.Resizing(4, 4)),
    }
    x = keras.Input((4,), name="x")
    a, b = L.Dense(4, name="a")(x), L.Dense(4, name="b")(x)
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
              L.Maximum()([a, b]), L.Minimum()([a, b]), L.Dot(axes=1)([a, b])]
    models["merging"] = keras.Model(x, L.Concatenate()(merged))
    inner = keras.Sequential([keras.Input((4,)), L.Dense(4, name="inner_dense")], name="inner")
    x = keras.Input((4,), name="x")
    once = inner(x)
    models["nested"] = keras.Model(x, L.Dense(2, name="out")(L.Add()([once, inner(L.Dense(4, name="d")(once))])))
    left, right = keras.Input((4,), name="left"), keras.Input((3,), name="right")
    models["two_in_two_out"] = keras.Model([left, right], [L.Dense(2, name="o1")(L.Concatenate()([left, right])),
                                                           L.Dense(1, name="o2")(left)])
    return models


@pytest.mark.tf
def test_every_shared_layer_class_translates_both_ways_and_predicts_the_same():
    import numpy as np

    from compressflow.models import keras3
    from compressflow.stages.tfutil import keras as tf_keras

    keras3.keras3().utils.set_random_seed(0)
    models = _keras3_models()
    covered = set()
    for name, model3 in models.items():
        covered |= {type(layer).__name__ for layer in model3._flatten_layers()}
        there = keras3.from_keras3(model3)
        assert isinstance(there.model, tf_keras().Model), name
        back = keras3.to_keras3(there.model)
        assert type(back.model).__module__.startswith("keras.src."), name
        assert there.max_abs_diff <= keras3.TOLERANCE and back.max_abs_diff <= keras3.TOLERANCE, name
        for original, returned in zip(model3.weights, back.model.weights):
            np.testing.assert_array_equal(np.asarray(original), np.asarray(returned), err_msg=name)
    assert SHARED_LAYERS <= covered, sorted(SHARED_LAYERS - covered)


@pytest.mark.tf
def test_a_translation_that_changes_the_predictions_is_refused():
    import keras

    from compressflow.models import keras3

    model3 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    there = keras3.from_keras3(model3)
    there.model.get_layer("dense").bias.assign([1.0, 0.0, 0.0])
    with pytest.raises(keras3.KerasTranslationError, match="predictions differ from the original's by up to 1"):
        keras3.check_predictions(model3, there.model)


# --------------------------------------------------------------------------- configs (no TensorFlow)


def _keras3_entry(class_name: str, name: str, config: dict, inputs: list) -> dict:
    tensors = [{"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "dtype": "float32",
                                                             "keras_history": history}} for history in inputs]
    return {"module": "keras.layers", "class_name": class_name, "registered_name": None, "name": name,
            "config": {"name": name, "trainable": True,
                       "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                                 "registered_name": None}, **config},
            "inbound_nodes": [{"args": [tensors[0] if len(tensors) == 1 else tensors],
                               "kwargs": {"training": False, "mask": None}}] if inputs else []}


def _keras3_functional(*layers, outputs) -> dict:
    image = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "x",
             "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "ragged": False, "name": "x",
                        "optional": False}, "inbound_nodes": []}
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "m", "trainable": True, "layers": [image, *layers], "input_layers": ["x", 0, 0],
                       "output_layers": outputs}}


def test_keras3_config_becomes_the_tf_keras_layout():
    dense = _keras3_entry("Dense", "d", {"units": 2, "activation": "silu", "quantization_config": None,
                                         "kernel_initializer": {"module": "keras.initializers",
                                                                "class_name": "GlorotUniform",
                                                                "config": {"seed": None, "input_axes": None},
                                                                "registered_name": None}}, [["x", 0, 0]])
    leaky = _keras3_entry("LeakyReLU", "leaky", {"negative_slope": 0.2}, [["d", 0, 0]])
    config = to_tf_keras_config(_keras3_functional(dense, leaky, outputs=["leaky", 0, 0]))
    layers = {entry["name"]: entry for entry in config["config"]["layers"]}
    assert layers["x"]["config"]["batch_input_shape"] == [None, 4] and "optional" not in layers["x"]["config"]
    assert layers["d"]["config"]["dtype"] == "float32"
    assert layers["d"]["config"]["activation"] == "swish"
    assert layers["d"]["config"]["kernel_initializer"] == {"class_name": "GlorotUniform", "config": {"seed": None}}
    assert "quantization_config" not in layers["d"]["config"]
    assert layers["leaky"]["config"]["alpha"] == 0.2
    # the `training` flag recorded when the graph was built is not replayed on every call
    assert layers["d"]["inbound_nodes"] == [[["x", 0, 0, {}]]]


def test_calls_of_a_nested_model_are_renumbered_both_ways():
    inner = {"module": "keras", "class_name": "Sequential", "registered_name": None, "name": "inner",
             "config": {"name": "inner", "layers": [{"class_name": "InputLayer", "config": {"batch_shape": [None, 4],
                                                                                            "name": "inner_in"}}]},
             "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                          "config": {"keras_history": ["x", 0, 0]}}], "kwargs": {}}]}
    keras3_config = _keras3_functional(inner, _keras3_entry("Dense", "d", {"units": 2}, [["inner", 0, 0]]),
                                       outputs=["d", 0, 0])
    tf_config = to_tf_keras_config(keras3_config)
    dense = next(entry for entry in tf_config["config"]["layers"] if entry["name"] == "d")
    assert dense["inbound_nodes"] == [[["inner", 1, 0, {}]]]  # tf-keras counts a nested model's calls from 1
    back = to_keras3_config(tf_config)
    dense = next(entry for entry in back["config"]["layers"] if entry["name"] == "d")
    assert dense["inbound_nodes"] == [[["inner", 0, 0, {}]]]


def test_each_untranslatable_part_is_named():
    odd = [
        _keras3_entry("RMSNormalization", "rms", {"axis": -1}, [["x", 0, 0]]),
        _keras3_entry("Dense", "lora", {"units": 2, "lora_rank": 4}, [["rms", 0, 0]]),
        {**_keras3_entry("MyLayer", "mine", {}, [["lora", 0, 0]]), "module": "my_package.layers"},
        _keras3_entry("Dense", "bad_call", {"units": 2}, [["nowhere", 3, 0]]),
        _keras3_entry("LSTM", "recurrent", {"units": 2}, [["x", 0, 0]]),
    ]
    problems = {(p.layer, p.class_name): p.reason for p in translation_problems(_keras3_functional(
        *odd, outputs=["bad_call", 0, 0]))}
    assert problems["rms", "RMSNormalization"] == "a Keras 3 layer class that tf-keras does not have"
    assert problems["lora", "Dense"] == "`lora_rank: 4` has no tf-keras equivalent"
    assert "custom class from module 'my_package.layers'" in problems["mine", "MyLayer"]
    assert "uses layer 'nowhere'" in problems["bad_call", "Dense"]
    assert "not among the layers checked to build alike" in problems["recurrent", "LSTM"]
    assert translation_problems(_keras3_functional(_keras3_entry("Dense", "d", {"units": 2}, [["x", 0, 0]]),
                                                   outputs=["d", 0, 0])) == []
