"""Paths that leave the pipeline's folder and code-carrying model files are refused while loading.

So `validate`, `plan` and `run` refuse them alike, located at the field at fault, before
anything runs (an export target outside used to be found only when publishing, after
training). No TensorFlow here: the model files are written by hand.
"""

from __future__ import annotations

import json
import sys
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


def test_corrupt_model_files_are_left_to_the_run(tmp_path: Path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "bad.keras").write_bytes(b"PK\x03\x04 truncated")
    path = pipeline_in(folder, "  b: {type: load, path: bad.keras}\n")
    assert set(load_pipeline(path).stages) == {"b"}


def test_missing_model_file_is_refused_with_the_path_looked_for_and_a_close_name(tmp_path: Path):
    folder = tmp_path / "p"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "model.keras").write_bytes(b"PK")
    path = pipeline_in(folder, "  a: {type: load, path: models/model.kears}\n")
    (problem,) = problems(path)
    assert problem.path == ("stages", "a", "path")
    assert (problem.location.line, problem.location.column) == (6, 25)
    assert str(folder.resolve() / "models" / "model.kears") in problem.message
    assert problem.hint == "did you mean 'models/model.keras'?"


def test_a_misspelt_folder_is_corrected_too(tmp_path: Path):
    folder = tmp_path / "p"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "model.keras").write_bytes(b"PK")
    (problem,) = problems(pipeline_in(folder, "  a: {type: load, path: modls/model.keras}\n"))
    assert problem.hint == "did you mean 'models/model.keras'?"
    (problem,) = problems(pipeline_in(folder, "  a: {type: load, path: weights/model.keras}\n"))
    assert problem.hint == f"there is no folder {folder.resolve() / 'weights'}"


def test_without_a_close_name_the_folder_contents_are_listed(tmp_path: Path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "resnet.h5").write_bytes(b"x")
    (problem,) = problems(pipeline_in(folder, "  a: {type: load, path: mobilenet.keras}\n"))
    assert problem.hint == f"{folder.resolve()} holds: p.yaml, resnet.h5"


def test_an_allowed_absolute_path_is_suggested_absolute(tmp_path: Path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "digits.npz").write_bytes(b"x")
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "p.yaml").write_text("version: 1\nname: t\ndatasets:\n"
                                   f"  d: {{type: npz, path: {tmp_path}/shared/digit.npz}}\nstages:\n" + BASE)
    (problem,) = problems(folder / "p.yaml", allow_outside_paths=True)
    assert problem.path == ("datasets", "d", "path")
    assert problem.hint == f"did you mean '{tmp_path.resolve()}/shared/digits.npz'?"


@pytest.mark.parametrize("entry, field", [
    ("datasets:\n  d: {type: tfds, name: mnist, data_dir: tensorflow_datasets}\n", ("datasets", "d", "data_dir")),
    ("stages:\n  a: {type: load, application: MobileNetV2, weights: mobilenet.h5}\n", ("stages", "a", "weights")),
])
def test_every_path_field_must_lead_somewhere(tmp_path: Path, entry: str, field: tuple):
    folder = tmp_path / "p"
    folder.mkdir()
    path = folder / "p.yaml"
    path.write_text("version: 1\nname: t\n" + entry + ("stages:\n" + BASE if "stages" not in entry else ""))
    (problem,) = problems(path)
    assert problem.path == field and "does not exist" in problem.message


def test_sweep_variants_of_one_missing_file_are_reported_once(tmp_path: Path):
    path = pipeline_in(tmp_path / "p", "  a: {type: load, path: gone.keras, matrix: {trust: [true, false]}}\n")
    (problem,) = problems(path)
    assert problem.location.line == 6 and "gone.keras" in problem.message


def test_missing_files_are_reported_beside_other_mistakes(tmp_path: Path):
    path = pipeline_in(tmp_path / "p", "  a: {type: load, path: gone.keras}\n"
                                       "  b: {type: load, builder: 'm:f', tru: 1}\n")
    found = problems(path)
    assert [p.path for p in found] == [("stages", "a", "path"), ("stages", "b", "tru")]


def test_builder_module_beside_the_pipeline_is_found_without_importing_it(tmp_path: Path):
    folder = tmp_path / "p"
    (folder / "beside_pkg").mkdir(parents=True)
    (folder / "beside_nets.py").write_text("def build():\n    raise RuntimeError('never called')\n")
    (folder / "beside_pkg" / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    (folder / "beside_pkg" / "nets.py").write_text("def build():\n    return None\n")
    path = pipeline_in(folder, "  a: {type: load, builder: 'beside_nets:build'}\n"
                               "  b: {type: load, builder: 'beside_pkg.nets:build'}\n"
                               "  c: {type: load, builder: 'beside_pkg.nest:build'}\n"
                               "  d: {type: load, builder: 'beside_netz:build'}\n")
    package, top = problems(path)
    assert package.path == ("stages", "c", "builder")
    assert "package 'beside_pkg' has no module 'nest'" in package.message
    assert package.hint == "did you mean 'beside_pkg.nets:build'?"
    assert top.path == ("stages", "d", "builder") and str(folder.resolve()) in top.message
    assert top.hint == "did you mean 'beside_nets:build'?"
    assert "beside_nets" not in sys.modules and "beside_pkg" not in sys.modules


def test_missing_builder_module_or_function_gets_a_close_name(tmp_path: Path):
    path = pipeline_in(tmp_path / "p", "  a: {type: load, builder: 'compressflow.modls:small_cnn'}\n"
                                       "  b: {type: load, builder: 'compressflow.models:small_cnnn'}\n")
    module, function = problems(path)
    assert "no module 'compressflow.modls'" in module.message
    assert module.hint == "did you mean 'compressflow.models:small_cnn'?"
    assert "defines no 'small_cnnn'" in function.message and function.hint == "did you mean 'small_cnn'?"


def test_python_dataset_function_module_is_checked(tmp_path: Path):
    folder = tmp_path / "p"
    folder.mkdir()
    path = folder / "p.yaml"
    path.write_text("version: 1\nname: t\ndatasets:\n  mine: {type: python, function: 'no_such_arrays_qq:load'}\n"
                    "stages:\n" + BASE)
    (problem,) = problems(path)
    assert problem.path == ("datasets", "mine", "function")
    assert (problem.location.line, problem.location.column) == (4, 34)
    assert "no module 'no_such_arrays_qq'" in problem.message and str(folder.resolve()) in problem.message


def test_modules_that_bind_names_dynamically_or_do_not_parse(tmp_path: Path, monkeypatch):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "star_nets.py").write_text("from os.path import *\n")
    (folder / "lazy_nets.py").write_text("def __getattr__(name):\n    return print\n")
    (folder / "broken_nets.py").write_text("def build(:\n")
    monkeypatch.syspath_prepend(str(folder))
    path = pipeline_in(folder, "  a: {type: load, builder: 'star_nets:build'}\n"
                               "  b: {type: load, builder: 'lazy_nets:build'}\n"
                               "  c: {type: load, builder: 'broken_nets:build'}\n")
    (problem,) = problems(path)
    assert problem.path == ("stages", "c", "builder") and "does not parse" in problem.message
