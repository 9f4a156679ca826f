"""A FIFO, a device or a folder where a pipeline names a file is refused at once, never opened and waited on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forked_cli import ForkServer

HEAD = "version: 1\nname: t\ndatasets:\n  digits: {type: sklearn_digits}\n"
STAGES = "stages:\n  base: {type: load, builder: 'compressflow.models:small_cnn'}\n"
TIMEOUT = 30  # a hang guard: opening a FIFO without a writer never returns


@pytest.fixture(scope="module")
def server():
    forks = ForkServer()
    yield forks
    forks.close()


def _validate(server: ForkServer, folder: Path):
    outcome = server.run("validate", "pipeline.yaml", cwd=folder, timeout=TIMEOUT, memory=2 * 1024**3)
    assert not outcome.timed_out, "validate waited on a FIFO"
    assert outcome.code == 2, outcome.text
    assert "Traceback" not in outcome.text
    return outcome.text


def test_an_include_that_is_a_fifo_is_refused_where_it_is_included(server, tmp_path: Path):
    os.mkfifo(tmp_path / "shared.yaml")
    (tmp_path / "pipeline.yaml").write_text(HEAD + "include: [shared.yaml]\n" + STAGES)
    text = _validate(server, tmp_path)
    assert "pipeline.yaml:5:11" in text
    assert "shared.yaml is a FIFO (named pipe), not a YAML file" in text


def test_a_recipe_that_is_a_fifo_is_refused_where_it_is_used(server, tmp_path: Path):
    os.mkfifo(tmp_path / "recipe.yaml")
    (tmp_path / "pipeline.yaml").write_text(HEAD + STAGES + "  tuned: {type: pipeline, path: recipe.yaml}\n")
    text = _validate(server, tmp_path)
    assert "pipeline.yaml:7:" in text
    assert "recipe.yaml is a FIFO (named pipe), not a YAML file" in text


def test_a_model_file_that_is_a_fifo_is_refused_at_its_field(server, tmp_path: Path):
    os.mkfifo(tmp_path / "model.keras")
    (tmp_path / "pipeline.yaml").write_text(HEAD + "stages:\n  base: {type: load, path: model.keras}\n")
    text = _validate(server, tmp_path)
    assert "pipeline.yaml:6:" in text
    assert "'model.keras' is a FIFO (named pipe), not a regular file" in text


def test_a_pipeline_path_that_is_a_device_is_refused(server, tmp_path: Path):
    (tmp_path / "pipeline.yaml").symlink_to("/dev/zero")
    assert "is a device, not a YAML file" in _validate(server, tmp_path)
