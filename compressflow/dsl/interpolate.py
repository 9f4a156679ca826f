"""``${params.NAME}`` interpolation in ``datasets`` and ``stages``.

* A string that is exactly one ``${params.x}`` becomes the param's value, type
  and all (``0.8`` stays a float, a list stays a list).
* Inside a longer string the value is formatted into it (``out/${params.name}.tflite``).
* ``${params.a.b}`` reaches into a mapping (or ``${params.a.0}`` into a list) param.
* ``$${`` is a literal ``${``.

Params are values, not templates: they cannot refer to other params.
"""

from __future__ import annotations

import json
import re
from typing import Any

from compressflow.errors import Location, Problem, did_you_mean
from compressflow.dsl.problems import Problems
from compressflow.dsl.limits import MAX_INTERPOLATED_CHARACTERS, MAX_VALUES
from compressflow.dsl.located import LocatedDict, LocatedList, copy_located, count_values, entries

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_WHOLE = re.compile(r"\$\{([^}]*)\}")
_PARAM_PATH = re.compile(r"params(?:\.[A-Za-z0-9_-]+)+")

#: Sections of the document where interpolation applies.
SECTIONS = ("datasets", "stages")


class _Budget:
    """What interpolation may still add: values (whole params) and characters (params in text)."""

    def __init__(self) -> None:
        self.values = MAX_VALUES
        self.characters = MAX_INTERPOLATED_CHARACTERS


def interpolate(document: LocatedDict, problems: Problems) -> None:
    """Resolve every ``${params.x}`` in ``document``'s datasets and stages, in place."""
    params = document.get("params")
    if not isinstance(params, LocatedDict):
        params = LocatedDict(document.location)
    _unescape_params(params, ("params",), problems)
    budget = _Budget()
    for section in SECTIONS:
        value = document.get(section)
        if isinstance(value, (LocatedDict, LocatedList)):
            _resolve_container(value, (section,), params, problems, budget)


def _unescape_params(container: Any, path: tuple, problems: Problems) -> None:
    if not isinstance(container, (LocatedDict, LocatedList)):
        return
    for key, value, location in list(entries(container)):
        if isinstance(value, str) and "$" in value:
            text = _expand(value, location, path + (key,), None, problems, _Budget())
            if text is not None:
                _set(container, key, text, location, container.note(key))
        else:
            _unescape_params(value, path + (key,), problems)


def _resolve_container(container: LocatedDict | LocatedList, path: tuple, params: LocatedDict,
                       problems: Problems, budget: _Budget) -> None:
    keys = list(container) if isinstance(container, LocatedDict) else range(len(container))
    for key in keys:
        value = container[key]
        if isinstance(value, str):
            if "$" in value:
                location = (container.value_location(key) if isinstance(container, LocatedDict)
                            else container.item_location(key))
                _resolve_string(container, key, value, location, path + (key,), params, problems, budget)
        elif isinstance(value, (LocatedDict, LocatedList)):
            _resolve_container(value, path + (key,), params, problems, budget)


def _resolve_string(container, key, text: str, location: Location, path: tuple, params: LocatedDict,
                    problems: Problems, budget: _Budget) -> None:
    whole = _WHOLE.fullmatch(text)
    if whole:
        found = _lookup(whole.group(1), params, location, path, problems)
        if found is None:
            return
        value, param_path, param_location = found
        budget.values -= count_values(value)
        if budget.values < 0:
            problems.invalid(Problem(f"params expand the document to more than {MAX_VALUES:,} values",
                                    location, path))
            return
        note = f"the value comes from {param_path} ({param_location})"
        _set(container, key, copy_located(value), location, note)
        return
    expanded = _expand(text, location, path, params, problems, budget)
    if expanded is not None and expanded != text:
        _set(container, key, expanded, location, None)


def _expand(text: str, location: Location, path: tuple, params: LocatedDict | None,
            problems: Problems, budget: _Budget) -> str | None:
    """Format every ``${...}`` of ``text``; ``params=None`` means references are not allowed here."""
    out: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        out.append(text[position:match.start()])
        position = match.end()
        token = match.group(0)
        if token == "$${":
            out.append("${")
        elif token == "${":
            problems.invalid(Problem(f"'${{' without a closing '}}' in {text!r}", location, path,
                                    hint="write $${ for a literal ${"))
            return None
        elif params is None:
            problems.invalid(Problem(f"params cannot refer to other params ({token})", location, path,
                                    hint="write the value itself, or $${ for a literal ${"))
            return None
        else:
            found = _lookup(match.group(1), params, location, path, problems)
            if found is None:
                return None
            formatted = _format(found[0])
            budget.characters -= len(formatted)
            if budget.characters < 0:
                problems.invalid(Problem(
                    f"params expand the document's text to more than {MAX_INTERPOLATED_CHARACTERS:,} characters",
                    location, path))
                return None
            out.append(formatted)
    out.append(text[position:])
    return "".join(out)


def _lookup(body: str, params: LocatedDict, location: Location, path: tuple,
            problems: Problems) -> tuple[Any, str, Location] | None:
    """``(value, "params.a.b", where the value was written)`` or None after reporting why not."""
    body = body.strip()
    if not _PARAM_PATH.fullmatch(body):
        problems.invalid(Problem(
            f"cannot interpolate '${{{body}}}': only ${{params.NAME}} is supported", location, path,
            hint="write $${ for a literal ${"))
        return None
    parts = body.split(".")[1:]
    current: Any = params
    current_location = params.location
    for depth, part in enumerate(parts):
        shown = ".".join(["params", *parts[:depth + 1]])
        if isinstance(current, LocatedDict):
            if part not in current:
                problems.invalid(Problem(
                    f"unknown param '{shown}'", location, path,
                    hint=did_you_mean(part, current) or _known(current, "params" if depth == 0 else None)))
                return None
            current, current_location = current[part], current.value_location(part)
        elif isinstance(current, LocatedList) and part.isdigit() and int(part) < len(current):
            current, current_location = current[int(part)], current.item_location(int(part))
        else:
            parent = ".".join(["params", *parts[:depth]])
            problems.invalid(Problem(f"unknown param '{shown}': '{parent}' has no entry '{part}'",
                                    location, path))
            return None
    return current, body, current_location


def _known(mapping: LocatedDict, what: str | None) -> str | None:
    if not mapping:
        return "there are no params; define them under 'params:'" if what == "params" else None
    return "known: " + ", ".join(sorted(map(str, mapping)))


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(", ", ": "))


def _set(container, key, value: Any, location: Location, note: str | None) -> None:
    if isinstance(container, LocatedDict):
        container.put(key, value, container.key_location(key), location, note)
    else:
        container.replace(key, value, location, note)
