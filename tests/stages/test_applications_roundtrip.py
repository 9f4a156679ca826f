"""tf_keras.applications architectures get past the safety check and through load -> the next stage.

The safety check reads a model file's config and refuses classes it does not know, so it must know
every class tf-keras' own architectures store: the EfficientNets keep TensorFlow's ``Constant``
initializer (``tensorflow.python.ops.init_ops_v2``), which once stopped EfficientNetV2B0 at the
stage after ``load``, ``trust: true`` or not. And a model compressflow saved itself is never refused
by the next stage.

Every architecture is built from the blocks of its family (its module in tf_keras.applications:
EfficientNetB0 to B7 differ in width, depth and input size only), so one architecture of each
family, the smallest, is built by a builder in a module beside the pipeline, saved by the load stage
and loaded again by an evaluate stage, through ``compressflow.run`` in this process; the file the
load stage wrote then passes the check a ``load: {path: ...}`` of it would make, before anything runs
(no TensorFlow) and when the stage runs. tf-keras cannot load the ConvNeXt models it saves itself; a
test says so, so that the list learns when it can.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from helpers import write

pytestmark = pytest.mark.tf

#: Smallest input each architecture takes without pretrained weights (32 when not listed).
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}

#: The smallest architecture of each family of tf_keras.applications 2.21, by the family's module.
ROUND_TRIPS = {
    "densenet": "DenseNet121", "efficientnet": "EfficientNetB0", "efficientnet_v2": "EfficientNetV2B0",
    "inception_resnet_v2": "InceptionResNetV2", "inception_v3": "InceptionV3", "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2", "mobilenet_v3": "MobileNetV3Small", "nasnet": "NASNetMobile",
    "regnet": "RegNetX002", "resnet": "ResNet50", "resnet_v2": "ResNet50V2", "resnet_rs": "ResNetRS50",
    "vgg16": "VGG16", "vgg19": "VGG19", "xception": "Xception",
}
#: Round trips of an architecture with blocks of its own within a family (RegNetY adds squeeze-and-excite).
MORE_ROUND_TRIPS = ("RegNetY002",)
#: Families tf-keras cannot round-trip itself (see the last test).
NOT_ROUND_TRIPPED = {"convnext": "ConvNeXtTiny"}
#: Round trips fast enough for the quick tier; the others are slow tests.
QUICK = frozenset({"EfficientNetV2B0", "MobileNetV3Small"})

BUILDERS = '''
import tf_keras


def build(name, size, classes=4):
    return getattr(tf_keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=classes)
'''

DATA = '''
import numpy as np


def images(size, count=10, classes=4):
    rng = np.random.default_rng(0)
    return rng.random((count, size, size, 3), dtype="float32") * 255.0, np.arange(count) % classes
'''


def _build(name: str):
    from compressflow.stages.tfutil import keras

    size = MIN_SIZE.get(name, 32)
    return getattr(keras().applications, name)(weights=None, input_shape=(size, size, 3), classes=4)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each architecture starts from a clear tf-keras state, and leaves none behind (memory)."""
    yield
    from compressflow.stages.tfutil import keras

    keras().backend.clear_session()
    gc.collect()


def test_every_architecture_belongs_to_a_family_with_a_round_trip():
    from compressflow.stages.tfutil import keras

    applications = keras().applications
    families = {name: getattr(applications, name).__module__.rpartition(".")[2] for name in dir(applications)
                if name[:1].isupper() and callable(getattr(applications, name))}
    assert len(families) >= 70
    assert set(families.values()) == set(ROUND_TRIPS) | set(NOT_ROUND_TRIPPED)
    for family, name in {**ROUND_TRIPS, **NOT_ROUND_TRIPPED}.items():
        assert families[name] == family
    assert all(name in families for name in MORE_ROUND_TRIPS)


@pytest.mark.parametrize("name", [name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
                                  for name in sorted([*ROUND_TRIPS.values(), *MORE_ROUND_TRIPS])])
def test_an_architecture_round_trips_through_load_and_evaluate(name: str, tmp_path: Path):
    import compressflow
    from compressflow.models.registrations import known_before_run
    from compressflow.models.safety import check_model_file
    from compressflow.stages.tfutil import is_known_keras_class

    size = MIN_SIZE.get(name, 32)
    write(tmp_path / "app_builders.py", BUILDERS)
    write(tmp_path / "app_data.py", DATA)
    pipeline = write(tmp_path / "roundtrip.yaml", f"""
        version: 1
        name: roundtrip
        datasets:
          images: {{type: python, function: "app_data:images", args: {{size: {size}}}}}
        stages:
          model: {{type: load, builder: "app_builders:build", args: {{name: {name}, size: {size}}}}}
          check: {{type: evaluate, models: [model], data: images, latency: null}}
        """)

    result = compressflow.run(pipeline, echo=None, capture_logs=False)

    assert result.ok, {stage: outcome.error for stage, outcome in result.outcomes.items()}
    assert [result.outcomes[stage].status for stage in ("model", "check")] == ["ran", "ran"]
    measured = result.record["stages"]["check"]["metrics"]["models"]["model"]
    assert measured["params"] > 0 and 0.0 <= measured["accuracy"] <= 1.0
    saved = tmp_path / ".compressflow" / "cache" / "entries" / result.record["stages"]["model"]["key"][:2]
    saved = saved / result.record["stages"]["model"]["key"] / "model.keras"
    for is_known in (known_before_run((), tmp_path), is_known_keras_class):  # as a `path:` load of it would
        assert check_model_file(saved, trust=False, is_known=is_known, opt_in="-") == "keras"


@pytest.mark.slow
def test_tf_keras_itself_cannot_load_a_convnext_it_saved(tmp_path: Path):
    """Why the ConvNeXt models have no round trip: plain tf-keras fails on its own file."""
    from compressflow.stages.tfutil import keras

    k = keras()
    _build(NOT_ROUND_TRIPPED["convnext"]).save(tmp_path / "convnext.keras")
    with pytest.raises(TypeError, match="'str' object is not callable"):
        k.models.load_model(tmp_path / "convnext.keras", compile=False)
