"""Fixtures for the pipeline-file loader tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressflow.dsl import load_pipeline
from compressflow.errors import PipelineError, Problem
from dsl_helpers import dedent


@pytest.fixture
def write(tmp_path: Path):
    """``write(text, name="pipeline.yaml")`` -> path of a file holding the dedented text."""

    def _write(text: str | bytes, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def problems_of(write):
    """``problems_of(text, **load_kwargs)`` -> the problems loading that file reports (it must fail)."""

    def _problems(text: str | bytes, **kwargs) -> list[Problem]:
        path = write(text)
        with pytest.raises(PipelineError) as info:
            load_pipeline(path, **kwargs)
        return info.value.problems

    return _problems
