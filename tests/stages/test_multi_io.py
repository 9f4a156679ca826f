"""Models with several inputs or outputs: TFLite inputs matched by name, per-output metrics, whole pipelines."""

from __future__ import annotations

import numpy as np
import pytest

from compressflow.stages.prediction_metrics import output_metrics, output_task

from helpers import cli, evaluated_models, write

pytestmark = pytest.mark.tf


def _two_input_data(count: int = 600, seed: int = 0):
    """Images whose class is the brightest quarter, and a ``meta`` vector that shifts it (dict features)."""
    rng = np.random.default_rng(seed)
    image = rng.random((count, 8, 8, 1), dtype=np.float32)
    label = rng.integers(0, 4, count)
    for i, cls in enumerate(label):
        row, col = divmod(int(cls), 2)
        image[i, row * 4:row * 4 + 4, col * 4:col * 4 + 4, 0] += 1.0
    meta = rng.random((count, 3), dtype=np.float32)
    return {"image": image, "meta": meta}, label.astype(np.int64)


def _two_input_model(outputs: str = "one"):
    from compressflow.stages.tfutil import keras

    k = keras()
    image, meta = k.Input((8, 8, 1), name="image"), k.Input((3,), name="meta")
    hidden = k.layers.Dense(16, activation="relu")(k.layers.Concatenate()([k.layers.Flatten()(image), meta]))
    cls = k.layers.Dense(4, activation="softmax", name="cls")(hidden)
    if outputs == "one":
        return k.Model({"image": image, "meta": meta}, cls)
    value = k.layers.Dense(1, name="value")(hidden)
    return k.Model({"image": image, "meta": meta}, [cls, value])


def _trained(outputs: str):
    from compressflow.stages.tfutil import keras

    keras().utils.set_random_seed(0)
    features, labels = _two_input_data()
    model = _two_input_model(outputs)
    if outputs == "one":
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(features, labels, epochs=15, batch_size=32, verbose=0)
        return model, features, labels
    targets = {"cls": labels, "value": features["meta"].sum(axis=1, keepdims=True)}
    model.compile("adam", {"cls": "sparse_categorical_crossentropy", "value": "mse"})
    model.fit(features, targets, epochs=15, batch_size=32, verbose=0)
    return model, features, targets


def _int8(model, features):
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ({name: value[i:i + 1] for name, value in features.items()}
                                                for i in range(100))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def one_output():
    model, features, labels = _trained("one")
    return model, features, labels, _int8(model, features)


@pytest.fixture(scope="module")
def two_outputs():
    model, features, targets = _trained("two")
    return model, features, targets, _int8(model, features)


def test_a_two_input_tflite_model_matches_inputs_by_name_not_position(one_output):
    from compressflow.stages.litert_runner import LiteRTModel

    model, features, labels, tflite = one_output
    runner = LiteRTModel(tflite)
    assert runner.several and runner.input_names == ["image", "meta"]
    keras_scores = model.predict(features, verbose=0)
    scores = runner.predict(features, batch_size=64)
    assert scores.shape == keras_scores.shape == (600, 4)
    agreement = np.mean(scores.argmax(1) == keras_scores.argmax(1))
    assert agreement > 0.97, agreement
    # the same arrays in the other key order give the same scores (names decide, not order)
    reordered = runner.predict({"meta": features["meta"], "image": features["image"]}, batch_size=64)
    np.testing.assert_array_equal(reordered, scores)
    # a missing name is refused, naming what the model wants
    with pytest.raises(ValueError, match=r"the model's inputs are \['image', 'meta'\].*missing \['meta'\]"):
        runner.predict({"image": features["image"], "extra": features["meta"]})
    call = runner.single_sample_call({name: value[0] for name, value in features.items()})
    single = call()
    assert [np.asarray(value).shape for value in single.values()] == [(1, 4)]


def test_a_two_output_tflite_model_gives_scores_by_output_name(two_outputs):
    from compressflow.stages.litert_runner import LiteRTModel

    model, features, targets, tflite = two_outputs
    runner = LiteRTModel(tflite)
    assert runner.output_names == ["cls", "value"]
    scores = runner.predict(features)
    assert set(scores) == {"cls", "value"}
    keras_cls, keras_value = model.predict(features, verbose=0)
    assert np.mean(scores["cls"].argmax(1) == keras_cls.argmax(1)) > 0.95
    assert np.abs(scores["value"] - keras_value).mean() < 0.1


def test_per_output_metrics_are_keyed_by_output_name(two_outputs):
    _, features, targets, _ = two_outputs
    labels = targets["cls"]
    perfect = np.eye(4, dtype=np.float32)[labels]
    scores = {"cls": perfect, "value": targets["value"] + 0.5}
    measured = output_metrics(lambda name, s, y: output_task(s, y), scores, targets)
    assert measured["cls/task"] == "classification" and measured["cls/accuracy"] == 1.0
    assert measured["value/task"] == "regression"
    assert measured["value/mae"] == pytest.approx(0.5, abs=1e-6)
    assert "cls/mae" not in measured and "value/accuracy" not in measured
    with pytest.raises(ValueError, match=r"nothing for \['value'\]"):
        output_metrics(lambda name, s, y: output_task(s, y), scores, {"cls": labels})


# The pipeline's own module: a python dataset of dict features and a builder of two-input models.
PIPELINE_MODULE = """
import numpy as np


def features(count=600, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.random((count, 8, 8, 1), dtype=np.float32)
    label = rng.integers(0, 4, count)
    for i, cls in enumerate(label):
        row, col = divmod(int(cls), 2)
        image[i, row * 4:row * 4 + 4, col * 4:col * 4 + 4, 0] += 1.0
    return {"image": image, "meta": rng.random((count, 3), dtype=np.float32)}, label.astype(np.int64)


def splits(outputs="one"):
    x, y = features()
    if outputs == "two":
        y = {"cls": y, "value": x["meta"].sum(axis=1, keepdims=True)}
        cut = lambda v, a, b: {k: w[a:b] for k, w in v.items()}
    else:
        cut = lambda v, a, b: v[a:b]
    return {"train": ({k: v[:480] for k, v in x.items()}, cut(y, 0, 480)),
            "validation": ({k: v[480:] for k, v in x.items()}, cut(y, 480, 600))}


def net(outputs="one"):
    import tf_keras as k

    image, meta = k.Input((8, 8, 1), name="image"), k.Input((3,), name="meta")
    hidden = k.layers.Dense(16, activation="relu")(k.layers.Concatenate()([k.layers.Flatten()(image), meta]))
    cls = k.layers.Dense(4, activation="softmax", name="cls")(hidden)
    if outputs == "one":
        return k.Model({"image": image, "meta": meta}, cls)
    return k.Model({"image": image, "meta": meta}, [cls, k.layers.Dense(1, name="value")(hidden)])
"""


def _pipeline_dir(tmp_path):
    (tmp_path / "twoin.py").write_text(PIPELINE_MODULE)
    return tmp_path


def test_a_two_input_model_is_tuned_pruned_quantized_to_int8_andevaluated_models(tmp_path):
    folder = _pipeline_dir(tmp_path)
    write(folder / "p.yaml", """
        version: 1
        name: twoin
        datasets:
          d: {type: python, function: "twoin:splits"}
        stages:
          base: {type: load, builder: "twoin:net"}
          tuned: {type: fine_tune, model: base, data: d, epochs: 5}
          pruned: {type: prune, model: tuned, data: d, epochs: 1, schedule: {type: constant, target_sparsity: 0.5}}
          int8: {type: quantize, model: pruned, method: int8, data: d}
          check: {type: evaluate, models: [tuned, pruned, int8], baseline: tuned, data: d}
        """)
    result = cli("run", "p.yaml", cwd=folder)
    assert result.code == 0, result.text
    assert "did not finish" not in result.text  # the check before the run handles dict features
    models = evaluated_models(folder, "p.yaml", "check")
    assert models["tuned"]["kind"] == "keras_model" and models["int8"]["kind"] == "tflite_model"
    assert models["tuned"]["accuracy"] > 0.9, models["tuned"]
    assert models["pruned"]["sparsity"] == pytest.approx(0.5, abs=0.05)
    assert abs(models["int8"]["accuracy"] - models["tuned"]["accuracy"]) <= 0.03, models
    assert models["int8"]["samples"] == 120
    assert "numerics" not in models["int8"]  # the per-layer comparison runs models of one input: skipped


def test_a_two_output_model_is_refused_before_anything_runs_by_stages_that_train_or_measure_one_output(tmp_path):
    """fine_tune and evaluate take one output (one loss, one task): the check says so before any stage runs,
    while post-training int8 converts the two-output model (the check finds nothing against it)."""
    folder = _pipeline_dir(tmp_path)
    write(folder / "p.yaml", """
        version: 1
        name: twoout
        datasets:
          d: {type: python, function: "twoin:splits", args: {outputs: two}}
        stages:
          base: {type: load, builder: "twoin:net", args: {outputs: two}}
          tuned: {type: fine_tune, model: base, data: d, epochs: 1}
          int8: {type: quantize, model: base, method: int8, data: d}
          check: {type: evaluate, models: [base], data: d}
        """)
    result = cli("run", "p.yaml", cwd=folder)
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert "the model has 2 outputs (cls, value); stage 'tuned' trains and measures a model with one output" \
        in result.text
    assert "model 'base' has 2 outputs (cls, value); stage 'check'" in result.text
    assert "stage 'int8' would fail" not in result.text
    assert "nothing was run" in result.text
