"""The README shows what ships: its pipeline snippet is pipelines/digits.yaml, and its demo (a run,
then a rerun with the override it names) succeeds on that file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from helpers import cli

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "pipelines" / "digits.yaml"


def readme_section(title: str) -> str:
    """The text of the README section ``## title`` up to the next section (``""``: the text before the first)."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n") if title else 0
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_readme_pipeline_is_the_shipped_digits_pipeline():
    blocks = re.findall(r"```yaml\n(.*?)```", readme_section("A pipeline"), re.S)
    assert len(blocks) == 1
    assert blocks[0] == DIGITS.read_text()


@pytest.mark.tf
@pytest.mark.slow
def test_readme_demo_run_then_rerun_with_its_override_both_succeed(tmp_path):
    override = re.findall(r"reruns with `--set ([^`]+)`", readme_section(""))
    assert len(override) == 1, "the README's demo names one --set override"
    pipeline = tmp_path / "digits.yaml"
    shutil.copy(DIGITS, pipeline)

    first = cli("run", pipeline, timeout=1800)
    assert first.code == 0, first.text
    rerun = cli("run", pipeline, "--set", override[0], timeout=1800)
    assert rerun.code == 0, rerun.text
    assert "pipeline digits: 4 to run, 3 cached" in rerun.out  # base, trained and float are not reached
    assert (tmp_path / "out" / "digits-int8.tflite").is_file()
