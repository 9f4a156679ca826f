"""Files and modules a pipeline reads that are not there, through the real CLI.

``validate``, ``plan`` and ``run`` each refuse the pipeline before anything runs: exit 2, the
value's ``file:line:column``, the absolute path looked for and a close name when there is one.
No TensorFlow: the run stops before its first stage.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import cli, write

COMMANDS = ("validate", "plan", "run")
HEAD = "version: 1\nname: missing\ndatasets:\n  digits: {type: sklearn_digits}\n"
FIRST = "  first: {type: load, builder: 'compressflow.models:small_cnn'}\n"  # valid: must not run either

CASES = {
    # name: (datasets and stages after HEAD, the value at fault as written, path named, hint expected)
    "model_path": ("stages:\n" + FIRST + "  base: {type: load, path: models/model.kears}\n",
                   "models/model.kears", "models/model.kears", "did you mean 'models/model.keras'?"),
    "npz_path": ("  arrays: {type: npz, path: dta.npz}\nstages:\n" + FIRST
                 + "  tuned: {type: fine_tune, model: first, data: arrays}\n",
                 "dta.npz", "dta.npz", "did you mean 'data.npz'?"),
    "image_folder": ("  photos: {type: image_directory, path: imags}\nstages:\n" + FIRST
                     + "  tuned: {type: fine_tune, model: first, data: photos}\n",
                     "imags", "imags", "did you mean 'images'?"),
    "builder_module": ("stages:\n" + FIRST + "  base: {type: load, builder: 'compressflow.modles:small_cnn'}\n",
                       "'compressflow.modles", None, "did you mean 'compressflow.models:small_cnn'?"),
    "builder_module_unknown": ("stages:\n" + FIRST + "  base: {type: load, builder: 'zzq_nothing_here:build'}\n",
                               "'zzq_nothing_here", ".", None),
    "dataset_function_module": ("  mine: {type: python, function: 'sklearn.datasetz:load_digits'}\nstages:\n"
                                + FIRST + "  tuned: {type: fine_tune, model: first, data: mine}\n",
                                "'sklearn.datasetz", None, "did you mean 'sklearn.datasets:load_digits'?"),
}


def where(text: str, token: str) -> str:
    """``line:column`` of the first ``token`` in ``text`` (1-based, as the CLI prints them)."""
    for number, line in enumerate(text.splitlines(), 1):
        if token in line:
            return f"{number}:{line.index(token) + 1}"
    raise AssertionError(f"{token!r} is not in the pipeline")


def project(tmp_path: Path, body: str) -> Path:
    """A pipeline folder with close names beside the missing ones."""
    write(tmp_path / "models" / "model.keras", "not read: the path asked for is model.kears")
    write(tmp_path / "data.npz", "not read either")
    (tmp_path / "images" / "cats").mkdir(parents=True)
    return write(tmp_path / "p.yaml", HEAD + body)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_file_or_module_is_refused_before_anything_runs(tmp_path: Path, case: str, command: str):
    body, value, named, hint = CASES[case]
    pipeline = project(tmp_path, body)
    result = cli(command, "p.yaml", cwd=tmp_path)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert f"p.yaml:{where(pipeline.read_text(), value)}: error:" in result.err, result.err
    if named is not None:
        assert str((tmp_path / named).resolve()) in result.err, result.err
    if hint is not None:
        assert f"hint: {hint}" in result.err, result.err
    else:
        assert "did you mean" not in result.err, result.err
    assert "1 problem found; nothing was run." in result.err
    assert not (tmp_path / ".compressflow").exists()  # no cache entry, no run record


def test_every_missing_input_is_reported_at_once_beside_other_mistakes(tmp_path: Path):
    body = ("  arrays: {type: npz, path: dta.npz}\n  photos: {type: image_directory, path: imags}\nstages:\n"
            "  base: {type: load, path: models/model.kears}\n"
            "  built: {type: load, builder: 'compressflow.modles:small_cnn'}\n"
            "  tuned: {type: fine_tune, model: base, data: arrays, epochs: 1, learning_rat: 0.1}\n")
    text = project(tmp_path, body).read_text()
    result = cli("run", "p.yaml", cwd=tmp_path)
    assert result.code == 2, result.text
    located = [line.split(": error:")[0] for line in result.err.splitlines() if ": error:" in line]
    tokens = ("dta.npz", "imags", "models/model.kears", "'compressflow.modles", "learning_rat")
    assert located == [f"p.yaml:{where(text, token)}" for token in tokens], result.err
    assert "5 problems found; nothing was run." in result.err
    assert not (tmp_path / ".compressflow").exists()


def test_once_the_files_are_there_the_pipeline_validates(tmp_path: Path):
    project(tmp_path, CASES["model_path"][0].replace("model.kears", "model.keras"))
    result = cli("validate", "p.yaml", cwd=tmp_path)
    assert result.code == 0, result.text
