"""Shared test configuration.

Tests marked ``tf`` need TensorFlow, tf-keras and tfmot (the ``[tf]`` extra). Deselect them
with ``-m "not tf"`` to run the core suite without TensorFlow; when they are selected and
TensorFlow is missing they fail instead of silently skipping.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    """One folder per session for what parallel test processes share (see tests/stages/stage_chain.py)."""
    if not hasattr(config, "workerinput") and "COMPRESSFLOW_TEST_SHARED_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="cf-test-session-")
        os.environ["COMPRESSFLOW_TEST_SHARED_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("tensorflow") is not None:
        return
    for item in items:
        if "tf" in item.keywords:
            item.add_marker(pytest.mark.usefixtures("_tensorflow_required"))


@pytest.fixture
def _tensorflow_required():
    pytest.fail("this test needs TensorFlow; install the [tf] extra or deselect with -m 'not tf'")


# Toy stage types for core tests; subprocesses get them through COMPRESSFLOW_PLUGINS.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
sys.path.insert(0, TESTS_DIR)
os.environ["COMPRESSFLOW_PLUGINS"] = ",".join(
    filter(None, [os.environ.get("COMPRESSFLOW_PLUGINS", ""), "toy_stages"]))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH", "")]))

# Fixtures of an S3-compatible server on 127.0.0.1 (s3_endpoint, s3_url), for remote cache tests;
# the toy pipeline of the progress, record, report and tracking tests (shop).
pytest_plugins = ["s3_server", "experience_helpers"]
