"""The check's dataset shapes come cheap: array headers and configs, no TensorFlow."""

from __future__ import annotations

import numpy as np

from compressflow.data.datasets import ImageDirectory, NpzDataset, SklearnDigits
from compressflow.preflight.data_shapes import DataShape, data_shape
from compressflow.stages.base import Environment


def test_npz_shape_comes_from_the_array_header_and_classes_from_the_labels(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((7, 12, 12, 3), dtype="float32"), y=np.array([0, 1, 2, 5, 1, 0, 2]))
    found = data_shape(NpzDataset(path="d.npz"), Environment(pipeline_dir=tmp_path))
    assert found == DataShape((12, 12, 3), 6)


def test_float_labels_have_no_classes_and_a_missing_key_is_unknown(tmp_path):
    np.savez(tmp_path / "r.npz", x=np.zeros((4, 3), dtype="float32"), y=np.linspace(0, 1, 4))
    env = Environment(pipeline_dir=tmp_path)
    assert data_shape(NpzDataset(path="r.npz"), env) == DataShape((3,), None)
    assert data_shape(NpzDataset(path="r.npz", x_key="inputs"), env) is None


def test_digits_layouts_and_image_folders(tmp_path):
    env = Environment(pipeline_dir=tmp_path)
    assert data_shape(SklearnDigits(layout="flat"), env) == DataShape((64,), 10)
    assert data_shape(SklearnDigits(), env) == DataShape((8, 8, 1), 10)
    for name in ("cat", "dog", "eel"):
        (tmp_path / "images" / name).mkdir(parents=True)
    images = ImageDirectory(path="images", image_size=(32, 24), color_mode="grayscale")
    assert data_shape(images, env) == DataShape((32, 24, 1), 3)
