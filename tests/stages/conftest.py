"""Fixtures to run one stage directly, without the executor."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from compressflow.stages.base import Artifact, Environment, StageContext, derive_seed

_counter = itertools.count()


@pytest.fixture
def digits_env(tmp_path: Path) -> Environment:
    """An environment with the bundled digits dataset registered as ``digits``."""
    from compressflow.data.datasets import SklearnDigits

    return Environment(pipeline_dir=tmp_path, seed=0, datasets={"digits": SklearnDigits()})


@pytest.fixture
def run_stage(tmp_path: Path):
    """Run a stage config with the given input artifacts; return its output as an Artifact.

    ``inputs`` maps field names to Artifacts (or lists of them), as the executor would.
    """

    def run(stage, env: Environment, inputs=None, name: str | None = None, logs=None) -> Artifact:
        name = name or f"{stage.kind}{next(_counter)}"
        out_dir = tmp_path / "outputs" / name
        out_dir.mkdir(parents=True)
        ctx = StageContext(name=name, seed=derive_seed(env.seed, name), out_dir=out_dir, env=env,
                           inputs=inputs or {}, log=(logs.append if logs is not None else print))
        stage.run(ctx)
        return Artifact.read(name, "0" * 64, out_dir)

    return run
