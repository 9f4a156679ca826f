"""A python dataset returning tf.data pipelines (or a dict of splits) streams through the stages."""

from __future__ import annotations

import numpy as np
import pytest

from compressflow.data.checks import DataError
from compressflow.data.datasets import PythonDataset, load_splits
from compressflow.data.streams import StreamedInputs, StreamSplits
from compressflow.errors import StageFailed
from compressflow.stages.base import Environment
from compressflow.stages.fine_tune import FineTuneStage

import stream_chain
from stream_chain import CALIBRATION, accuracy, digits_arrays

pytestmark = pytest.mark.tf

TRAIN = 480
SOURCE = '''
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits


def arrays(count=600):
    digits = load_digits()
    return digits.images[:count, :, :, None].astype("float32"), digits.target[:count].astype("int64")


def splits(count=600, train=480, poison=None):
    x, y = arrays(count)
    if poison is not None:
        x[train + poison, 3, 4, 0] = np.nan
    return {"train": tf.data.Dataset.from_tensor_slices((x[:train], y[:train])).batch(50),  # batches
            "validation": tf.data.Dataset.from_tensor_slices((x[train:], y[train:]))}       # pairs


def one_stream():
    x, y = arrays()
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def train_only():
    return {"train": one_stream()}


def array_dict():
    x, y = arrays(100)
    return {"train": (x[:80], y[:80]), "validation": (x[80:], y[80:])}
'''


@pytest.fixture
def module(tmp_path, monkeypatch, request):
    """A module of dataset functions beside the pipeline, under a name of its own (imports are cached)."""
    name = f"stream_data_{request.node.name.split('[')[0]}"
    (tmp_path / f"{name}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _env(tmp_path, dataset) -> Environment:
    return Environment(pipeline_dir=tmp_path, seed=0, datasets={"digits": dataset})


def test_dict_of_tf_data_splits_goes_through_fine_tune_prune_int8_and_evaluate(tmp_path, module):
    dataset = PythonDataset(function=f"{module}:splits", scale=1 / 16)
    env = _env(tmp_path, dataset)
    splits = load_splits(dataset, env)
    assert isinstance(splits, StreamSplits) and splits.has_validation
    assert splits.sample_shape == (8, 8, 1) and splits.count("train") == TRAIN and splits.num_classes == 10
    logs: list[str] = []
    found = stream_chain.compress(env, logs)
    x, y = digits_arrays()
    x_val, y_val = x[TRAIN:], y[TRAIN:]

    trained = found["trained"].metrics()
    assert trained["val_accuracy"] > 0.6, trained  # it learned from the stream
    # the streamed evaluation is the model's accuracy on the validation samples
    assert trained["val_accuracy"] == pytest.approx(accuracy(found["trained"].file(), x_val, y_val), abs=1e-6)
    assert any("task: classification (inferred for dataset 'digits': integer labels" in line for line in logs)

    assert found["pruned"].metrics()["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert found["int8"].meta["representative_samples"] == CALIBRATION

    check = found["check"].metrics()
    assert check["data"]["samples"] == len(y_val)
    models = check["models"]
    assert models["trained"]["accuracy"] == pytest.approx(trained["val_accuracy"], abs=1e-6)
    assert models["pruned"]["accuracy"] == pytest.approx(accuracy(found["pruned"].file(), x_val, y_val), abs=1e-6)
    assert abs(models["int8"]["accuracy"] - models["pruned"]["accuracy"]) < 0.05
    assert models["int8"]["compression"] > 2


def test_calibration_samples_are_the_first_training_samples_in_order(tmp_path, module):
    dataset = PythonDataset(function=f"{module}:splits", scale=1 / 16)
    splits = load_splits(dataset, _env(tmp_path, dataset))
    x, _ = digits_arrays()
    np.testing.assert_allclose(splits.calibration_samples(70), x[:70], rtol=1e-6)
    np.testing.assert_allclose(splits.validation_samples(5), x[TRAIN:TRAIN + 5], rtol=1e-6)
    inputs, labels = splits.evaluation_data("validation")
    assert isinstance(inputs, StreamedInputs) and len(inputs) == len(labels) == 600 - TRAIN
    assert [len(batch) for batch in inputs.batches(100)] == [100, 20]
    batches = list(splits.train_stream(64, seed=3))
    assert sum(len(yb) for _, yb in batches) == TRAIN and len(batches[0][1]) == 64
    with pytest.raises(StageFailed, match="read as a stream"):
        splits.x_train  # noqa: B018 - a stage that needs arrays is told so


def test_nan_in_a_streamed_split_fails_the_stage_naming_dataset_and_split(tmp_path, module):
    dataset = PythonDataset(function=f"{module}:splits", args={"poison": 7}, scale=1 / 16)
    env = _env(tmp_path, dataset)
    stream_chain.run(stream_chain.LoadStage(builder="compressflow.models:small_cnn",
                                            args={"filters": [4], "dense": 8}), env, name="base")
    base = next((tmp_path / "outputs").iterdir())
    from compressflow.stages.base import Artifact

    with pytest.raises(DataError, match=r"dataset 'digits' holds values no model can use; validation split: "
                                        r"inputs hold NaN or inf"):
        stream_chain.run(FineTuneStage(model="base", data="digits", epochs=1),
                         env, {"model": Artifact.read("base", "0" * 64, base)}, name="trained")


def test_a_stream_without_validation_needs_validation_fraction_zero(tmp_path, module):
    for function in ("one_stream", "train_only"):
        dataset = PythonDataset(function=f"{module}:{function}")
        with pytest.raises(StageFailed, match=r"returned no 'validation' split.*`validation_fraction: 0`"):
            load_splits(dataset, _env(tmp_path, dataset))
    dataset = PythonDataset(function=f"{module}:one_stream", validation_fraction=0)
    splits = load_splits(dataset, _env(tmp_path, dataset))
    assert not splits.has_validation and splits.count("train") == 600 and splits.validation_stream() is None


def test_a_dict_of_arrays_gives_array_splits_and_plain_arrays_are_split_as_before(tmp_path, module):
    dataset = PythonDataset(function=f"{module}:array_dict", scale=0.5)
    splits = load_splits(dataset, _env(tmp_path, dataset))
    x, y = digits_arrays(100)
    assert splits.x_train.shape == (80, 8, 8, 1) and splits.x_val.shape == (20, 8, 8, 1)
    np.testing.assert_allclose(splits.x_val, x[80:] * 16 * 0.5)  # validation as given, scaled
    assert sorted(splits.y_train.tolist()) == sorted(y[:80].tolist())  # the training split, shuffled
    plain = PythonDataset(function=f"{module}:arrays", args={"count": 100})
    arrays = load_splits(plain, _env(tmp_path, plain))
    assert arrays.x_train.shape == (80, 8, 8, 1) and arrays.x_val.shape == (20, 8, 8, 1)
    order = np.random.default_rng(0).permutation(100)  # the seeded split arrays have always had
    np.testing.assert_array_equal(arrays.y_val, y[order][80:])


def test_cluster_distill_and_qat_train_on_a_stream(tmp_path, module):
    from compressflow.stages.base import Artifact
    from compressflow.stages.cluster import ClusterStage
    from compressflow.stages.distill import DistillStage
    from compressflow.stages.load import LoadStage
    from compressflow.stages.quantize import QuantizeStage

    dataset = PythonDataset(function=f"{module}:splits", scale=1 / 16)
    env = _env(tmp_path, dataset)
    teacher = stream_chain.run(LoadStage(builder="compressflow.models:small_cnn",
                                         args={"filters": [8, 16], "dense": 32}), env, name="teacher")
    student = stream_chain.run(LoadStage(builder="compressflow.models:tiny_cnn", args={"filters": 4}), env,
                               name="student")
    clustered = stream_chain.run(ClusterStage(model="teacher", data="digits", number_of_clusters=8, epochs=1),
                                 env, {"model": teacher}, name="clustered")
    metrics = clustered.metrics()
    assert {"val_loss", "val_accuracy"} <= set(metrics) and max(metrics["unique_weights"].values()) <= 8
    distilled = stream_chain.run(DistillStage(teacher="teacher", student="student", data="digits", epochs=1),
                                 env, {"teacher": teacher, "student": student}, name="distilled")
    assert distilled.metrics()["epochs_run"] == 1 and "val_accuracy" in distilled.metrics()
    qat = stream_chain.run(QuantizeStage(model="teacher", method="qat", data="digits", epochs=1),
                           env, {"model": teacher}, name="qat")
    assert isinstance(qat, Artifact) and qat.meta["epochs_run"] == 1
