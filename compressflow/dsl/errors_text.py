"""Turn pydantic validation errors into located, plain-words :class:`Problem` objects."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from compressflow.errors import Location, Problem, did_you_mean, quoted
from compressflow.dsl.located import LocatedDict, key_location_of, locate_path, value_at
from compressflow.dsl.model_paths import fields_at, known_tags
from compressflow.dsl.schema import NAME_RULE, PIPELINE_NAME_RULE
from compressflow.stages.registry import GROUPS, failures_for, plugin_failures

_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping", "none_required": "null",
}
_SECTION_ENTRY = {"stages": "stage", "datasets": "dataset", "params": "param"}
_QUOTED = re.compile(r"'([^']*)'")


@dataclass(frozen=True)
class _Error:
    """One pydantic error, placed in the document."""

    kind: str
    given: Any
    ctx: dict
    message: str
    path: tuple  # of the deepest value that exists
    tail: Any  # the missing key, for ``missing``
    document: LocatedDict
    model: type[BaseModel]

    @property
    def where(self) -> str:
        return _where(self.path)


# A handler gives (message, hint, location); location None means: where the value is.
Described = tuple[str, str | None, Location | None]


def problem_from_pydantic(error: dict, document: LocatedDict, model: type[BaseModel]) -> Problem:
    """A :class:`Problem` for one entry of ``ValidationError.errors()``."""
    kind, loc = error["type"], tuple(error["loc"])
    path, tail = _data_path(document, loc, kind)
    if kind == "union_tag_invalid" and locate_path(document, path + ("type",)) is not None:
        path = path + ("type",)
    if loc and loc[-1] == "[key]":
        kind = "[key]"
    found = _Error(kind, error.get("input"), error.get("ctx") or {}, str(error.get("msg", "invalid value")),
                   path, tail, document, model)
    message, hint, location = _HANDLERS.get(kind, _generic)(found)
    if location is None:
        located = locate_path(document, path)
        location = located[0] if located else None
    return Problem(message, location, path + ((tail,) if tail is not None else ()), hint)


def _data_path(document: Any, loc: tuple, kind: str) -> tuple[tuple, Any]:
    """Follow pydantic's ``loc`` through the data, dropping union tags and member labels.

    Returns the path of the deepest value that exists, and the missing key for
    ``missing`` errors (or the key itself for errors about a mapping key).
    """
    path: list = []
    current = document
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part == "[key]":
            return tuple(path), None
        if isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif last and kind == "missing":
            return tuple(path), part
        # else: a discriminator tag or a union member's label: not part of the document
    return tuple(path), None


def _bad_key(e: _Error) -> Described:
    what = _SECTION_ENTRY.get(e.path[0], "key") if len(e.path) == 2 else "key"
    return f"invalid {what} name {describe(e.given)}: {NAME_RULE}", None, key_location_of(e.document, e.path)


def _missing(e: _Error) -> Described:
    if not e.path:
        return f"missing required top-level key '{e.tail}'", None, e.document.location
    return (f"missing required field '{e.tail}'{e.where}", None,
            key_location_of(e.document, e.path) or e.document.location)


def _extra(e: _Error) -> Described:
    key = e.path[-1] if e.path else "?"
    fields = fields_at(e.model, e.path[:-1], e.document)
    hint = did_you_mean(str(key), fields) or ("known: " + ", ".join(fields) if fields else None)
    where = key_location_of(e.document, e.path)
    if len(e.path) == 1:
        return f"unknown top-level key '{key}'", hint, where
    return f"unknown field '{key}'{_where(e.path[:-1])}", hint, where


def _unknown_tag(e: _Error) -> Described:
    tags = _QUOTED.findall(e.ctx.get("expected_tags", ""))
    tag = e.ctx.get("tag")
    what = _entry_kind(e.path).strip() or "stage"
    failed = failures_for(str(tag), what)
    if failed:  # NOTE: the type exists, in a plugin that did not import
        return (f"{_entry_kind(e.path)}type '{tag}'{e.where} is not available: "
                + "; ".join(f.describe() for f in failed), failed[0].hint(), None)
    known = "known types: " + ", ".join(sorted(tags))
    close = did_you_mean(str(tag), tags)
    hint = f"{close} {known}" if close else known
    broken = [f.describe() for f in plugin_failures() if f.group in (None, GROUPS.get(what))]
    if broken:
        hint += "; plugins that failed to load may define it: " + "; ".join(broken)
    return f"unknown {_entry_kind(e.path)}type '{tag}'{e.where}", hint, None


def _missing_tag(e: _Error) -> Described:
    tags = known_tags(e.model, e.path, e.document)
    hint = ("add 'type: NAME'; known types: " + ", ".join(sorted(tags))) if tags else "add 'type: NAME'"
    if isinstance(e.given, dict):
        return (f"missing 'type'{e.where}: say which {_entry_kind(e.path)}type this is", hint,
                key_location_of(e.document, e.path))
    return f"expected a mapping with a 'type'{e.where}, got {describe(e.given)}", hint, None


def _literal(e: _Error) -> Described:
    options = _QUOTED.findall(e.ctx.get("expected", "")) or [e.ctx.get("expected", "")]
    if e.path == ("version",):
        return f"unsupported version {describe(e.given)}: this compressflow reads version 1 files", None, None
    hint = did_you_mean(e.given, options) if isinstance(e.given, str) else None
    return f"expected one of {', '.join(map(repr, options))}{e.where}, got {describe(e.given)}", hint, None


def _wrong_type(e: _Error) -> Described:
    return f"expected {_EXPECTED[e.kind]}{e.where}, got {describe(e.given)}", _type_hint(e.kind, e.given), None


def _pattern(e: _Error) -> Described:
    if e.path == ("name",):
        return f"invalid pipeline name {describe(e.given)}: {PIPELINE_NAME_RULE}", None, None
    return _generic(e)


def _rule(e: _Error) -> Described:
    text = e.message
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    # A rule about a whole stage or mapping points at its name, not at its first field.
    value = value_at(e.document, e.path)[1]
    return f"{text}{e.where}", None, key_location_of(e.document, e.path) if isinstance(value, dict) else None


def _too_short(e: _Error) -> Described:
    if e.path == ("stages",):
        return "a pipeline needs at least one stage under 'stages'", None, None
    return _generic(e)


def _generic(e: _Error) -> Described:
    text = e.message
    text = "must be " + text[len("Input should be "):] if text.startswith("Input should be ") else text
    return f"{text[:1].lower() + text[1:]}{e.where}, got {describe(e.given)}", None, None


_HANDLERS = {
    "[key]": _bad_key, "missing": _missing, "extra_forbidden": _extra, "union_tag_invalid": _unknown_tag,
    "union_tag_not_found": _missing_tag, "literal_error": _literal, "string_pattern_mismatch": _pattern,
    "value_error": _rule, "assertion_error": _rule, "too_short": _too_short,
    **{kind: _wrong_type for kind in _EXPECTED},
}


def _where(path: tuple) -> str:
    """`` in stage 'pruned'`` style context for messages (the full path is shown separately)."""
    if len(path) >= 2 and path[0] in ("stages", "datasets"):
        return f" in {_SECTION_ENTRY[path[0]]} '{path[1]}'"
    return ""


def _entry_kind(path: tuple) -> str:
    if path[-1:] == ("type",):
        path = path[:-1]
    if len(path) == 2 and path[0] in ("stages", "datasets"):
        return _SECTION_ENTRY[path[0]] + " "
    return ""


def _type_hint(kind: str, given: Any) -> str | None:
    if kind in ("int_type", "float_type") and isinstance(given, bool):
        return "true/false is a boolean; write a number"
    if kind in ("int_type", "float_type") and isinstance(given, str):
        try:
            float(given)
        except ValueError:
            return None
        return f"write {given.strip()} without quotes"
    if kind in ("int_type", "int_from_float") and isinstance(given, float) and given.is_integer():
        return f"write {int(given)} (no decimal point)"
    if kind == "bool_type" and isinstance(given, str):
        return "write true or false without quotes"
    return None


def describe(value: Any) -> str:
    """A short, YAML-flavoured description of a value for messages."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "null"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"{quoted(text)} (a string)"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 256 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
