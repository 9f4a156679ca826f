"""Check what validated stages and datasets would reach outside the pipeline, before anything runs.

Each stage and dataset says what stops it in its :meth:`~compressflow.stages.base.Stage.check`:
paths leaving the pipeline's folder (``..``, absolute paths, ``~``, symlinks), a model
file that would run code on load. Then every path in its ``path_fields`` must lead to
something (:mod:`~compressflow.dsl.file_checks`) and every ``module:function`` in its
``module_fields`` must name a module that can be imported (:mod:`~compressflow.dsl.module_checks`).
Problems are located at the field at fault, so ``validate``, ``plan`` and ``run`` refuse the
pipeline alike (exit status 2) and nothing runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from compressflow.errors import Problem, UsageError
from compressflow.dsl.file_checks import missing_path
from compressflow.dsl.located import LocatedDict, location_of
from compressflow.dsl.module_checks import module_problem
from compressflow.dsl.schema import pipeline_model
from compressflow.stages.base import Dataset, Environment, Stage
from compressflow.user_modules import module_spec

SECTIONS = ("datasets", "stages")


def check_external(stages: dict, datasets: dict, document: LocatedDict, root: Path,
                   allow_outside_paths: bool, imports: tuple[str, ...] = ()) -> list[Problem]:
    """Problems of every stage's and dataset's ``check``, paths and modules, located at the field at fault.

    A problem that many stages share (one template or sweep behind them) is reported once.
    ``imports`` are the pipeline's ``imports:`` (what they register makes a model file's custom classes known).
    """
    env = Environment(pipeline_dir=root, datasets=dict(datasets), allow_outside_paths=allow_outside_paths,
                      imports=tuple(imports), stages=dict(stages))
    modules: dict[tuple[str, str], tuple[str, str | None] | None] = {}  # NOTE: 10,000 stages, a few builders
    problems: dict[tuple, Problem] = {}
    for section, configs in zip(SECTIONS, (datasets, stages)):
        for name, config in configs.items():
            for field, message, hint in _config_problems(config, env, modules):
                path = (section, name, field)
                where = location_of(document, path) or location_of(document, (section, name))
                problems.setdefault((message, where), Problem(message, where, path, hint))
    return list(problems.values())


def _config_problems(config: Stage | Dataset, env: Environment, modules: dict):
    """``(field, message, hint)`` for what stops one stage or dataset."""
    flagged = set()
    for found in config.check(env):
        flagged.add(found.field)
        yield found.field, found.message, None
    for field, what in config.path_fields.items():
        raw = getattr(config, field, None)
        if not raw or field in flagged:
            continue
        try:
            resolved = env.resolve_path(raw, what=what)
        except (UsageError, OSError, ValueError):
            continue  # outside the pipeline's folder: the stage's own check decides (the default refuses)
        missing = missing_path(str(raw), resolved, env.pipeline_dir, what)
        if missing:
            yield field, *missing
    for field, what in config.module_fields.items():
        spec = module_spec(getattr(config, field, None))
        if not spec or field in flagged:
            continue
        if (spec, what) not in modules:
            modules[spec, what] = module_problem(spec, what, env.pipeline_dir)
        if modules[spec, what]:
            yield field, *modules[spec, what]


def valid_entries(document: LocatedDict, validated: Any) -> tuple[dict, dict]:
    """``(stages, datasets)`` that are valid on their own, also when the document as a whole is not.

    So that a missing file is reported with a typo elsewhere, not only once the typo is fixed.
    """
    if validated is not None:
        return dict(validated.stages), dict(validated.datasets)
    model = pipeline_model()
    found: dict[str, dict] = {}
    for section in SECTIONS:
        entries = document.get(section)
        found[section] = {}
        if not isinstance(entries, LocatedDict):
            continue
        adapter = TypeAdapter(get_args(model.model_fields[section].annotation)[1])
        for name, entry in entries.items():
            try:
                config = adapter.validate_json(json.dumps(entry), strict=True)
            except (ValidationError, TypeError, ValueError):
                continue  # its problems are reported already
            if isinstance(config, (Stage, Dataset)):
                found[section][name] = config
    return found["stages"], found["datasets"]
