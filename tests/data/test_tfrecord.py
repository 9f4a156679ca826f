"""The tfrecord dataset type: records written here, streamed through the stages; its spec validated."""

from __future__ import annotations

import numpy as np
import pytest

from compressflow.data.datasets import load_splits
from compressflow.data.tfrecord import TfrecordDataset
from compressflow.stages.base import Environment

import stream_chain
from helpers import cli, write
from stream_chain import CALIBRATION, accuracy, digits_arrays

FEATURES = {"image": {"type": "image", "shape": [8, 8, 1]}, "label": {"type": "int"}}
TRAIN = 480


def _write_records(folder, count: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Digits as PNG-encoded `image` bytes and int `label`s: two training shards and a validation file."""
    import tensorflow as tf

    x, y = digits_arrays(count)
    pixels = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    folder.mkdir(exist_ok=True)
    parts = {"train-0.tfrecord": range(0, 240), "train-1.tfrecord": range(240, TRAIN),
             "val.tfrecord": range(TRAIN, count)}
    for name, indices in parts.items():
        with tf.io.TFRecordWriter(str(folder / name)) as writer:
            for i in indices:
                png = tf.io.encode_png(pixels[i]).numpy()
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[i])])),
                }))
                writer.write(example.SerializeToString())
    return pixels.astype(np.float32) / 255, y


def _dataset(**fields) -> TfrecordDataset:
    fields = {"train": ["records/train-*.tfrecord"], "validation": ["records/val.tfrecord"], "features": FEATURES,
              "scale": 1 / 255, **fields}
    return TfrecordDataset(**fields)


@pytest.mark.tf
def test_tfrecord_files_go_through_fine_tune_prune_int8_and_evaluate(tmp_path):
    x, y = _write_records(tmp_path / "records")
    dataset = _dataset()
    env = Environment(pipeline_dir=tmp_path, seed=0, datasets={"digits": dataset})
    splits = load_splits(dataset, env)
    assert splits.count("train") == TRAIN and splits.count("validation") == 600 - TRAIN
    np.testing.assert_allclose(splits.calibration_samples(3), x[:3], atol=1e-6)  # decoded, scaled, in file order
    found = stream_chain.compress(env)
    x_val, y_val = x[TRAIN:], y[TRAIN:]
    trained = found["trained"].metrics()
    assert trained["val_accuracy"] > 0.6, trained
    assert trained["val_accuracy"] == pytest.approx(accuracy(found["trained"].file(), x_val, y_val), abs=1e-6)
    assert found["pruned"].metrics()["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert found["int8"].meta["representative_samples"] == CALIBRATION
    models = found["check"].metrics()["models"]
    assert models["pruned"]["accuracy"] == pytest.approx(accuracy(found["pruned"].file(), x_val, y_val), abs=1e-6)
    assert abs(models["int8"]["accuracy"] - models["pruned"]["accuracy"]) < 0.05


@pytest.mark.tf
def test_the_fingerprint_is_the_bytes_of_the_matched_files(tmp_path):
    _write_records(tmp_path / "records", count=500)
    env = Environment(pipeline_dir=tmp_path, seed=0, datasets={})
    dataset = _dataset()
    before = dataset.fingerprint(env)
    assert sorted(before["train"]) == ["records/train-0.tfrecord", "records/train-1.tfrecord"]
    assert dataset.fingerprint(env) == before
    (tmp_path / "records" / "train-2.tfrecord").write_bytes(b"")  # a new shard the glob matches
    assert dataset.fingerprint(env) != before
    (tmp_path / "records" / "train-2.tfrecord").unlink()
    assert dataset.fingerprint(env) == before
    (tmp_path / "records" / "val.tfrecord").write_bytes(b"changed")
    assert dataset.fingerprint(env)["validation"] != before["validation"]


PIPELINE = """\
version: 1
name: records
datasets:
  digits:
    type: tfrecord
{fields}
stages:
  base: {{type: load, builder: "compressflow.models:small_cnn"}}
  trained: {{type: fine_tune, model: base, data: digits, epochs: 1}}
"""


@pytest.mark.parametrize("fields, line, expected", [
    ("    files: [r/*.tfrecord]\n    features: {image: {type: image, shape: [8, 8, 1]}, label: {type: int}}\n",
     4, "a stream of records is not split"),
    ("    train: [r/*.tfrecord]\n    features: {image: {type: image, shape: [8, 8]}, label: {type: int}}\n",
     7, "an image feature's shape is [height, width, channels]"),
    ("    train: [r/*.tfrecord]\n    features: {image: {type: image, shape: [8, 8, 1]}, y: {type: int}}\n",
     4, "label feature 'label' is not under `features`"),
    ("    train: [r/*.tfrecord]\n    features: {image: {type: text}, label: {type: int}}\n",
     7, "expected one of 'image', 'float', 'int'"),
    ("    train: [r/*.tfrecord]\n    features: {a: {type: float, shape: [3]}, b: {type: float}, "
     "label: {type: int}}\n", 4, "name the input feature with `input:`"),
], ids=["files_with_validation_fraction", "image_shape", "no_label", "unknown_feature_type", "which_input"])
def test_a_bad_feature_spec_exits_2_saying_where_and_what(tmp_path, fields, line, expected):
    path = write(tmp_path / "p.yaml", PIPELINE.format(fields=fields))
    result = cli("validate", path)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert f"{path}:{line}:" in result.err and expected in result.err, result.err


def test_globs_that_match_nothing_exit_2_at_validate_time(tmp_path):
    fields = ("    train: [records/train-*.tfrecord]\n    validation: [records/val.tfrecord]\n"
              "    features: {image: {type: image, shape: [8, 8, 1]}, label: {type: int}}\n")
    path = write(tmp_path / "p.yaml", PIPELINE.format(fields=fields))
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "val.tfrecord").write_bytes(b"")
    result = cli("validate", path)
    assert result.code == 2, result.text
    assert "no file matches 'records/train-*.tfrecord'" in result.err and "Traceback" not in result.text
    assert f"{path}:6:" in result.err, result.err


@pytest.mark.tf
@pytest.mark.parametrize("features, expected", [
    ({"image": {"type": "image", "shape": [16, 16, 1]}, "label": {"type": "int"}}, "is not compatible"),
    ({"image": {"type": "image", "shape": [8, 8, 1]}, "digit": {"type": "int"}}, "digit"),
], ids=["image_shape", "missing_feature"])
def test_records_that_do_not_fit_the_spec_fail_saying_what_to_check(tmp_path, features, expected):
    from compressflow.errors import StageFailed

    _write_records(tmp_path / "records", count=490)
    label = next(name for name, feature in features.items() if feature["type"] == "int")
    dataset = _dataset(features=features, label=label)
    env = Environment(pipeline_dir=tmp_path, seed=0, datasets={"digits": dataset})
    with pytest.raises(StageFailed, match=r"dataset 'digits': the first train record does not fit `features:` "
                                          rf"\(.*{expected}.*\); check each feature's name, type and shape"):
        load_splits(dataset, env)
