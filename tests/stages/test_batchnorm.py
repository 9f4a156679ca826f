"""``batchnorm: freeze | train`` on training stages: frozen BatchNorm keeps its statistics and parameters."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from compressflow.data.datasets import SklearnDigits
from compressflow.stages.base import Environment
from compressflow.stages.cluster import ClusterStage
from compressflow.stages.distill import DistillStage
from compressflow.stages.fine_tune import FineTuneStage
from compressflow.stages.prune import PruneStage
from compressflow.stages.quantize import QuantizeStage

import tiny_tf_models as tiny

BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Environment:
    return Environment(pipeline_dir=tmp_path_factory.mktemp("pipeline"), seed=0,
                       datasets={"digits": SklearnDigits(limit=400)})


@pytest.fixture(scope="module")
def bn_artifact(tmp_path_factory):
    """Conv2D -> BatchNormalization -> ReLU -> Flatten -> Dense, untrained (moving statistics 0 and 1)."""
    from compressflow.stages.tfutil import keras, seed_everything

    k = keras()
    seed_everything(0)
    model = k.Sequential([
        k.layers.Input((8, 8, 1)),
        k.layers.Conv2D(8, 3, name="conv"),
        k.layers.BatchNormalization(name="bn"),
        k.layers.ReLU(name="relu"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(10, name="dense"),
    ])
    return tiny.keras_artifact(model, tmp_path_factory.mktemp("models") / "base", "base")


def _weights(artifact, layer: str) -> dict[str, np.ndarray]:
    from compressflow.stages.model_io import load_artifact_model

    found = load_artifact_model(artifact).get_layer(layer)
    return {weight.name.split("/")[-1].split(":")[0]: weight.numpy() for weight in found.weights}


def _fine_tuned(batchnorm: str, bn_artifact, env, run_stage, logs: list):
    stage = FineTuneStage(model="base", data="digits", epochs=2, learning_rate=1e-2, batchnorm=batchnorm)
    return run_stage(stage, env, {"model": bn_artifact}, logs=logs)


@pytest.mark.tf
def test_frozen_batchnorm_keeps_its_statistics_and_parameters_while_the_rest_trains(bn_artifact, env, run_stage):
    logs: list[str] = []
    output = _fine_tuned("freeze", bn_artifact, env, run_stage, logs)
    before, after = _weights(bn_artifact, "bn"), _weights(output, "bn")
    for name in BN_WEIGHTS:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not np.array_equal(_weights(output, "conv")["kernel"], _weights(bn_artifact, "conv")["kernel"])
    assert any("batchnorm: freeze: 1 BatchNormalization layer keep" in line for line in logs), logs
    from compressflow.stages.model_io import load_artifact_model

    assert load_artifact_model(output).get_layer("bn").trainable, "the saved model must not stay frozen"


@pytest.mark.tf
def test_trained_batchnorm_updates_its_statistics_and_parameters(bn_artifact, env, run_stage):
    output = _fine_tuned("train", bn_artifact, env, run_stage, [])
    before, after = _weights(bn_artifact, "bn"), _weights(output, "bn")
    for name in BN_WEIGHTS:
        assert not np.allclose(after[name], before[name]), name


def test_batchnorm_is_a_field_of_every_training_stage_and_part_of_its_key():
    stages = [
        FineTuneStage(model="m", data="d"),
        PruneStage(model="m", data="d", schedule={"type": "constant", "target_sparsity": 0.5}),
        ClusterStage(model="m", data="d"),
        QuantizeStage(model="m", data="d", method="qat"),
        DistillStage(teacher="t", student="s", data="d"),
    ]
    for stage in stages:
        assert stage.batchnorm == "train"
        frozen = stage.model_copy(update={"batchnorm": "freeze"})
        assert stage.key_config()["batchnorm"] == "train"
        assert frozen.key_config() != stage.key_config(), stage.kind
    with pytest.raises(ValidationError, match="batchnorm"):
        FineTuneStage(model="m", data="d", batchnorm="fixed")
