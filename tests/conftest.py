"""Shared test configuration.

Tests marked ``tf`` need TensorFlow, tf-keras and tfmot (the ``[tf]`` extra). Deselect them
with ``-m "not tf"`` to run the core suite without TensorFlow; when they are selected and
TensorFlow is missing they fail instead of silently skipping.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("tensorflow") is not None:
        return
    for item in items:
        if "tf" in item.keywords:
            item.add_marker(pytest.mark.usefixtures("_tensorflow_required"))


@pytest.fixture
def _tensorflow_required():
    pytest.fail("this test needs TensorFlow; install the [tf] extra or deselect with -m 'not tf'")
