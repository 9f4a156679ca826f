"""`compressflow check`: what each stage will not manage, found on the untrained architecture;
`compressflow run` refuses a pipeline with such a stage before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[2]

CUSTOM_LAYERS = """
import tf_keras


@tf_keras.saving.register_keras_serializable(package="shop")
class ScaledDense(tf_keras.layers.Layer):
    \"\"\"A dense layer of its own: it has weights, but implements no tfmot PrunableLayer.\"\"\"

    def __init__(self, units=10, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(name="w", shape=(int(input_shape[-1]), self.units))

    def call(self, inputs):
        return tf_keras.activations.softmax(inputs @ self.w)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def net():
    inputs = tf_keras.Input((8, 8, 1), name="image")
    x = tf_keras.layers.Flatten(name="flatten")(inputs)
    return tf_keras.Model(inputs, ScaledDense(10, name="scaled")(x))
"""

REFUSED = """
version: 1
name: refused
imports: [shoplayers]
datasets:
  digits: {type: sklearn_digits, limit: 300}
stages:
  base: {type: load, builder: "shoplayers:net"}
  trained: {type: fine_tune, model: base, data: digits, epochs: 1}
  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: constant, target_sparsity: 0.5}
    epochs: 1
"""


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    project = tmp_path_factory.mktemp("refused")
    write(project / "shoplayers.py", CUSTOM_LAYERS)
    return write(project / "refused.yaml", REFUSED)


def test_check_names_the_stage_and_the_custom_layer_prune_refuses(refused):
    result = cli("check", refused, "--json")
    assert result.code == 1, result.text
    report = json.loads(result.out)
    assert report["ok"] is False
    pruned = report["stages"]["pruned"]
    assert pruned["status"] == "error"
    error = next(f for f in pruned["findings"] if f["level"] == "error")
    assert "no layer to prune" in error["message"] and "scaled" in error["items"]
    assert "not supported by tfmot pruning" in error["message"]
    assert report["stages"]["trained"]["status"] == "ok"


def test_check_table_says_which_stage_would_fail(refused):
    result = cli("check", refused)
    assert result.code == 1, result.text
    assert "no layer to prune" in " ".join(result.out.split())
    assert "1 error (pruned would fail)" in result.out


def test_run_refuses_before_training_starts(refused):
    result = cli("run", refused)
    assert result.code == 1, result.text
    assert "stage 'pruned' would fail: no layer to prune" in result.err
    assert "nothing was run" in result.err
    entries = refused.parent / ".compressflow" / "cache" / "entries"
    assert not entries.exists() or not any(entries.rglob("artifact.json")), "a stage ran before the refusal"
    assert "trained: done" not in result.out and "fine_tune" not in result.out


def test_run_with_no_check_fails_late_in_the_stage(refused):
    result = cli("run", refused, "--no-check")
    assert result.code == 1, result.text
    assert "would fail" not in result.err
    assert "no layer to prune" in result.text
    entries = refused.parent / ".compressflow" / "cache" / "entries"
    assert any(entries.rglob("artifact.json")), "fine_tune should have run before prune failed"


OPS = """
import tensorflow as tf
import tf_keras


def _net(op, name):
    inputs = tf_keras.Input((8, 8, 1), name="image")
    x = tf_keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = op(x)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(10, activation="softmax", name="probs")(x), name=name)


def with_erf():
    return _net(tf.math.erf, "erf_net")


def with_sin():
    return _net(tf.math.sin, "sin_net")
"""

CONVERTED = """
version: 1
name: converted
datasets:
  digits: {type: sklearn_digits, limit: 300}
stages:
  erf_base: {type: load, builder: "opsnets:with_erf"}
  sin_base: {type: load, builder: "opsnets:with_sin"}
  erf_int8: {type: quantize, model: erf_base, method: int8, data: digits}
  sin_int8: {type: quantize, model: sin_base, method: int8, data: digits}
"""


def test_check_reports_ops_int8_cannot_quantize(tmp_path):
    write(tmp_path / "opsnets.py", OPS)
    result = cli("check", write(tmp_path / "converted.yaml", CONVERTED), "--json")
    assert result.code == 1, result.text
    stages = json.loads(result.out)["stages"]
    erf = next(f for f in stages["erf_int8"]["findings"] if f["level"] == "error")
    assert "cannot convert" in erf["message"] and "Erf" in erf["message"]
    sin = next(f for f in stages["sin_int8"]["findings"] if f["level"] == "warning")
    assert "SIN" in sin["message"] and "stay float" in sin["message"]
    assert stages["sin_int8"]["status"] == "warning"


MISMATCH = """
version: 1
name: mismatch
datasets:
  flat: {type: sklearn_digits, layout: flat, limit: 300}
  digits: {type: sklearn_digits, limit: 300}
stages:
  base: {type: load, builder: compressflow.models:small_cnn}
  five: {type: load, builder: compressflow.models:small_cnn, args: {classes: 5}}
  trained: {type: fine_tune, model: base, data: flat, epochs: 1}
  narrow: {type: fine_tune, model: five, data: digits, epochs: 1}
"""


def test_check_reports_shape_mismatches_with_the_stage(tmp_path):
    result = cli("check", write(tmp_path / "mismatch.yaml", MISMATCH), "--json")
    assert result.code == 1, result.text
    stages = json.loads(result.out)["stages"]
    [shape] = [f["message"] for f in stages["trained"]["findings"] if f["level"] == "error"]
    assert "dataset 'flat' gives samples of shape (64,)" in shape and "(8, 8, 1)" in shape
    [classes] = [f["message"] for f in stages["narrow"]["findings"] if f["level"] == "error"]
    assert "10 classes" in classes and "5 output units" in classes


def test_the_digits_pipeline_checks_clean():
    result = cli("check", REPO / "pipelines" / "digits.yaml", "--json")
    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["ok"] is True and report["errors"] == 0
    assert report["stages"]["pruned"]["status"] == "ok"
    assert any("every op quantizes" in f["message"] for f in report["stages"]["int8"]["findings"])


CACHED = """
version: 1
name: cached
datasets:
  digits: {type: sklearn_digits, limit: 300}
stages:
  base: {type: load, builder: compressflow.models:tiny_cnn}
  trained: {type: fine_tune, model: base, data: digits, epochs: 1}
  again: {type: fine_tune, model: trained, data: digits, epochs: 1}
"""


def test_a_fully_cached_run_imports_no_tensorflow_for_the_check(tmp_path):
    pipeline = write(tmp_path / "cached.yaml", CACHED)
    first = cli("run", pipeline)
    assert first.code == 0, first.text
    code = ("import sys\nfrom compressflow.cli.parser import main\n"
            f"rc = main(['run', {str(pipeline)!r}])\n"
            "assert rc == 0, rc\nassert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 to run, 3 cached" in proc.stdout


KERAS3_BUILDER = '''
import keras
from keras import layers


def tiny(classes=10):
    inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax", name="probs")(x), name="tiny")
'''

KERAS3 = """
version: 1
name: keras3-check
datasets:
  digits: {type: sklearn_digits, limit: 300}
stages:
  base: {type: load, builder: "k3models:tiny", args: {classes: 5}}
  pruned:
    type: prune
    model: base
    data: digits
    schedule: {type: constant, target_sparsity: 0.5}
    epochs: 1
"""


def test_a_keras3_builder_is_checked_through_its_tf_keras_translation(tmp_path):
    write(tmp_path / "k3models.py", KERAS3_BUILDER)
    result = cli("check", write(tmp_path / "keras3.yaml", KERAS3), "--json")
    assert result.code == 1, result.text
    stages = json.loads(result.out)["stages"]
    assert stages["base"]["status"] == "ok"
    findings = {f["level"]: f for f in stages["pruned"]["findings"]}
    assert findings["ok"]["items"] == ["conv", "probs"]
    assert "10 classes" in findings["error"]["message"] and "5 output units" in findings["error"]["message"]


QAT = """
version: 1
name: qat-check
imports: [shoplayers]
datasets:
  digits: {type: sklearn_digits, limit: 300}
stages:
  custom: {type: load, builder: "shoplayers:net"}
  custom_qat: {type: quantize, model: custom, method: qat, data: digits, include: ["scaled"], epochs: 1}
  cnn: {type: load, builder: compressflow.models:tiny_cnn}
  cnn_qat: {type: quantize, model: cnn, method: qat, data: digits, epochs: 1}
  cnn_int8: {type: quantize, model: cnn_qat, method: int8, data: digits}
"""


def test_check_reports_layers_qat_refuses_and_converts_the_quantization_aware_model(refused):
    result = cli("check", write(refused.parent / "qat.yaml", QAT), "--json")
    assert result.code == 1, result.text
    stages = json.loads(result.out)["stages"]
    [error] = [f["message"] for f in stages["custom_qat"]["findings"] if f["level"] == "error"]
    assert "'include' selects 1 layer" in error and "scaled (ScaledDense)" in error
    assert stages["cnn_qat"]["status"] == "ok"
    assert any("every op quantizes" in f["message"] for f in stages["cnn_int8"]["findings"])


CLUSTER = """
version: 1
name: cluster-check
imports: [shoplayers]
datasets:
  digits: {type: sklearn_digits, limit: 300}
stages:
  custom: {type: load, builder: "shoplayers:net"}
  custom_clustered: {type: cluster, model: custom, data: digits, epochs: 1}
  cnn: {type: load, builder: compressflow.models:tiny_cnn, args: {filters: 1}}
  cnn_clustered: {type: cluster, model: cnn, data: digits, number_of_clusters: 16, epochs: 1}
"""


def test_check_asks_tfmot_clustering_which_layers_it_takes(refused):
    result = cli("check", write(refused.parent / "cluster.yaml", CLUSTER), "--json")
    assert result.code == 1, result.text
    stages = json.loads(result.out)["stages"]
    [error] = [f["message"] for f in stages["custom_clustered"]["findings"] if f["level"] == "error"]
    assert "no layer to cluster" in error and "not supported by tfmot clustering" in error
    findings = {f["level"]: f for f in stages["cnn_clustered"]["findings"]}
    assert findings["ok"]["items"] == ["probs"]
    assert findings["warning"]["items"] == ["conv1"]  # 9 weights are not more than 16 clusters
    assert stages["cnn_clustered"]["status"] == "warning"
