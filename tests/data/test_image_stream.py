"""image_directory streams from disk: split by file list, decoded once per machine, flat memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from compressflow.data.datasets import ImageDirectory, load_splits
from compressflow.data.decoded_images import DECODE_LOG_ENV, FOLDER, decoded_key, decoded_streams
from compressflow.data.image_folder import ImageFolderSplits, split_folder
from compressflow.errors import StageFailed
from compressflow.fingerprints import tree_sha256
from compressflow.stages.base import Environment

from helpers import cli
from image_folders import write_folder, write_pipeline


def _env(tmp_path: Path, dataset, *, cache: bool = True, seed: int = 3) -> Environment:
    return Environment(pipeline_dir=tmp_path, seed=seed, datasets={"shapes": dataset},
                       local_cache=tmp_path / "cache" if cache else None)


def _arrays(splits, split: str):
    pairs = [(x.numpy(), y.numpy()) for x, y in splits.split_stream(split)]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def _decoded(log: Path) -> Counter:
    return Counter(line.split("\t")[1] for line in log.read_text().splitlines()) if log.exists() else Counter()


@pytest.mark.tf
@pytest.mark.parametrize("cache", [True, False], ids=["decoded-copy", "from-files"])
def test_streamed_splits_hold_what_keras_gives_shuffled_cut_and_split_as_arrays_were(tmp_path, cache):
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    write_folder(tmp_path / "images", 130, size=12)
    dataset = ImageDirectory(path="images", image_size=(10, 8), validation_fraction=0.25, limit=120)
    splits = load_splits(dataset, _env(tmp_path, dataset, cache=cache))
    assert isinstance(splits, ImageFolderSplits)
    keras_ds = tf.keras.utils.image_dataset_from_directory(str(tmp_path / "images"), image_size=(10, 8),
                                                           shuffle=False, batch_size=None, label_mode="int")
    x = np.stack([image.numpy() for image, _ in keras_ds]) / 255
    y = np.array([int(label) for _, label in keras_ds])
    order = np.random.default_rng(3).permutation(130)[:120]
    x, y = x[order], y[order]
    x_train, y_train = _arrays(splits, "train")
    x_val, y_val = _arrays(splits, "validation")
    np.testing.assert_allclose(x_train, x[:90], atol=1e-6)
    np.testing.assert_allclose(x_val, x[90:], atol=1e-6)
    assert (y_train == y[:90]).all() and (y_val == y[90:]).all()
    assert splits.count("train") == 90 and splits.count("validation") == 30 and splits.num_classes == 3
    assert (splits.evaluation_data("validation")[1] == y[90:]).all()
    np.testing.assert_allclose(splits.calibration_samples(5), x[:5], atol=1e-6)
    np.testing.assert_allclose(splits.x_val, x[90:], atol=1e-6)  # arrays still there for stages that need them


@pytest.mark.tf
def test_the_file_order_without_shuffle_is_class_folders_sorted_then_files_sorted(tmp_path):
    files = write_folder(tmp_path / "images", 9, size=4)
    folder = split_folder(tmp_path / "images", seed=0, shuffle=False, limit=None, validation_fraction=0, name="s")
    assert list(folder.train) == sorted(files) and folder.class_names == ("c0", "c1", "c2")
    assert list(folder.train_labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.mark.tf
def test_a_copy_is_decoded_once_by_concurrent_readers_and_again_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv(DECODE_LOG_ENV, str(tmp_path / "decodes.log"))
    files = write_folder(tmp_path / "images", 60, size=8)
    folder = split_folder(tmp_path / "images", seed=0, shuffle=True, limit=None, validation_fraction=0.2, name="s")
    key = decoded_key(tree_sha256(tmp_path / "images"), folder, (8, 8), "rgb")
    found, errors = [], []

    def read():
        try:
            streams = decoded_streams(tmp_path / "cache", key, folder, (8, 8), "rgb", "shapes")
            found.append(np.concatenate([x.numpy() for x, _ in streams["train"].batch(64)]))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert not errors, errors
    assert _decoded(tmp_path / "decodes.log") == Counter(files)  # every image once, not once per reader
    assert all(np.array_equal(x, found[0]) for x in found) and found[0].shape == (48, 8, 8, 3)
    entry = tmp_path / "cache" / FOLDER / key
    assert json.loads((entry / "info.json").read_text())["images"] == {"train": 48, "validation": 12}
    with open(entry / "train.f32", "r+b") as damaged:
        damaged.truncate(100)
    read()
    assert not errors and np.array_equal(found[-1], found[0])
    assert sum(_decoded(tmp_path / "decodes.log").values()) == 2 * len(files)


@pytest.mark.tf
def test_a_file_that_is_not_an_image_fails_the_read_naming_it(tmp_path):
    write_folder(tmp_path / "images", 20, size=8)
    (tmp_path / "images" / "c1" / "broken.png").write_bytes(b"not a png at all")
    dataset = ImageDirectory(path="images", image_size=(8, 8), shuffle=False)
    with pytest.raises(StageFailed, match=r"images/c1/broken\.png is not an image TensorFlow can decode"):
        load_splits(dataset, _env(tmp_path, dataset))
    assert not list((tmp_path / "cache" / FOLDER).glob(".tmp-*"))  # the half-written copy is gone


def test_a_folder_without_images_fails_saying_what_it_found(tmp_path):
    (tmp_path / "images" / "empty").mkdir(parents=True)
    with pytest.raises(StageFailed, match=r"no image .* in the class sub-folders .* \(found 1 sub-folder\)"):
        split_folder(tmp_path / "images", seed=0, shuffle=True, limit=None, validation_fraction=0.2, name="s")


@pytest.mark.tf
def test_three_stages_reading_a_folder_decode_each_image_once_and_a_rerun_decodes_none(tmp_path):
    files = write_folder(tmp_path / "images", 240)
    pipeline = write_pipeline(tmp_path, runs=3)
    log = tmp_path / "decodes.log"
    env = {DECODE_LOG_ENV: str(log)}
    first = cli("run", pipeline, env=env, timeout=600)
    assert first.code == 0, first.text
    assert _decoded(log) == Counter(files)  # fine_tune, quantize (calibration) and evaluate: one decode each image
    write_pipeline(tmp_path, runs=4)  # a changed downstream stage
    second = cli("run", pipeline, env=env, timeout=600)
    assert second.code == 0, second.text
    assert "1 to run, 3 cached" in second.out, second.out
    assert sum(_decoded(log).values()) == len(files)


PEAK = textwrap.dedent("""
    import resource, subprocess, sys
    proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    sys.stderr.write(proc.stdout + proc.stderr)
""")


def _peak_rss_mib(pipeline: Path) -> float:
    """Peak RSS of ``compressflow run`` started by a small fresh parent (whose own memory it does not carry)."""
    result = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "compressflow", "run", str(pipeline)],
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "COMPRESSFLOW_NO_ENTRY_POINTS": "1"})
    code, peak_kib = result.stdout.split()
    assert code == "0", result.stderr
    return int(peak_kib) / 1024


@pytest.mark.tf
def test_training_and_calibrating_on_a_folder_larger_than_the_memory_allowed_does_not_load_it(tmp_path):
    size, large, small = 96, 3000, 600  # NOTE: the small folder fills every bounded buffer too
    write_folder(tmp_path / "large" / "images", large, size=size)
    write_folder(tmp_path / "small" / "images", small, size=size)
    decoded_mib = large * size * size * 3 * 4 / 2**20  # the float32 arrays of the whole folder: 316 MiB
    allowed_growth = decoded_mib / 4
    peaks = {name: _peak_rss_mib(write_pipeline(tmp_path / name, size=size)) for name in ("small", "large")}
    growth = peaks["large"] - peaks["small"]
    assert growth < allowed_growth, (f"peak RSS {peaks['large']:.0f} MiB with {large} images against "
                                     f"{peaks['small']:.0f} MiB with {small}: grew {growth:.0f} MiB, allowed "
                                     f"{allowed_growth:.0f} (the decoded folder is {decoded_mib:.0f} MiB)")
    # the run did train, calibrate and evaluate on every image: the decoded copy holds them all
    info = json.loads(next((tmp_path / "large" / ".compressflow" / "cache" / FOLDER).glob("*/info.json")).read_text())
    assert info["images"] == {"train": 2400, "validation": 600}
