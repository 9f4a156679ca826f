"""Reuse across files: ``include:``, ``templates:`` and a stage's ``extends:``.

Reserved for now: these keys are reported as not supported yet, and so is a
stage's ``matrix:`` (sweeps).
"""

from __future__ import annotations

from pathlib import Path

from compressflow.errors import Problem
from compressflow.dsl.located import LocatedDict

RESERVED_TOP_LEVEL = ("include", "templates")
RESERVED_STAGE_KEYS = ("extends", "matrix")


def expand_reuse(document: LocatedDict, path: Path | None, problems: list[Problem]) -> None:
    """Expand includes and templates in place (here: report the reserved keys)."""
    for key in RESERVED_TOP_LEVEL:
        if key in document:
            problems.append(Problem(f"'{key}' is not supported yet", document.key_location(key), (key,)))
            document.drop(key)
    stages = document.get("stages")
    if not isinstance(stages, LocatedDict):
        return
    for name, config in stages.items():
        if not isinstance(config, LocatedDict):
            continue
        for key in RESERVED_STAGE_KEYS:
            if key in config:
                problems.append(Problem(f"'{key}' is not supported yet", config.key_location(key),
                                        ("stages", name, key)))
                config.drop(key)
