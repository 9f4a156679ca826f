"""Model builders and the model-file inspection that runs before any deserialisation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from compressflow.models import safety


@pytest.mark.tf
def test_builders_give_named_tf_keras_models():
    from compressflow.models import mlp, small_cnn, tiny_cnn
    from compressflow.stages.tfutil import keras
    from compressflow.stages.tfutil import outputs_logits

    cnn, student, perceptron = small_cnn(), tiny_cnn(), mlp(input_shape=(8, 8, 1), hidden=(32, 16))
    for model in (cnn, student, perceptron):
        assert isinstance(model, keras().Model)
        assert model.output_shape == (None, 10)
        assert not outputs_logits(model)
    assert {"conv1", "conv2", "dense1", "probs"} <= {layer.name for layer in cnn.layers}
    assert student.count_params() * 10 < cnn.count_params()
    assert [layer.name for layer in perceptron.layers if "dense" in layer.name] == ["dense1", "dense2"]
    assert outputs_logits(small_cnn(logits=True, classes=3)) and small_cnn(classes=3).output_shape == (None, 3)


@pytest.mark.tf
def test_builders_are_deterministic_for_a_seed():
    from compressflow.models import small_cnn
    from compressflow.stages.tfutil import seed_everything

    def weights(seed):
        seed_everything(seed)
        return small_cnn().get_weights()

    first, again, other = weights(3), weights(3), weights(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


@pytest.mark.tf
def test_application_never_downloads_and_suggests_names():
    from compressflow.models import application

    with pytest.raises(ValueError, match="never downloaded"):
        application("MobileNet", weights="imagenet", input_shape=(32, 32, 3), alpha=0.25)
    with pytest.raises(ValueError, match="did you mean 'MobileNetV2'"):
        application("MobileNetV22")


def test_importing_the_builders_does_not_import_tensorflow():
    code = "import sys, compressflow.models; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------- inspection (no TensorFlow)


def _known(class_name, module, registered):
    return class_name in {"Functional", "InputLayer", "Dense", "Flatten"}


def test_find_code_names_lambdas_and_foreign_modules_in_new_format_configs():
    activation = {"module": "my.acts", "class_name": "function", "config": "swishy", "registered_name": "function"}
    zeros = {"module": "keras.initializers", "class_name": "Zeros", "config": {}}
    layers = [
        {"module": "keras.layers", "class_name": "Dense",
         "config": {"name": "head", "kernel_initializer": zeros, "activation": activation}},
        {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "code", "function": ["AAA", None, None]}},
        {"module": "keras.layers", "class_name": "Flatten", "config": {"name": "flat"}},
    ]
    config = {"module": "tf_keras.src.engine.functional", "class_name": "Functional",
              "config": {"name": "m", "layers": layers}}
    findings = {(f.layer, f.class_name): f.reason for f in safety.find_code([(config, True)], _known)}
    assert set(findings) == {("head", "function"), ("code", "Lambda")}
    assert "'my.acts'" in findings[("head", "function")]


def test_find_code_in_legacy_configs_checks_layer_classes_only():
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "Dense", "config": {"name": "ok", "kernel_initializer": {"class_name": "Unlisted"}}},
        {"class_name": "MyLayer", "config": {"name": "custom"}},
        {"class_name": "Bidirectional", "config": {"name": "wrap", "layer": {"class_name": "Lambda",
                                                                              "config": {"name": "inner"}}}},
    ]}}
    found = {(f.layer, f.class_name) for f in safety.find_code([(config, False)], _known)}
    assert found == {("custom", "MyLayer"), ("wrap", "Bidirectional"), ("inner", "Lambda")}


def test_saved_model_metadata_is_read_from_the_protobuf_wire_format(tmp_path):
    def field(number, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    layer = json.dumps({"class_name": "Lambda", "name": "fn", "config": {"name": "fn"}}).encode()
    node = field(3, b"root.layer-1") + field(4, b"_tf_keras_layer") + field(5, layer)
    metric = field(4, b"_tf_keras_metric") + field(5, json.dumps({"class_name": "Mean", "name": "loss"}).encode())
    (tmp_path / "saved_model.pb").write_bytes(b"")
    (tmp_path / "keras_metadata.pb").write_bytes(field(1, node) + field(1, metric))
    assert safety.detect_format(tmp_path) == safety.SAVED_MODEL
    configs = safety.read_stored_config(tmp_path, safety.SAVED_MODEL)
    assert [(f.layer, f.class_name) for f in safety.find_code(configs, _known)] == [("fn", "Lambda")]
    (tmp_path / "keras_metadata.pb").write_bytes((field(1, node) + field(1, metric))[:-7])
    with pytest.raises(safety.ModelFileError, match="corrupt or truncated"):
        safety.read_stored_config(tmp_path, safety.SAVED_MODEL)


def test_trust_skips_the_inspection_but_not_the_format_check(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 but not really a zip")
    assert safety.check_model_file(path, trust=True, is_known=_known, opt_in="x") == safety.KERAS_ZIP
    with pytest.raises(safety.ModelFileError, match="model.keras"):
        safety.check_model_file(path, trust=False, is_known=_known, opt_in="x")
