"""Overrides: ``--set dotted.path=value`` and ``--params file.yaml``.

Values given as text are parsed with YAML rules (``0.9`` is a float, ``[1, 2]`` a
list). An override must name something that exists: a top-level key, a param, a
stage or a dataset (fields inside a stage or dataset may be new: validation then
checks them like any field). Problems are located at ``<--set KEY>:1:1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from compressflow.errors import Location, PipelineError, Problem, did_you_mean, format_path
from compressflow.dsl.limits import MAX_ALIAS_VALUES, MAX_NODES
from compressflow.dsl.located import LocatedDict, LocatedList, from_plain
from compressflow.dsl.yaml_build import ReadBudget
from compressflow.dsl.yaml_source import parse_yaml, read_yaml_file

SCALAR_KEYS = ("version", "name", "seed")
#: What an override may set (includes and templates are already expanded when overrides apply).
OVERRIDABLE = (*SCALAR_KEYS, "params", "datasets", "stages")
NAMED_SECTIONS = ("datasets", "stages")


@dataclass(frozen=True)
class Override:
    """Set the value at ``path`` (with its located ``value``); ``location`` is where it was asked."""

    path: tuple
    value: Any
    location: Location
    value_location: Location


def parse_overrides(overrides: Iterable[str] | Mapping[str, Any] | None,
                    problems: list[Problem]) -> list[Override]:
    """Turn ``["a.b=1", ...]`` or ``{"a.b": 1}`` into :class:`Override` objects."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        overrides = [overrides]
    parsed: list[Override] = []
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            location = Location(f"<--set {key}>", 1, 1)
            if not isinstance(key, str):
                problems.append(Problem(f"override keys are dotted paths (strings), got {key!r}", location))
                continue
            path = _parse_path(key, location, problems)
            if path is not None:
                parsed.append(Override(path, from_plain(value, location, problems, path), location, location))
        return parsed
    # NOTE: one reading budget for all of them, as for one file: 200 values just under the
    # alias bound each would otherwise add up to gigabytes.
    budget = ReadBudget()
    for number, item in enumerate(overrides, start=1):
        if not isinstance(item, str) or "=" not in item:
            location = Location(f"<--set {item}>", 1, 1)
            problems.append(Problem(f"an override is KEY=VALUE (e.g. params.sparsity=0.9), got {item!r}",
                                    location))
            continue
        key, _, text = item.partition("=")
        key = key.strip()
        location = Location(f"<--set {key}>", 1, 1)
        path = _parse_path(key, location, problems)
        if path is None:
            continue
        try:
            document = parse_yaml(text, location.file, budget)
        except PipelineError as exc:
            problems.extend(exc.problems)
            if budget.values > MAX_NODES or budget.alias_values > MAX_ALIAS_VALUES:
                problems.append(Problem(
                    f"--set argument {number} ({key}) makes the --set values too large; the rest are not read",
                    location, hint="--set sets a few small values; put large ones in a --params file"))
                break
            continue
        problems.extend(document.problems)
        parsed.append(Override(path, document.value, location, document.location))
    return parsed


def params_file_overrides(files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None,
                          problems: list[Problem]) -> list[Override]:
    """Each top-level entry of each file overrides ``params.<entry>``."""
    parsed: list[Override] = []
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    for file in files or ():
        if not isinstance(file, (str, os.PathLike)):
            problems.append(Problem(f"a params file is a path, got {file!r}"))
            continue
        try:
            document = read_yaml_file(Path(file), str(file))
        except PipelineError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(document.problems)
        if document.empty:
            continue
        if not isinstance(document.value, LocatedDict):
            problems.append(Problem("a params file holds a mapping of param names to values",
                                    document.location))
            continue
        for name, value in document.value.items():
            parsed.append(Override(("params", name), value, document.value.key_location(name),
                                   document.value.value_location(name)))
    return parsed


def _parse_path(key: str, location: Location, problems: list[Problem]) -> tuple | None:
    parts = key.split(".")
    if not key or any(part == "" for part in parts):
        problems.append(Problem(f"'{key}' is not a dotted path like params.sparsity or stages.pruned.epochs",
                                location))
        return None
    return tuple(parts)


def _list_index(container: Any, part: str) -> int | None:
    """``part`` as an index into ``container`` when it is a list and the index exists."""
    if isinstance(container, LocatedList) and part.isdigit() and int(part) < len(container):
        return int(part)
    return None


def apply_overrides(document: LocatedDict, overrides: list[Override], problems: list[Problem]) -> None:
    """Apply each override to ``document`` in order, reporting the ones that name nothing."""
    for override in overrides:
        _apply(document, override, problems)


def _apply(document: LocatedDict, override: Override, problems: list[Problem]) -> None:
    path, where = override.path, override.location

    def fail(message: str, hint: str | None = None) -> None:
        problems.append(Problem(message, where, path, hint))

    head = path[0]
    if head not in OVERRIDABLE:
        fail(f"cannot set '{format_path(path)}': '{head}' is not a top-level key that can be set",
             did_you_mean(str(head), OVERRIDABLE) or "known: " + ", ".join(OVERRIDABLE))
        return
    if head in SCALAR_KEYS:
        if len(path) != 1:
            fail(f"cannot set '{format_path(path)}': '{head}' is a single value")
            return
        document.put(head, override.value, where, override.value_location)
        return
    if len(path) == 1:
        fail(f"cannot replace all of '{head}' at once; set one entry, e.g. '{head}.NAME'")
        return
    section = document.get(head)
    if not isinstance(section, LocatedDict) or path[1] not in section:
        known = list(section) if isinstance(section, LocatedDict) else []
        what = {"params": "param", "datasets": "dataset", "stages": "stage"}[head]
        fail(f"cannot set '{format_path(path)}': there is no {what} '{path[1]}'",
             did_you_mean(str(path[1]), known) or (f"known: {', '.join(known)}" if known else None))
        return
    # Params must exist all the way down; inside a stage or dataset new fields may be added.
    create_missing = head in NAMED_SECTIONS
    parent: Any = section
    for depth, part in enumerate(path[1:-1], start=1):
        parent = _descend(parent, part, where, create_missing, path[:depth + 1], path, fail)
        if parent is None:
            return
    last = path[-1]
    if isinstance(parent, LocatedDict):
        if last not in parent and not create_missing:
            fail(f"cannot set '{format_path(path)}': there is no '{last}' in '{format_path(path[:-1])}'",
                 did_you_mean(str(last), parent))
            return
        parent.put(last, override.value, where, override.value_location)
    elif _list_index(parent, last) is not None:
        parent.replace(_list_index(parent, last), override.value, override.value_location)
    else:
        fail(f"cannot set '{format_path(path)}': '{format_path(path[:-1])}' has no entry '{last}'")


def _descend(parent: Any, part: str, where: Location, create_missing: bool, shown: tuple,
             override_path: tuple, fail) -> Any:
    if isinstance(parent, LocatedDict):
        if part not in parent:
            if not create_missing:
                fail(f"cannot set '{format_path(override_path)}': there is no '{format_path(shown)}'",
                     did_you_mean(part, parent))
                return None
            parent.put(part, LocatedDict(where), where, where)
        child = parent[part]
    elif _list_index(parent, part) is not None:
        child = parent[_list_index(parent, part)]
    else:
        fail(f"cannot set '{format_path(shown)}': '{format_path(shown[:-1])}' has no entry '{part}'")
        return None
    if not isinstance(child, (LocatedDict, LocatedList)):
        fail(f"cannot set below '{format_path(shown)}': it is a single value, not a mapping or list")
        return None
    return child
