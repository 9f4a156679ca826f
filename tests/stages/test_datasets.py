"""Datasets: deterministic splits, options, npz files and TensorFlow-free fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from compressflow.data.datasets import (NpzDataset, PythonDataset, SklearnDigits, load_splits,
                                        module_source_fingerprint)
from compressflow.errors import UsageError
from compressflow.stages.base import Environment


def _env(tmp_path, seed=0, **datasets):
    return Environment(pipeline_dir=tmp_path, seed=seed, datasets=datasets)


def test_digits_split_is_deterministic_disjoint_and_seeded(tmp_path):
    digits = SklearnDigits()
    first, again = load_splits(digits, _env(tmp_path)), load_splits(digits, _env(tmp_path))
    other = load_splits(digits, _env(tmp_path, seed=1))
    assert first.x_train.shape == (1438, 8, 8, 1) and first.x_val.shape == (359, 8, 8, 1)
    assert first.num_classes == 10 and first.x_train.dtype == np.float32
    np.testing.assert_array_equal(first.x_train, again.x_train)
    assert not np.array_equal(first.y_train, other.y_train)
    train_rows = {row.tobytes() for row in first.x_train}
    assert sum(row.tobytes() in train_rows for row in first.x_val) < 5  # a few digits images are duplicates
    assert 0.0 <= first.x_train.min() and first.x_train.max() <= 1.0


def test_options_limit_layout_and_no_validation(tmp_path):
    splits = load_splits(SklearnDigits(limit=100, layout="flat", validation_fraction=0.0), _env(tmp_path))
    assert splits.x_train.shape == (100, 64) and len(splits.x_val) == 0
    assert splits.num_classes == 10


def test_npz_dataset_and_its_fingerprint(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.arange(40, dtype="float32").reshape(10, 4), y=np.arange(10) % 2)
    dataset = NpzDataset(path="data.npz", validation_fraction=0.3)
    splits = load_splits(dataset, _env(tmp_path))
    assert splits.x_train.shape == (7, 4) and splits.num_classes == 2
    before = dataset.fingerprint(_env(tmp_path))
    np.savez(tmp_path / "data.npz", x=np.ones((10, 4), "float32"), y=np.arange(10) % 2)
    assert dataset.fingerprint(_env(tmp_path)) != before
    with pytest.raises(KeyError, match="no array 'labels'"):
        load_splits(NpzDataset(path="data.npz", y_key="labels"), _env(tmp_path))
    with pytest.raises(UsageError, match="outside the pipeline's folder"):
        NpzDataset(path="../data.npz").fingerprint(_env(tmp_path))


def test_module_fingerprint_reads_sources_without_importing(tmp_path, monkeypatch):
    package = tmp_path / "datapkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "make.py").write_text("def arrays():\n    return [[0.0]], [0]\n")
    (package / "helpers.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module_print, package_print = module_source_fingerprint("datapkg.make"), module_source_fingerprint("datapkg")
    assert len(module_print) == 64 and len(package_print) == 64
    (package / "helpers.py").write_text("X = 2\n")
    assert module_source_fingerprint("datapkg.make") == module_print  # only the module's own file
    assert module_source_fingerprint("datapkg") != package_print      # a package: its folder's modules
    assert module_source_fingerprint("datapkg.missing") is None
    assert module_source_fingerprint("no_such_top_level") is None
    fingerprint = PythonDataset(function="datapkg.make:arrays").fingerprint(_env(tmp_path))
    assert fingerprint["source"] == module_print


def test_nan_or_inf_in_an_npz_dataset_names_the_split_samples_and_positions(tmp_path):
    from compressflow.data.checks import DataError

    x = np.ones((10, 8, 8, 1), "float32")
    x[[2, 7], 3, 3, 0] = np.nan
    x[7, 0, 5, 0] = np.inf
    np.savez(tmp_path / "data.npz", x=x, y=np.arange(10) % 2)
    env = _env(tmp_path, broken=NpzDataset(path="data.npz", shuffle=False, validation_fraction=0.0))
    with pytest.raises(DataError) as caught:
        load_splits(env.datasets["broken"], env)
    message = str(caught.value)
    assert message.startswith("dataset 'broken' ")
    assert "train split: inputs hold NaN and inf in 2 of 10 samples (samples 2, 7 " in message
    assert "at 2 feature positions: (0, 5, 0), (3, 3, 0)" in message
    assert "validation" not in message and "nan_to_num" in message


def test_inf_in_the_validation_split_of_a_python_dataset_is_refused(tmp_path, monkeypatch):
    from compressflow.data.checks import DataError

    (tmp_path / "overflowing_data.py").write_text(
        "import numpy as np\n\n"
        "def arrays():\n"
        "    x = np.zeros((20, 6))\n"
        "    x[19, 4] = np.inf\n"
        "    y = np.arange(20.0) % 3\n"
        "    y[18] = np.nan\n"
        "    return x, y\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    dataset = PythonDataset(function="overflowing_data:arrays", shuffle=False, validation_fraction=0.25)
    env = _env(tmp_path, made=dataset)
    with pytest.raises(DataError, match=r"dataset 'made' holds values no model can use; "
                                        r"validation split: inputs hold inf in 1 of 5 samples \(samples 19 of the "
                                        r"dataset as loaded\), at 1 feature position: \(4,\); "
                                        r"validation split: labels hold NaN in 1 of 5 samples \(samples 18 "):
        load_splits(dataset, env)
    clean = load_splits(PythonDataset(function="overflowing_data:arrays", limit=15, shuffle=False), env)
    assert np.isfinite(clean.x_train).all() and len(clean.x_val) == 3
