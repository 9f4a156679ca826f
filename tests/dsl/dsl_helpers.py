"""Shared text and helpers for the pipeline-file loader tests."""

from __future__ import annotations

import textwrap

from compressflow.errors import Problem

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
