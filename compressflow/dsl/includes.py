"""``include: [path, ...]``: take ``params``, ``datasets`` and ``templates`` from other files.

Paths are relative to the including file and must stay inside the pipeline's
folder (unless outside paths are allowed). Included files may include others.
A name defined in two files is a conflict (both places are named); a file
reached twice (a diamond) is read once; an include cycle is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from compressflow.errors import Location, PipelineError, Problem, did_you_mean
from compressflow.dsl.located import LocatedDict, LocatedList, ValueBudget
from compressflow.dsl.problems import Problems
from compressflow.dsl.yaml_source import read_yaml_file

#: Sections an included file may hold (besides its own ``include``).
INCLUDABLE = ("params", "datasets", "templates")
#: Most files one pipeline may include, directly or not.
MAX_INCLUDED_FILES = 100
_WHAT = {"params": "param", "datasets": "dataset", "templates": "template"}


@dataclass
class _Include:
    """State shared by one expansion: where paths may lead, and the files already read."""

    root: Path
    allow_outside: bool
    problems: Problems
    budget: ValueBudget
    done: set[Path] = field(default_factory=set)


def expand_includes(document: LocatedDict, file: Path | None, display: str, root: Path,
                    allow_outside: bool, problems: Problems) -> None:
    """Merge every included file's sections into ``document`` (in place) and drop ``include``."""
    state = _Include(root.resolve(), allow_outside, problems, ValueBudget(document))
    here = file.resolve() if file is not None else None
    _include_into(document, here, display, [(here, display, None)] if here else [], state)


def _include_into(document: LocatedDict, file: Path | None, display: str,
                  chain: list[tuple[Path, str, Location | None]], state: _Include) -> None:
    """``chain``: the files being included, each with where it was included from."""
    for entry, location in _entries(document, state.problems):
        target, shown = _resolve(entry, file, display, location, state)
        if target is None:
            continue
        if any(target == path for path, _, _ in chain):
            start = next(i for i, (path, _, _) in enumerate(chain) if path == target)
            cycle = chain[start:] + [(target, shown, location)]
            names = " -> ".join(name for _, name, _ in cycle)
            steps = "; ".join(f"{cycle[i][1]} includes {cycle[i + 1][1]} at {cycle[i + 1][2]}"
                              for i in range(len(cycle) - 1))
            state.problems.append(Problem(f"include cycle: {names}", location, ("include",), hint=steps))
            continue
        if target in state.done:
            continue  # reached before through another file: its definitions are already in
        if len(state.done) >= MAX_INCLUDED_FILES:
            state.problems.append(Problem(f"more than {MAX_INCLUDED_FILES} included files", location))
            return
        state.done.add(target)
        included = _read(target, shown, location, state.problems)
        if included is None:
            continue
        state.budget.add(included, location, ("include",), "included files")
        _include_into(included, target, shown, chain + [(target, shown, location)], state)
        _merge(document, included, state.problems)


def _entries(document: LocatedDict, problems: Problems) -> list[tuple[str, Location]]:
    if "include" not in document:
        return []
    value, location = document["include"], document.value_location("include")
    document.drop("include")
    if isinstance(value, str):
        return [(value, location)]
    if isinstance(value, LocatedList) and all(isinstance(item, str) for item in value):
        return [(item, value.item_location(index)) for index, item in enumerate(value)]
    problems.append(Problem("'include' is a list of file paths", location, ("include",)))
    return []


def _resolve(entry: str, file: Path | None, display: str, location: Location,
             state: _Include) -> tuple[Path | None, str]:
    target, shown, problem = resolve_relative(entry, file, display, location, ("include",), "include",
                                              state.root, state.allow_outside)
    if problem is not None:
        state.problems.append(problem)
    return target, shown


def resolve_relative(entry: str, file: Path | None, display: str, location: Location, path: tuple, what: str,
                     root: Path, allow_outside: bool) -> tuple[Path | None, str, Problem | None]:
    """``(resolved path, path as shown in messages, problem)`` of a file named in ``file``.

    ``entry`` is relative to ``file`` (to the working folder for a pipeline given as a
    mapping) and must stay inside ``root`` unless ``allow_outside``; ``what`` names the
    entry in messages (``include``, ``recipe``), ``path`` is its document path.
    """
    base = file.parent if file is not None else Path.cwd()
    shown = os.path.normpath(os.path.join(os.path.dirname(display), entry)) if file is not None else entry
    try:
        target = (base / os.path.expanduser(entry)).resolve()
    except (OSError, ValueError) as exc:
        return None, shown, Problem(f"{what} '{entry}' is not a usable path: {exc}", location, path)
    if not allow_outside and target != root and root not in target.parents:
        return None, shown, Problem(
            f"{what} '{entry}' is outside the pipeline's folder {root}", location, path,
            hint=f"keep {what} files inside the pipeline's folder, or allow outside paths explicitly")
    return target, shown, None


def _read(target: Path, shown: str, location: Location, problems: Problems) -> LocatedDict | None:
    try:
        parsed = read_yaml_file(target, shown)
    except PipelineError as exc:
        # A file that cannot be read at all is reported where it is included.
        problems.extend(problem if problem.location else replace(problem, location=location, path=("include",))
                        for problem in exc.problems)
        return None
    problems.extend(parsed.problems)
    if parsed.empty:
        return None
    if not isinstance(parsed.value, LocatedDict):
        problems.append(Problem("an included file is a mapping with 'params', 'datasets' or 'templates'",
                                parsed.location))
        return None
    included = parsed.value
    for key in list(included):
        if key not in INCLUDABLE and key != "include":
            problems.append(Problem(
                f"an included file may only hold {', '.join(INCLUDABLE)} and include, not '{key}'",
                included.key_location(key), (key,), hint=did_you_mean(str(key), INCLUDABLE)))
            included.drop(key)
    return included


def _merge(document: LocatedDict, included: LocatedDict, problems: Problems) -> None:
    for section in INCLUDABLE:
        if section not in included:
            continue
        incoming = included[section]
        if not isinstance(incoming, LocatedDict):
            problems.append(Problem(f"'{section}' is a mapping of names", included.value_location(section),
                                    (section,)))
            continue
        target = document.get(section)
        if target is None:
            target = LocatedDict(incoming.location)
            document.put(section, target, included.key_location(section), incoming.location)
        if not isinstance(target, LocatedDict):
            continue  # validation reports the including file's own section
        for name in incoming:
            if name in target:
                first, second = target.key_location(name), incoming.key_location(name)
                problems.append(Problem(
                    f"{_WHAT[section]} '{name}' is defined twice: at {first} and at {second}", second,
                    (section, name), hint="rename one, or keep one definition"))
                continue
            target.put_like(name, incoming[name], incoming, name)
