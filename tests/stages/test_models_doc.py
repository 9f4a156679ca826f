"""The examples of docs/models.md's "Every way to bring a model" work as written: the Python lines make
the files, and the pipelines beside them validate and run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cli

pytestmark = pytest.mark.tf

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
SECTION = "## Every way to bring a model"


def _blocks() -> dict[str, str]:
    """The section's code blocks, by the file name on their first line (`# name.py`)."""
    text = DOC.read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    blocks = {}
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", section, flags=re.S):
        first = body.splitlines()[0]
        match = re.match(r"# (\S+\.(?:py|yaml))", first)
        if match:
            blocks[match.group(1)] = body
    return blocks


def _python(folder: Path, *sources: str) -> None:
    script = folder / "make.py"
    script.write_text("\n".join(sources))
    proc = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_section_has_an_example_for_each_kind_of_file():
    assert {"make_file.py", "file.yaml", "application.yaml", "make_saved_model.py", "make_plain.py",
            "plain.yaml"} <= set(_blocks())


def test_files_saved_by_tf_keras_run_through_prune_and_int8(tmp_path):
    blocks = _blocks()
    _python(tmp_path, blocks["make_file.py"], blocks["make_saved_model.py"])
    assert (tmp_path / "cnn.keras").is_file() and (tmp_path / "cnn.h5").is_file()
    assert (tmp_path / "cnn_savedmodel" / "keras_metadata.pb").is_file()
    (tmp_path / "file.yaml").write_text(blocks["file.yaml"])
    result = cli("run", "file.yaml", "-q", cwd=tmp_path)
    assert result.code == 0, result.text
    assert (tmp_path / "out" / "cnn-int8.tflite").stat().st_size > 0
    for other in ("cnn.h5", "cnn_savedmodel"):
        result = cli("validate", "file.yaml", "--set", f"stages.base.path={other}", cwd=tmp_path)
        assert result.code == 0, (other, result.text)


def test_a_plain_saved_model_is_quantized_and_evaluated(tmp_path):
    blocks = _blocks()
    _python(tmp_path, blocks["make_plain.py"])
    assert not (tmp_path / "plain" / "keras_metadata.pb").exists()
    (tmp_path / "plain.yaml").write_text(blocks["plain.yaml"])
    result = cli("run", "plain.yaml", "-q", cwd=tmp_path)
    assert result.code == 0, result.text
    # A training stage on it is refused at validate time, saying why.
    refused = blocks["plain.yaml"] + "  trained: {type: fine_tune, model: base, data: digits, epochs: 1}\n"
    (tmp_path / "train.yaml").write_text(refused)
    result = cli("validate", "train.yaml", cwd=tmp_path)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text and "trained" in result.text


def test_the_application_example_validates_with_an_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog", "fox"):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for index in range(4):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    (tmp_path / "application.yaml").write_text(_blocks()["application.yaml"])
    result = cli("plan", "application.yaml", cwd=tmp_path)
    assert result.code == 0, result.text
    assert "base" in result.text and "int8" in result.text
