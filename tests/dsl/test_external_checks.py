"""Paths that leave the pipeline's folder and code-carrying model files are refused while loading.

So `validate`, `plan` and `run` refuse them alike, located at the field at fault, before
anything runs (an export target outside used to be found only when publishing, after
training). No TensorFlow here: the model files are written by hand.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from compressflow.dsl import load_pipeline
from compressflow.errors import PipelineError

HEAD = "version: 1\nname: t\ndatasets:\n  digits: {type: sklearn_digits}\nstages:\n"
BASE = "  base: {type: load, builder: 'compressflow.models:small_cnn'}\n"


def problems(path: Path, **kwargs):
    with pytest.raises(PipelineError) as info:
        load_pipeline(path, **kwargs)
    return info.value.problems


def pipeline_in(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "p.yaml"
    path.write_text(HEAD + body)
    return path


def keras_zip(path: Path, layer_class: str) -> Path:
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"name": "x"}, "module": "keras.layers"},
        {"class_name": layer_class, "config": {"name": "evil", "function": "4wEAAAAAAAAA"},
         "module": "keras.layers"}]}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")
    return path


@pytest.mark.parametrize("target", ["../x.keras", "/tmp/elsewhere/x.keras", "~/x.keras", "a/../../x.keras"])
def test_export_target_outside_is_refused_at_the_field(tmp_path: Path, target: str):
    path = pipeline_in(tmp_path / "p", BASE + f"  release: {{type: export, model: base, to: '{target}'}}\n")
    (problem,) = problems(path)
    assert problem.path == ("stages", "release", "to")
    assert (problem.location.line, problem.location.column) == (7, 44)
    assert "outside the pipeline's folder" in problem.message and "allow_outside: true" in problem.message


def test_export_target_outside_is_allowed_when_asked(tmp_path: Path):
    body = BASE + "  release: {type: export, model: base, to: ../x.keras, allow_outside: true}\n"
    assert load_pipeline(pipeline_in(tmp_path / "p", body)).stages["release"].to == "../x.keras"
    body = BASE + "  release: {type: export, model: base, to: ../x.keras}\n"
    assert load_pipeline(pipeline_in(tmp_path / "q", body), allow_outside_paths=True)


def test_export_through_a_symlinked_folder_is_refused(tmp_path: Path):
    (tmp_path / "elsewhere").mkdir()
    folder = tmp_path / "p"
    path = pipeline_in(folder, BASE + "  release: {type: export, model: base, to: out/x.keras}\n")
    (folder / "out").symlink_to(tmp_path / "elsewhere")
    (problem,) = problems(path)
    assert problem.path == ("stages", "release", "to")


def test_model_and_dataset_paths_outside_are_each_reported(tmp_path: Path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "link.keras").symlink_to(keras_zip(tmp_path / "model.keras", "Dense"))
    path = folder / "p.yaml"
    path.write_text("version: 1\nname: t\ndatasets:\n  stolen: {type: npz, path: /etc/passwd}\nstages:\n"
                    "  a: {type: load, path: ../model.keras}\n  b: {type: load, path: link.keras}\n"
                    "  c: {type: fine_tune, model: a, data: stolen}\n")
    found = problems(path)
    assert sorted(p.path for p in found) == [("datasets", "stolen", "path"), ("stages", "a", "path"),
                                             ("stages", "b", "path")]
    assert [p.location.line for p in found] == [4, 6, 7]


def test_template_value_is_located_where_it_was_written(tmp_path: Path):
    body = ("templates:\n  out: {type: export, to: ../../x.keras}\nstages:\n" + BASE
            + "  release: {extends: out, model: base}\n")
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "p.yaml").write_text("version: 1\nname: t\n" + body)
    (problem,) = problems(folder / "p.yaml")
    assert problem.location.line == 4


@pytest.mark.parametrize("suffix", [".keras"])
def test_lambda_model_file_is_refused_naming_layer_and_opt_in(tmp_path: Path, suffix: str):
    folder = tmp_path / "p"
    folder.mkdir()
    keras_zip(folder / f"m{suffix}", "Lambda")
    path = pipeline_in(folder, f"  a: {{type: load, path: m{suffix}}}\n")
    (problem,) = problems(path)
    assert problem.path == ("stages", "a", "path")
    assert "layer 'evil' is a Lambda layer" in problem.message and "trust: true" in problem.message
    trusted = pipeline_in(folder, f"  a: {{type: load, path: m{suffix}, trust: true}}\n")
    assert load_pipeline(trusted).stages["a"].trust


def test_missing_or_corrupt_model_files_are_left_to_the_run(tmp_path: Path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "bad.keras").write_bytes(b"PK\x03\x04 truncated")
    path = pipeline_in(folder, "  a: {type: load, path: missing.keras}\n  b: {type: load, path: bad.keras}\n")
    assert set(load_pipeline(path).stages) == {"a", "b"}
