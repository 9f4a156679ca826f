"""A SavedModel folder with a link that leaves it is refused; a link within it is in the cache key.

TensorFlow follows a ``variables/`` link to weights elsewhere, but the load stage's key hashes the
folder's own files, so new weights behind the link would leave the plan ``cached`` and stale.
``validate`` and ``plan`` refuse such a folder (exit 2, naming the link and where it points);
a link to a folder inside the SavedModel is fine, and changing what it points at changes the key.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from compressflow.stages.base import Environment
from compressflow.stages.load import LoadStage
from helpers import cli, write

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A plain SavedModel (tf.saved_model.save) with one variable and a serving signature."""
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()

    class Scale(tf.Module):
        def __init__(self):
            super().__init__()
            self.factor = tf.Variable(tf.ones((4,)), name="factor")

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
        def __call__(self, x):
            return x * self.factor

    path = tmp_path_factory.mktemp("saved") / "scale"
    module = Scale()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    assert (path / "variables").is_dir()
    return path


def pipeline_for(folder: Path) -> Path:
    return write(folder / "pipeline.yaml", """
        version: 1
        name: linked
        stages:
          model: {type: load, path: model}
        """)


def test_variables_linked_to_a_folder_outside_the_saved_model_are_refused(saved_model, tmp_path):
    work, outside = tmp_path / "work", tmp_path / "elsewhere"
    shutil.copytree(saved_model, work / "model")
    outside.mkdir()
    shutil.move(work / "model" / "variables", outside / "variables")
    (work / "model" / "variables").symlink_to(outside / "variables", target_is_directory=True)
    pipeline = pipeline_for(work)

    for command in ("validate", "plan"):
        result = cli(command, pipeline)
        assert result.code == 2, result.text
        assert re.search(rf"{re.escape(str(pipeline))}:4:\d+: error: refusing to read model folder ", result.err)
        assert f"variables is a link to {outside / 'variables'}" in result.err, result.err
        assert "outside the model's folder" in result.err and "Traceback" not in result.text


def test_a_link_inside_the_saved_model_is_allowed_and_what_it_points_at_is_in_the_key(saved_model, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(saved_model, work / "model")
    shutil.move(work / "model" / "variables", work / "model" / "weights")
    (work / "model" / "variables").symlink_to("weights", target_is_directory=True)
    pipeline = pipeline_for(work)
    assert cli("validate", pipeline).code == 0

    stage, env = LoadStage(path="model"), Environment(pipeline_dir=work)
    before = stage.fingerprint(env)
    data = next((work / "model" / "weights").glob("variables.data-*"))
    data.write_bytes(bytes(reversed(data.read_bytes())))
    assert stage.fingerprint(env) != before
