"""Run stages one after another outside the executor, and share a few trained models between tests.

The shared models (a trained small CNN, its pruned and clustered versions) are made once per
test session in a temporary folder, so that the stage tests stay fast on two cores. When
``conftest.py`` names a folder for the session (``SHARED_DIR_ENV``), the processes of a
parallel run share them: the first to need one makes it under a lock, the others read it.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from compressflow.data.datasets import SklearnDigits
from compressflow.stages.base import Artifact, Environment, StageContext, derive_seed

# A small CNN that trains in seconds on part of the digits data.
SMALL_ARGS = {"filters": [8, 16], "dense": 32}
DIGITS_LIMIT = 800

SHARED_DIR_ENV = "COMPRESSFLOW_TEST_SHARED_DIR"

_counter = itertools.count()
_root = Path(tempfile.mkdtemp(prefix="cf-stage-chain-"))
atexit.register(shutil.rmtree, _root, ignore_errors=True)
_shared_root = Path(os.environ[SHARED_DIR_ENV]) / "stage-chain" if os.environ.get(SHARED_DIR_ENV) else _root / "shared"


def make_env(root: Path, *, limit: int | None = DIGITS_LIMIT, seed: int = 0) -> Environment:
    """An environment whose dataset ``digits`` is the bundled digits data (first ``limit`` samples)."""
    return Environment(pipeline_dir=root, seed=seed, datasets={"digits": SklearnDigits(limit=limit)})


def run(stage, env: Environment, inputs=None, *, name: str | None = None, out_root: Path | None = None,
        logs: list | None = None) -> Artifact:
    """Run ``stage`` into a fresh folder and return its output artifact.

    Two runs with the same ``name`` get the same seed, as in a pipeline.
    """
    name = name or f"{stage.kind}{next(_counter)}"
    out_dir = (out_root or _root) / f"{name}-{next(_counter)}"
    out_dir.mkdir(parents=True)
    ctx = StageContext(name=name, seed=derive_seed(env.seed, name), out_dir=out_dir, env=env,
                       inputs=inputs or {}, log=(logs.append if logs is not None else (lambda _: None)))
    stage.run(ctx)
    return Artifact.read(name, "0" * 64, out_dir)


def load(artifact: Artifact):
    """The artifact's Keras model, loaded as a plain tf-keras model (no custom objects)."""
    from compressflow.stages.tfutil import keras

    return keras().models.load_model(artifact.file(), compile=False)


def kernels(model) -> dict[str, np.ndarray]:
    """Kernel arrays by layer name."""
    return {layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}


@functools.cache
def shared_env() -> Environment:
    return make_env(_root)


def _shared(name: str, make: Callable[[Path, list], Artifact]) -> tuple[Artifact, list[str]]:
    """The shared artifact ``name`` and what its stage logged, made by ``make(out_root, logs)`` once."""
    _shared_root.mkdir(parents=True, exist_ok=True)
    done = _shared_root / f"{name}.done"
    with open(_shared_root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            logs: list[str] = []
            artifact = make(_shared_root, logs)
            (_shared_root / f"{name}.log.json").write_text(json.dumps(logs))
            done.write_text(str(artifact.path))
    logs = json.loads((_shared_root / f"{name}.log.json").read_text())
    return Artifact.read(name, "0" * 64, Path(done.read_text())), logs


@functools.cache
def base() -> Artifact:
    """small_cnn (SMALL_ARGS), untrained."""
    from compressflow.stages.load import LoadStage

    stage = LoadStage(builder="compressflow.models:small_cnn", args=SMALL_ARGS)
    return _shared("base", lambda root, logs: run(stage, shared_env(), name="base", out_root=root, logs=logs))[0]


@functools.cache
def _trained() -> tuple[Artifact, list[str]]:
    from compressflow.stages.fine_tune import FineTuneStage

    stage = FineTuneStage(model="base", data="digits", epochs=6, learning_rate=3e-3)
    return _shared("trained", lambda root, logs: run(stage, shared_env(), {"model": base()}, name="trained",
                                                      out_root=root, logs=logs))


def trained() -> Artifact:
    """base() trained 6 epochs on the shared digits data."""
    return _trained()[0]


def trained_logs() -> list[str]:
    """What the stage that made trained() logged."""
    return _trained()[1]


@functools.cache
def pruned() -> Artifact:
    """The trained model pruned to 0.7 (constant schedule, 2 epochs)."""
    from compressflow.stages.prune import PruneStage

    stage = PruneStage(model="trained", data="digits", epochs=2,
                       schedule={"type": "constant", "target_sparsity": 0.7})
    return _shared("pruned", lambda root, logs: run(stage, shared_env(), {"model": trained()}, name="pruned",
                                                     out_root=root, logs=logs))[0]


@functools.cache
def clustered() -> Artifact:
    """The trained model clustered into 8 clusters (1 epoch)."""
    from compressflow.stages.cluster import ClusterStage

    stage = ClusterStage(model="trained", data="digits", number_of_clusters=8, epochs=1)
    return _shared("clustered", lambda root, logs: run(stage, shared_env(), {"model": trained()}, name="clustered",
                                                        out_root=root, logs=logs))[0]
