"""Shared text and helpers for the pipeline-file loader tests."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from compressflow.errors import PipelineError, Problem

# design.md §2, verbatim (with the builder it names).
DESIGN_EXAMPLE = """\
version: 1
name: digits
seed: 0                          # every stage is seeded from this (and its own name)

params:                          # ${params.NAME} anywhere below; override: --set params.sparsity=0.9
  sparsity: 0.8

datasets:
  digits:
    type: sklearn_digits         # bundled with scikit-learn: works offline
    validation_fraction: 0.2

stages:
  base:
    type: load
    builder: compressflow.models:small_cnn     # or  path: models/base.keras
    args: {input_shape: [8, 8, 1], classes: 10}

  trained:
    type: fine_tune
    model: base                  # a stage reference: this is an edge of the DAG
    data: digits
    epochs: 10

  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {type: polynomial_decay, initial_sparsity: 0.5, final_sparsity: ${params.sparsity}}
    epochs: 3

  int8:
    type: quantize
    model: pruned
    method: int8                 # qat | dynamic | float16 | int8 | int16x8
    data: digits                 # representative samples

  check:
    type: evaluate
    models: [trained, pruned, int8]
    baseline: trained
    data: digits
    require: {max_accuracy_drop: 0.01}

  release:
    type: export
    model: int8
    format: tflite
    to: out/digits-int8.tflite
"""

# A small valid head that the error tests add stages to (stages start on line 8).
HEAD = """\
version: 1
name: t
params:
  sparsity: 0.8
datasets:
  digits: {type: sklearn_digits}
stages:
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(p.render() for p in problems)
    return problems[0]


def lines(problems: list[Problem]) -> list[int]:
    return [p.location.line for p in problems]


# NOTE: YAML's line breaks, not str.splitlines' (which also splits at \x0b, \x1c and others).
_YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def source_text(path: Path) -> str:
    """A pipeline file's text as a location counts lines and columns in it."""
    return path.read_bytes().decode("utf-8", errors="replace")


def assert_every_problem_located(error: PipelineError, files: dict[str, str | None]) -> None:
    """The documented property of a refused pipeline: every problem says ``file:line:column`` in one of
    ``files`` (name as located -> its text, None for a source without one, like ``<dict>``), at a line and
    column inside that text, and the report holds no traceback."""
    assert error.problems, "a PipelineError carries its problems"
    report = error.render()
    assert "Traceback" not in report, report
    for problem in error.problems:
        where = problem.location
        assert where is not None, f"problem without a location: {problem.render()}"
        assert where.file in files, f"located in {where.file!r}, not in one of {sorted(files)}: {problem.render()}"
        assert problem.render().startswith(f"{where.file}:{where.line}:{where.column}: error: "), problem.render()
        text = files[where.file]
        if text is None:
            assert (where.line, where.column) >= (1, 1), problem.render()
            continue
        rows = _YAML_LINE_BREAK.split(text)
        # NOTE: a text ending with a line break has an empty last row: an error at the very end is there.
        assert 1 <= where.line <= len(rows), f"line {where.line} of a {len(rows)}-line file: {problem.render()}"
        row = rows[where.line - 1]
        assert 1 <= where.column <= len(row) + 1, f"column {where.column} of {row!r}: {problem.render()}"


def texts_in(folder: Path) -> dict[str, str]:
    """Every file of ``folder`` by path (as a location names it) with its text: the files a pipeline there
    may be located in, itself and what it includes."""
    return {str(path): source_text(path) for path in folder.iterdir() if path.is_file()}
