"""Check what validated stages and datasets would reach outside the pipeline, before anything runs.

Each stage and dataset says what stops it in its :meth:`~compressflow.stages.base.Stage.check`:
paths leaving the pipeline's folder (``..``, absolute paths, ``~``, symlinks), a model
file that would run code on load. Problems are located at the field at fault, so
``validate``, ``plan`` and ``run`` refuse the pipeline alike (exit status 2) and nothing runs.
"""

from __future__ import annotations

from pathlib import Path

from compressflow.errors import Problem
from compressflow.dsl.located import LocatedDict, location_of
from compressflow.stages.base import Environment


def check_external(stages: dict, datasets: dict, document: LocatedDict, root: Path,
                   allow_outside_paths: bool) -> list[Problem]:
    """Problems of every stage's and dataset's ``check``, located at the field at fault."""
    env = Environment(pipeline_dir=root, datasets=dict(datasets), allow_outside_paths=allow_outside_paths)
    problems: list[Problem] = []
    for section, configs in (("datasets", datasets), ("stages", stages)):
        for name, config in configs.items():
            for found in config.check(env):
                path = (section, name, found.field)
                where = location_of(document, path) or location_of(document, (section, name))
                problems.append(Problem(found.message, where, path))
    return problems
