"""fine_tune: trains, keeps the zeros and weight clusters of its input, fails on NaN, is deterministic."""

from __future__ import annotations

import re

import numpy as np
import pytest

from compressflow.data.datasets import SklearnDigits
from compressflow.stages.base import Environment, tree_sha256
from compressflow.stages.fine_tune import FineTuneStage
from compressflow.stages.load import LoadStage

import stage_chain as chain

pytestmark = pytest.mark.tf


def _fine_tune(source, **options):
    stage = FineTuneStage(model=source.stage, data="digits", **{"epochs": 2, "learning_rate": 3e-3, **options})
    return stage, {"model": source}


def test_trains_logs_every_epoch_and_reports():
    artifact = chain.trained()
    metrics = artifact.metrics()
    assert metrics["val_accuracy"] > 0.85 and metrics["epochs_run"] == 6
    assert len(metrics["history"]["val_loss"]) == 6
    assert artifact.meta["val_accuracy"] == metrics["val_accuracy"]
    epoch_lines = [line for line in chain.trained_logs() if line.startswith("epoch ")]
    assert len(epoch_lines) == 6 and epoch_lines[0].startswith("epoch 1/6") and "val_accuracy" in epoch_lines[-1]
    assert chain.load(artifact).optimizer is None  # saved without training state


def test_keeps_every_zero_of_a_pruned_input():
    source = chain.pruned()
    before = chain.kernels(chain.load(source))
    stage, inputs = _fine_tune(source)
    after = chain.kernels(chain.load(chain.run(stage, chain.shared_env(), inputs)))
    for name, old in before.items():
        assert np.all(after[name][old == 0] == 0), name
        assert np.mean(after[name] == 0) >= np.mean(old == 0)
        assert not np.array_equal(after[name], old), f"{name} did not train"


def test_plain_training_would_lose_the_zeros():
    source = chain.pruned()
    before = chain.kernels(chain.load(source))
    stage, inputs = _fine_tune(source, epochs=1, preserve_sparsity=False, preserve_clusters=False)
    after = chain.kernels(chain.load(chain.run(stage, chain.shared_env(), inputs)))
    assert np.mean(after["dense1"] == 0) < np.mean(before["dense1"] == 0) - 0.3


def test_keeps_the_weight_clusters_of_a_clustered_input_with_early_stopping():
    source = chain.clustered()
    before = chain.kernels(chain.load(source))
    # Early stopping restores the best epoch's weights: they must be clustered too.
    stage, inputs = _fine_tune(source, epochs=10,
                               early_stopping={"monitor": "val_accuracy", "patience": 0, "min_delta": 1.0})
    logs: list[str] = []
    artifact = chain.run(stage, chain.shared_env(), inputs, logs=logs)
    assert any(re.fullmatch(r"keeping [2-8] unique values of dense1 \(it is clustered: \d+ weights share them\)",
                            line) for line in logs), logs
    after = chain.kernels(chain.load(artifact))
    assert artifact.metrics()["epochs_run"] == 2
    for name, old in before.items():
        assert np.unique(after[name]).size <= np.unique(old).size <= 8, name
        assert not np.array_equal(after[name], old), f"{name} did not train"
    assert artifact.metrics()["kernels"]["dense1"]["unique"] <= 8


def test_equal_values_of_a_fresh_model_are_not_taken_for_clusters(tmp_path):
    env = Environment(pipeline_dir=tmp_path, seed=0, datasets={"digits": SklearnDigits(limit=300)})
    base = chain.run(LoadStage(builder="compressflow.models:small_cnn"), env, name="base")
    dense1 = chain.kernels(chain.load(base))["dense1"]
    assert np.unique(dense1).size < dense1.size, "the fresh kernel has values that are equal by chance"
    stage, inputs = _fine_tune(base, epochs=1)
    logs: list[str] = []
    artifact = chain.run(stage, env, inputs, logs=logs)
    assert not [line for line in logs if "unique values" in line], logs
    assert artifact.metrics()["kept"] == []
    trained = chain.kernels(chain.load(artifact))["dense1"]
    # Weights equal by chance got different updates: not tied together.
    assert np.unique(trained).size > np.unique(dense1).size > 0.99 * dense1.size


def test_a_diverging_run_fails_clearly_and_saves_nothing(tmp_path):
    from compressflow.errors import StageFailed

    env = Environment(pipeline_dir=tmp_path, seed=0,
                      datasets={"digits": SklearnDigits(limit=300, layout="flat", scale=100.0)})
    base = chain.run(LoadStage(builder="compressflow.models:mlp", args={"hidden": [64, 64, 64], "logits": True}),
                     env, name="base")
    stage, inputs = _fine_tune(base, optimizer="sgd", learning_rate=10.0)
    diverged = r"loss became (nan|inf) at epoch 1, batch \d+.*lower learning_rate \(now 10\)"
    with pytest.raises(StageFailed, match=diverged):
        chain.run(stage, env, inputs, out_root=tmp_path / "out")
    assert not list((tmp_path / "out").rglob("model.keras"))


def test_same_seed_same_weights_and_the_input_is_left_alone():
    source = chain.trained()
    digest = tree_sha256(source.path)
    stage, inputs = _fine_tune(source, epochs=1)
    first, again = (chain.load(chain.run(stage, chain.shared_env(), inputs, name="tuned")) for _ in range(2))
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], chain.load(source).get_weights()[0])
    assert tree_sha256(source.path) == digest
