"""Reuse across files, before anything else is resolved: includes, then templates.

A stage's ``matrix:`` (sweeps) is reserved for a later version and reported as such.
"""

from __future__ import annotations

from pathlib import Path

from compressflow.errors import Problem
from compressflow.dsl.includes import expand_includes
from compressflow.dsl.located import LocatedDict
from compressflow.dsl.problems import Problems
from compressflow.dsl.templates import apply_templates

RESERVED_STAGE_KEYS = {"matrix": "sweeps ('matrix') are not supported yet"}


def expand_reuse(document: LocatedDict, file: Path | None, root: Path, allow_outside_paths: bool,
                 problems: Problems) -> None:
    """Expand ``include`` and ``extends`` in ``document`` (in place)."""
    expand_includes(document, file, document.location.file, root, allow_outside_paths, problems)
    apply_templates(document, problems)
    _reserved(document, problems)


def _reserved(document: LocatedDict, problems: Problems) -> None:
    stages = document.get("stages")
    if not isinstance(stages, LocatedDict):
        return
    for name, config in stages.items():
        if not isinstance(config, LocatedDict):
            continue
        for key, message in RESERVED_STAGE_KEYS.items():
            if key in config:
                problems.append(Problem(message, config.key_location(key), ("stages", name, key)))
                config.drop(key)
