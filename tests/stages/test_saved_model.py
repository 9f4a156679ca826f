"""Plain SavedModels (``tf.saved_model.save``, no Keras metadata): loaded, converted, evaluated; never trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressflow.data.datasets import SklearnDigits
from compressflow.errors import StageFailed
from compressflow.stages.base import Environment
from compressflow.stages.evaluate import EvaluateStage, read_metrics
from compressflow.stages.load import LoadStage
from compressflow.stages.prune import PruneStage
from compressflow.stages.quantize import QuantizeStage

import tiny_tf_models as tiny
from helpers import cli, evaluated_models, write

pytestmark = pytest.mark.tf


def save_linear_classifier(path: Path, env) -> float:
    """A tf.Module computing softmax(x W + b), W and b fitted by scikit-learn on the digits training split,
    saved with tf.saved_model.save and a serving signature. Returns its validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    splits = tiny.digits(env)
    fitted = LogisticRegression(max_iter=500).fit(splits.x_train.reshape(len(splits.x_train), -1), splits.y_train)

    class Classifier(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(fitted.coef_.T.astype("float32"), name="w")
            self.b = tf.Variable(fitted.intercept_.astype("float32"), name="b")

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")])
        def __call__(self, x):
            return tf.nn.softmax(tf.matmul(tf.reshape(x, [-1, 64]), self.w) + self.b)

    module = Classifier()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return float(fitted.score(splits.x_val.reshape(len(splits.x_val), -1), splits.y_val))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Environment:
    return Environment(pipeline_dir=tmp_path_factory.mktemp("pipeline"), seed=0,
                       datasets={"digits": SklearnDigits()})


@pytest.fixture(scope="module")
def saved(env) -> tuple[str, float]:
    """The SavedModel folder's path inside the pipeline folder, and its validation accuracy."""
    accuracy = save_linear_classifier(env.pipeline_dir / "classifier", env)
    assert not (env.pipeline_dir / "classifier" / "keras_metadata.pb").exists()
    return "classifier", accuracy


def test_a_plain_saved_model_is_loaded_converted_to_int8_and_evaluated(saved, env, run_stage):
    path, accuracy = saved
    logs: list[str] = []
    loaded = run_stage(LoadStage(path=path), env, name="base", logs=logs)
    assert loaded.kind == "saved_model"
    assert loaded.meta["signature"] == "serving_default"
    assert loaded.meta["input"] == {"name": "image", "dtype": "float32", "shape": [None, 8, 8, 1]}
    assert loaded.meta["params"] == 64 * 10 + 10
    assert (loaded.file() / "saved_model.pb").is_file()
    assert any("not saved by Keras" in line for line in logs), logs

    int8 = run_stage(QuantizeStage(model="base", method="int8", data="digits", representative_samples=100), env,
                     {"model": loaded}, name="int8")
    assert int8.kind == "tflite_model"
    assert "int8" in int8.meta["weight_dtypes"] and "int8" in int8.meta["activation_dtypes"]
    assert int8.file("numerics.json").is_file() and int8.meta["numerics"]["worst_layers"]

    stage = EvaluateStage(models=["base", "int8"], baseline="base", data="digits", latency={"runs": 5, "warmup": 1})
    _, models = read_metrics(run_stage(stage, env, {"models": [loaded, int8], "baseline": loaded}, name="check"))
    assert models["base"]["accuracy"] == pytest.approx(accuracy, abs=0.005)
    assert models["base"]["label"] == "saved_model" and models["base"]["params"] == 650
    assert models["base"]["file_bytes"] > 0 and models["base"]["latency_ms_median"] > 0
    assert abs(models["int8"]["accuracy"] - accuracy) <= 0.03
    assert models["int8"]["gzip_compression"] > 1


def test_training_a_plain_saved_model_is_refused_when_it_runs(saved, env, run_stage):
    loaded = run_stage(LoadStage(path=saved[0]), env, name="base")
    prune = PruneStage(model="base", data="digits", schedule={"type": "constant", "target_sparsity": 0.5})
    with pytest.raises(StageFailed, match="trains Keras layers, and 'base' is a plain SavedModel"):
        run_stage(prune, env, {"model": loaded}, name="pruned")
    with pytest.raises(StageFailed, match="quantize with method qat trains Keras layers"):
        run_stage(QuantizeStage(model="base", method="qat", data="digits"), env, {"model": loaded})


def test_pruning_a_plain_saved_model_is_refused_when_the_pipeline_is_validated(saved, env):
    pipeline = write(env.pipeline_dir / "p.yaml", """
        version: 1
        name: plain
        datasets:
          digits: {type: sklearn_digits}
        stages:
          base: {type: load, path: classifier}
          int8: {type: quantize, model: base, method: int8, data: digits}
          pruned:
            type: prune
            model: base
            data: digits
            schedule: {type: constant, target_sparsity: 0.5}
        """)
    result = cli("validate", pipeline.name, cwd=env.pipeline_dir)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    line = next(number for number, text in enumerate(pipeline.read_text().splitlines(), 1) if "model: base" in text
                and "quantize" not in text)
    assert f"p.yaml:{line}:" in result.err, result.err
    assert ("prune trains Keras layers, and 'base' is a plain SavedModel (classifier): saved with "
            "tf.saved_model.save") in result.err
    assert "1 problem found; nothing was run." in result.err
    assert not (env.pipeline_dir / ".compressflow").exists()


STREAMED_DIGITS = """
import numpy as np


def splits(stream=True):
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    x, y = digits.images[order, :, :, None].astype("float32") / 16, digits.target[order].astype("int64")
    parts = {"train": (x[360:], y[360:]), "validation": (x[:360], y[:360])}
    if not stream:
        return parts
    import tensorflow as tf

    return {name: tf.data.Dataset.from_tensor_slices(part).batch(50) for name, part in parts.items()}
"""


def test_a_saved_model_and_its_int8_conversion_measure_the_same_on_a_stream_as_on_its_arrays(saved, env):
    """Calibration and evaluation read a tf.data stream batch by batch, for a plain SavedModel and a TFLite model."""
    (env.pipeline_dir / "streamed_digits.py").write_text(STREAMED_DIGITS)
    pipeline = write(env.pipeline_dir / "streamed.yaml", """
        version: 1
        name: streamed
        datasets:
          stream: {type: python, function: "streamed_digits:splits"}
          arrays: {type: python, function: "streamed_digits:splits", args: {stream: false}}
        stages:
          base: {type: load, path: classifier}
          int8: {type: quantize, model: base, method: int8, data: stream, representative_samples: 100}
          on_stream: {type: evaluate, models: [base, int8], data: stream}
          on_arrays: {type: evaluate, models: [base, int8], data: arrays}
        """)
    result = cli("run", pipeline.name, cwd=env.pipeline_dir)
    assert result.code == 0, result.text
    streamed = evaluated_models(env.pipeline_dir, pipeline.name, "on_stream")
    arrays = evaluated_models(env.pipeline_dir, pipeline.name, "on_arrays")
    for model in ("base", "int8"):
        assert streamed[model]["samples"] == arrays[model]["samples"] == 360
        assert streamed[model]["accuracy"] == pytest.approx(arrays[model]["accuracy"], abs=1e-9), model
    assert streamed["base"]["accuracy"] > 0.9
    assert abs(streamed["int8"]["accuracy"] - streamed["base"]["accuracy"]) < 0.03
