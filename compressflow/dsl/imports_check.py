"""The pipeline's ``imports:``: each module must be there (beside the pipeline first), found without importing it.

A module of ``imports:`` registers custom objects (layers, losses, metrics, QuantizeConfigs) that
model files name. It is imported before a stage loads a model, in every process; here it is
only looked up and, for plain Python, parsed, so that a typo is a located error before anything
runs rather than a failed stage.
"""

from __future__ import annotations

import ast
import difflib
import pkgutil
import re
from pathlib import Path
from typing import Any

from compressflow.dsl.located import LocatedDict, LocatedList
from compressflow.dsl.schema import MODULE_PATTERN
from compressflow.errors import Problem
from compressflow.user_modules import find_module_source

FIELD = "imports"


def declared_imports(document: LocatedDict, validated: Any = None) -> tuple[str, ...]:
    """The module names of ``imports:`` (those that are valid names, when the document is not valid)."""
    if validated is not None:
        return tuple(dict.fromkeys(validated.imports))
    value = document.get(FIELD)
    if not isinstance(value, LocatedList):
        return ()
    return tuple(dict.fromkeys(item for item in value if isinstance(item, str) and re.fullmatch(MODULE_PATTERN, item)))


def check_imports(document: LocatedDict, root: Path) -> list[Problem]:
    """A located problem for every module of ``imports:`` that is listed twice, missing or does not parse."""
    value = document.get(FIELD)
    if not isinstance(value, LocatedList):
        return []  # not a list: the pipeline model says so
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, name in enumerate(value):
        if not isinstance(name, str) or not re.fullmatch(MODULE_PATTERN, name):
            continue  # the pipeline model says so
        where, path = value.item_location(index), (FIELD, index)
        if name in seen:
            problems.append(Problem(f"module {name!r} is listed twice in 'imports'", where, path))
            continue
        seen.add(name)
        found = _module_problem(name, root)
        if found:
            problems.append(Problem(found[0], where, path, found[1]))
    return problems


def _module_problem(name: str, root: Path) -> tuple[str, str | None] | None:
    source = find_module_source(name, root)
    if source is None:
        top = name.partition(".")[0]
        known = sorted({info.name for info in pkgutil.iter_modules([str(root)])} | {
            info.name for info in pkgutil.iter_modules()}) if "." not in name else []
        close = difflib.get_close_matches(top, known, n=1, cutoff=0.7)
        hint = (f"did you mean {close[0]!r}?" if close else
                "list modules of yours beside the pipeline file (mylayers for mylayers.py) or installed ones")
        return f"no module {name!r} to import: not beside the pipeline in {root} and not installed", hint
    if source.suffix != ".py":
        return None  # compiled: importing it tells
    try:
        ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError as exc:
        return f"module {name!r} ({source}) does not parse: {exc.msg} at line {exc.lineno}", None
    except (OSError, ValueError) as exc:
        return f"module {name!r} ({source}) cannot be read: {exc}", None
    return None
