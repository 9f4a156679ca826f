"""prune: schedules reach their target, m-by-n and block patterns, layer selection, stripped output."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from compressflow.errors import StageFailed
from compressflow.stages.prune import ConstantSchedule, PolynomialDecaySchedule, PruneStage, schedule_steps

import stage_chain as chain


def _prune(**options) -> PruneStage:
    return PruneStage(model="trained", data="digits", **{"epochs": 1, **options})


def _sparsity(array: np.ndarray) -> float:
    return float(np.mean(array == 0))


@pytest.mark.tf
def test_constant_schedule_reaches_the_target_and_output_is_stripped():
    from compressflow.stages.tfutil import keras

    artifact = chain.pruned()
    model = chain.load(artifact)
    assert {type(layer).__module__.split(".")[0] for layer in model.layers} == {"tf_keras"}
    kernels = chain.kernels(model)
    metrics = artifact.metrics()
    assert set(metrics["layers"]) == {"conv1", "conv2", "dense1", "probs"}
    for name, value in metrics["layers"].items():
        assert value == pytest.approx(_sparsity(kernels[name]))
        assert abs(value - 0.7) <= 0.01, name
    assert abs(metrics["sparsity"] - 0.7) <= 0.01 and artifact.meta["sparsity"] == metrics["sparsity"]
    assert metrics["target_sparsity"] == 0.7 and metrics["val_accuracy"] > 0.8
    assert metrics["schedule"]["end_step"] <= metrics["schedule"]["total_steps"]
    # The stage pruned its own copy: the trained model it read is still dense.
    assert all(_sparsity(k) < 0.01 for k in chain.kernels(chain.load(chain.trained())).values())
    assert isinstance(model, keras().Model)


@pytest.mark.tf
def test_polynomial_decay_over_selected_layers_ends_when_asked():
    stage = _prune(epochs=2, include=["conv*", "dense*"], exclude=["conv1"],
                   schedule={"type": "polynomial_decay", "initial_sparsity": 0.3, "final_sparsity": 0.6,
                             "end_epoch": 1})
    artifact = chain.run(stage, chain.shared_env(), {"model": chain.trained()})
    metrics, kernels = artifact.metrics(), chain.kernels(chain.load(artifact))
    assert set(metrics["layers"]) == {"conv2", "dense1"}
    unselected = "not selected by include/exclude"
    assert metrics["skipped"] == {"conv1": unselected, "probs": unselected}
    assert abs(metrics["sparsity"] - 0.6) <= 0.01
    assert _sparsity(kernels["conv1"]) == 0 and _sparsity(kernels["probs"]) == 0
    steps_per_epoch = metrics["schedule"]["total_steps"] // 2
    assert metrics["schedule"]["end_step"] <= steps_per_epoch


@pytest.mark.tf
def test_two_by_four_pattern_along_input_channels_and_determinism():
    stage = _prune(sparsity_m_by_n=(2, 4))
    first = chain.run(stage, chain.shared_env(), {"model": chain.trained()}, name="two_four")
    again = chain.run(stage, chain.shared_env(), {"model": chain.trained()}, name="two_four")
    metrics = first.metrics()
    assert "input channels" in metrics["skipped"]["conv1"]  # 1 input channel: no groups of 4
    assert set(metrics["layers"]) == {"conv2", "dense1", "probs"}
    model = chain.load(first)
    for name in metrics["layers"]:
        kernel = chain.kernels(model)[name]
        # Conv2D (h, w, in, out) and Dense (in, out): groups of 4 consecutive input channels.
        rows = np.moveaxis(kernel, -1, 0).reshape(-1, kernel.shape[-2])
        zeros_per_group = (rows.reshape(rows.shape[0], -1, 4) == 0).sum(axis=-1)
        assert zeros_per_group.min() >= 2, name
        assert metrics["layers"][name] == pytest.approx(0.5)
    for a, b in zip(model.get_weights(), chain.load(again).get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.tf
def test_block_sparsity_zeroes_whole_blocks_of_dense_kernels():
    stage = _prune(block_size=(1, 4), include=["dense1"], schedule={"type": "constant", "target_sparsity": 0.5})
    artifact = chain.run(stage, chain.shared_env(), {"model": chain.trained()})
    kernel = chain.kernels(chain.load(artifact))["dense1"]
    blocks = kernel.reshape(kernel.shape[0], -1, 4)
    zero_blocks, any_zero = (blocks == 0).all(axis=-1), (blocks == 0).any(axis=-1)
    assert np.array_equal(zero_blocks, any_zero)
    assert abs(_sparsity(kernel) - 0.5) <= 0.01

    convs_only = _prune(block_size=(1, 4), include=["conv*"], schedule={"type": "constant", "target_sparsity": 0.5})
    with pytest.raises(StageFailed, match=r"no layer to prune.*2-D kernels"):
        chain.run(convs_only, chain.shared_env(), {"model": chain.trained()})


def _batch_norm_cnn(tmp_path):
    """A load artifact: three Conv2D + BatchNormalization pairs and a Dense head, saved as a .keras file."""
    from compressflow.data.datasets import SklearnDigits
    from compressflow.stages.base import Environment
    from compressflow.stages.load import LoadStage
    from compressflow.stages.tfutil import keras

    k = keras()
    x = inputs = k.Input((8, 8, 1))
    for i in (1, 2, 3):
        x = k.layers.BatchNormalization(name=f"bn{i}")(k.layers.Conv2D(8, 3, padding="same", name=f"conv{i}")(x))
    outputs = k.layers.Dense(10, activation="softmax", name="probs")(k.layers.Flatten()(x))
    k.Model(inputs, outputs).save(tmp_path / "bn.keras")
    env = Environment(pipeline_dir=tmp_path, seed=0, datasets={"digits": SklearnDigits(limit=200)})
    return env, chain.run(LoadStage(path="bn.keras"), env, name="base")


@pytest.mark.tf
def test_layers_skipped_for_one_reason_are_one_line_and_their_names_go_to_stderr(tmp_path, capsys):
    from compressflow.stages.cluster import ClusterStage

    env, base = _batch_norm_cnn(tmp_path)
    logs: list[str] = []
    pruned = chain.run(_prune(schedule={"type": "constant", "target_sparsity": 0.5}), env, {"model": base},
                       name="pruned", logs=logs)
    clustered = chain.run(ClusterStage(model="base", data="digits", number_of_clusters=4, epochs=0), env,
                          {"model": base}, name="clustered", logs=logs)
    skipped = [line for line in logs if line.startswith("not ")]
    assert skipped == [
        "not pruning 3 layers (BatchNormalization x3): has no prunable weights; --verbose lists them",
        "not clustering 3 layers (BatchNormalization x3): has no clusterable weights; --verbose lists them"]
    assert set(pruned.metrics()["layers"]) == {"conv1", "conv2", "conv3", "probs"}
    for artifact in (pruned, clustered):
        assert sorted(artifact.metrics()["skipped"]) == ["bn1", "bn2", "bn3"]
    stderr = capsys.readouterr().err
    assert "  [pruned] not pruning these 3 layers (has no prunable weights): bn1, bn2, bn3\n" in stderr
    assert "  [clustered] not clustering these 3 layers (has no clusterable weights): bn1, bn2, bn3\n" in stderr


# --------------------------------------------------------------------------- schedule arithmetic (no TensorFlow)


def test_schedule_end_defaults_to_the_end_of_training_on_an_update_step():
    logs: list[str] = []
    steps = schedule_steps(PolynomialDecaySchedule(final_sparsity=0.8), total_steps=135, steps_per_epoch=45,
                           log=logs.append)
    assert steps == {"begin_step": 0, "end_step": 130, "frequency": 13, "total_steps": 135}
    assert schedule_steps(ConstantSchedule(target_sparsity=0.5, frequency=100), 45, 45, logs.append)["frequency"] == 45


def test_schedule_end_after_training_is_moved_into_it():
    logs: list[str] = []
    schedule = PolynomialDecaySchedule(final_sparsity=0.8, begin_epoch=1, end_step=1000, frequency=10)
    steps = schedule_steps(schedule, total_steps=90, steps_per_epoch=45, log=logs.append)
    assert steps["begin_step"] == 45 and steps["end_step"] == 85 and steps["end_step"] <= 90
    assert any("after the last training step" in line for line in logs)


def test_schedule_that_cannot_happen_is_refused():
    with pytest.raises(StageFailed, match="begin at step 100 but training has only 45 steps"):
        schedule_steps(ConstantSchedule(target_sparsity=0.5, begin_step=100), 45, 45, print)
    with pytest.raises(StageFailed, match="must end after it begins"):
        schedule_steps(PolynomialDecaySchedule(final_sparsity=0.5, begin_step=10, end_step=10), 45, 45, print)


def test_config_validation():
    with pytest.raises(ValidationError, match="exactly one of 'schedule' or 'sparsity_m_by_n'"):
        PruneStage(model="m", data="d")
    with pytest.raises(ValidationError, match="0 < m < n"):
        PruneStage(model="m", data="d", sparsity_m_by_n=(4, 2))
    with pytest.raises(ValidationError, match="early_stopping does not go with prune"):
        PruneStage(model="m", data="d", sparsity_m_by_n=(2, 4), early_stopping={})
    with pytest.raises(ValidationError):
        PruneStage(model="m", data="d", schedule={"type": "constant", "target_sparsity": 1.0})
