"""quantize with method qat: partial QAT (unsupported layers stay float), include/exclude, quantize_configs."""

from __future__ import annotations

import numpy as np
import pytest

from compressflow.data.datasets import SklearnDigits
from compressflow.errors import StageFailed
from compressflow.stages.base import Environment
from compressflow.stages.quantize import QuantizeStage

import tiny_tf_models as tiny
from helpers import cli, write

CUSTOM_MODULE = '''
import tensorflow as tf
import tf_keras as keras
import tensorflow_model_optimization as tfmot

quantizers = tfmot.quantization.keras.quantizers


@keras.saving.register_keras_serializable("qat_partial_test")
class Scale(keras.layers.Layer):
    """Multiplies each feature by a learnt factor."""

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(1, input_shape[-1]), initializer="ones")

    def call(self, inputs):
        return inputs * self.kernel


class ScaleQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """8-bit kernel and output for Scale (deliberately not registered: the stage must name it)."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, quantizers.LastValueQuantizer(num_bits=8, symmetric=True, narrow_range=False,
                                                             per_axis=False))]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Environment:
    return Environment(pipeline_dir=tmp_path_factory.mktemp("pipeline"), seed=0,
                       datasets={"digits": SklearnDigits(limit=600)})


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def _trained(model, env, epochs: int = 6):
    from compressflow.stages.tfutil import keras

    k = keras()
    splits = tiny.digits(env)
    model.compile(k.optimizers.Adam(3e-3), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(splits.x_train, splits.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def rescaling_artifact(env, models_dir):
    """Rescaling (unsupported by tfmot) -> Conv2D -> Flatten -> Dense logits, trained."""
    from compressflow.stages.tfutil import keras, seed_everything

    k = keras()
    seed_everything(0)
    model = k.Sequential([
        k.layers.Input((8, 8, 1)),
        k.layers.Rescaling(1 / 16, name="rescale"),
        k.layers.Conv2D(8, 3, activation="relu", name="conv"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(10, name="dense"),
    ])
    return tiny.keras_artifact(_trained(model, env), models_dir / "rescaling", "rescaling")


def _layer_types(artifact) -> dict[str, str]:
    from compressflow.stages.keras_artifacts import load_keras_artifact

    model = load_keras_artifact(artifact)
    return {getattr(layer, "layer", layer).name: type(layer).__name__ for layer in model.layers}


@pytest.mark.tf
def test_partial_qat_keeps_unsupported_layers_float_and_says_which_in_one_line(rescaling_artifact, env, run_stage):
    logs: list[str] = []
    stage = QuantizeStage(model="rescaling", method="qat", data="digits", epochs=1)
    output = run_stage(stage, env, {"model": rescaling_artifact}, name="qat", logs=logs)
    types = _layer_types(output)
    assert types["rescale"] == "Rescaling"
    assert types["conv"] == types["dense"] == "QuantizeWrapperV2"
    float_lines = [line for line in logs if "kept float" in line]
    assert float_lines == ["not quantizing rescale: not supported by tfmot's 8-bit quantization, kept float"]
    assert set(output.meta["float_layers"]) == {"rescale"}
    assert {"conv", "dense"} <= set(output.meta["quantized_layers"])

    int8 = run_stage(QuantizeStage(model="qat", method="int8", data="digits"), env, {"model": output}, logs=logs)
    assert int8.meta["from_qat"] is True
    assert "int8" in int8.meta["weight_dtypes"]
    from compressflow.stages.litert_runner import LiteRTModel

    splits = tiny.digits(env)
    accuracy = float(np.mean(LiteRTModel(int8.file()).predict(splits.x_val).argmax(1) == splits.y_val))
    assert accuracy > 0.7, accuracy


@pytest.mark.tf
def test_exclude_keeps_a_supported_layer_float(rescaling_artifact, env, run_stage):
    stage = QuantizeStage(model="rescaling", method="qat", data="digits", epochs=1, exclude=["dense"])
    output = run_stage(stage, env, {"model": rescaling_artifact})
    types = _layer_types(output)
    assert types["dense"] == "Dense" and types["conv"] == "QuantizeWrapperV2"


@pytest.mark.tf
def test_include_of_unsupported_layers_is_refused_naming_all_of_them_before_training(env, models_dir, run_stage):
    from compressflow.stages.tfutil import keras

    k = keras()
    inputs = k.Input((8, 8, 1))
    x = k.layers.Rescaling(1 / 16, name="rescale")(inputs)
    x = k.layers.Flatten(name="flatten")(k.layers.Conv2D(4, 3, name="conv")(x))
    hidden = k.layers.Dense(16, name="hidden")(x)
    x = k.layers.Multiply(name="square")([hidden, hidden])
    model = k.Model(inputs, k.layers.Dense(10, name="logits")(x))
    artifact = tiny.keras_artifact(model, models_dir / "two_unsupported", "two_unsupported")
    logs: list[str] = []
    stage = QuantizeStage(model="two_unsupported", method="qat", data="digits", epochs=1, include=["*"])
    with pytest.raises(StageFailed) as failure:
        run_stage(stage, env, {"model": artifact}, logs=logs)
    message = str(failure.value)
    assert "'include' selects 2 layers that tfmot's 8-bit quantization does not support" in message
    assert "rescale (Rescaling)" in message and "square (Multiply)" in message
    assert not any("epoch" in line for line in logs), logs


@pytest.mark.tf
def test_a_custom_layer_is_quantized_with_the_quantize_config_of_a_module(env, models_dir, run_stage,
                                                                          tmp_path, monkeypatch):
    (tmp_path / "qat_partial_layers.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import qat_partial_layers as custom

    from compressflow.stages.keras_artifacts import load_keras_artifact
    from compressflow.stages.tfutil import keras, seed_everything

    k = keras()
    seed_everything(0)
    model = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Conv2D(4, 3, name="conv"),
                          k.layers.Flatten(name="flatten"), custom.Scale(name="scale"),
                          k.layers.Dense(10, name="dense")])
    artifact = tiny.keras_artifact(_trained(model, env, epochs=3), models_dir / "custom", "custom")
    stage = QuantizeStage(model="custom", method="qat", data="digits", epochs=1,
                          quantize_configs={"sca*": "qat_partial_layers:ScaleQuantizeConfig"})
    output = run_stage(stage, env, {"model": artifact})
    assert output.meta["quantize_configs"] == ["qat_partial_layers:ScaleQuantizeConfig"]
    assert "scale" in output.meta["quantized_layers"] and not output.meta["float_layers"]
    wrapper = next(layer for layer in load_keras_artifact(output).layers if getattr(layer, "layer", None) is not None
                   and layer.layer.name == "scale")
    assert type(wrapper.quantize_config).__name__ == "ScaleQuantizeConfig"
    int8 = run_stage(QuantizeStage(model="qat", method="int8", data="digits"), env, {"model": output})
    assert "int8" in int8.meta["weight_dtypes"]


def test_quantize_config_modules_are_checked_before_running(tmp_path):
    env = Environment(pipeline_dir=tmp_path)
    stage = QuantizeStage(model="m", method="qat", data="d", quantize_configs={"scale": "no_such_module:Config"})
    problems = stage.check(env)
    assert [problem.field for problem in problems] == ["quantize_configs"]
    assert "no module 'no_such_module'" in problems[0].message


MOBILENET_PIPELINE = """
version: 1
name: mobilenet_qat
datasets:
  images: {type: python, function: "random_images:images", args: {count: 48}}
stages:
  base:
    type: load
    application: MobileNetV3Small
    args: {input_shape: [32, 32, 3], minimalistic: false}
  qat:
    type: quantize
    model: base
    method: qat
    data: images
    epochs: 1
    batch_size: 16
"""

RANDOM_IMAGES = """
import numpy as np


def images(count):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (count, 32, 32, 3)).astype("float32"), rng.integers(0, 10, count)
"""


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.timeout(2400)  # NOTE: tfmot takes minutes to rebuild MobileNetV3's 239 layers on two busy cores
def test_mobilenet_v3_qat_keeps_its_hard_swish_float_and_says_so_without_a_traceback(tmp_path):
    write(tmp_path / "random_images.py", RANDOM_IMAGES)
    write(tmp_path / "p.yaml", MOBILENET_PIPELINE)
    result = cli("run", "p.yaml", cwd=tmp_path, timeout=2300)
    assert "Traceback" not in result.text, result.text
    assert result.code == 0, result.text
    assert ("not quantizing 85 layers (TFOpLambda x56, Multiply x28, Rescaling x1): not supported by tfmot's "
            "8-bit quantization, kept float") in result.text, result.text

