"""Turn pydantic validation errors into located, plain-words :class:`Problem` objects."""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from compressflow.errors import Location, Problem, did_you_mean
from compressflow.dsl.located import LocatedDict, key_location_of, locate_path, step, value_at
from compressflow.dsl.schema import NAME_RULE, PIPELINE_NAME_RULE

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


def problem_from_pydantic(error: dict, document: LocatedDict, model: type[BaseModel]) -> Problem:
    """A :class:`Problem` for one entry of ``ValidationError.errors()``."""
    kind, loc = error["type"], tuple(error["loc"])
    path, tail = _data_path(document, loc, kind)
    if kind == "union_tag_invalid" and isinstance(locate_path(document, path + ("type",)), tuple):
        path = path + ("type",)
    message, hint, location = _describe(kind, error, path, tail, document, model)
    if location is None:
        found = locate_path(document, path)
        location = found[0] if found else None
    shown_path = path + ((tail,) if tail is not None else ())
    return Problem(message, location, shown_path, hint)


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


def _describe(kind: str, error: dict, path: tuple, tail: Any, document: LocatedDict,
              model: type[BaseModel]) -> tuple[str, str | None, Location | None]:
    """``(message, hint, location or None for the value's own location)``."""
    given = error.get("input")
    ctx = error.get("ctx") or {}
    where = _where(path)
    if error["loc"] and error["loc"][-1] == "[key]":
        return _bad_name(path, given), None, key_location_of(document, path)
    if kind == "missing":
        if not path:
            return f"missing required top-level key '{tail}'", None, document.location
        return (f"missing required field '{tail}'{where}", None,
                key_location_of(document, path) or document.location)
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        fields = _fields_at(model, path[:-1], document)
        hint = did_you_mean(str(key), fields) if fields else None
        if hint is None and fields:
            hint = "known: " + ", ".join(fields)
        if len(path) == 1:
            return f"unknown top-level key '{key}'", hint, key_location_of(document, path)
        return f"unknown field '{key}'{_where(path[:-1])}", hint, key_location_of(document, path)
    if kind == "union_tag_invalid":
        tags = _QUOTED.findall(ctx.get("expected_tags", ""))
        tag = ctx.get("tag")
        what = _entry_kind(path)
        hint = did_you_mean(str(tag), tags)
        known = "known types: " + ", ".join(sorted(tags))
        hint = f"{hint} {known}" if hint else known
        return f"unknown {what}type '{tag}'{where}", hint, None
    if kind == "union_tag_not_found":
        tags = _known_tags(model, path, document)
        hint = ("add 'type: NAME'; known types: " + ", ".join(sorted(tags))) if tags else "add 'type: NAME'"
        if isinstance(given, dict):
            return (f"missing 'type'{where}: say which {_entry_kind(path)}type this is", hint,
                    key_location_of(document, path))
        return f"expected a mapping with a 'type'{where}, got {describe(given)}", hint, None
    if kind == "literal_error":
        options = _QUOTED.findall(ctx.get("expected", "")) or [ctx.get("expected", "")]
        if path == ("version",):
            return (f"unsupported version {describe(given)}: this compressflow reads version 1 files",
                    None, None)
        hint = did_you_mean(str(given), options) if isinstance(given, str) else None
        return f"expected one of {', '.join(repr(o) for o in options)}{where}, got {describe(given)}", hint, None
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}{where}, got {describe(given)}", _type_hint(kind, given), None
    if kind == "string_pattern_mismatch" and path == ("name",):
        return f"invalid pipeline name {describe(given)}: {PIPELINE_NAME_RULE}", None, None
    if kind in ("value_error", "assertion_error"):
        text = str(error.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            text = text.removeprefix(prefix)
        # A rule about a whole stage or mapping points at its name, not at its first field.
        found, value = value_at(document, path)
        return f"{text}{where}", None, key_location_of(document, path) if isinstance(value, dict) else None
    if kind == "too_short" and path == ("stages",):
        return "a pipeline needs at least one stage under 'stages'", None, None
    text = str(error.get("msg", "invalid value"))
    text = "must be " + text[len("Input should be "):] if text.startswith("Input should be ") else text
    text = text[:1].lower() + text[1:]
    return f"{text}{where}, got {describe(given)}", None, None


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


def _bad_name(path: tuple, given: Any) -> str:
    what = _SECTION_ENTRY.get(path[0], "key") if len(path) == 2 else "key"
    return f"invalid {what} name {describe(given)}: {NAME_RULE}"


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
        return f"'{text}' (a string)"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 256 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# --------------------------------------------------------------------------- the model at a path


def _flatten(annotation: Any) -> list[Any]:
    """The concrete types a (possibly Annotated / Optional / Union) annotation allows."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flatten(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _flatten(arg)]
    return [annotation]


def _narrow(annotation: Any, data: Any) -> Any:
    """The one type of ``annotation`` that applies to ``data`` (a model chosen by ``type``)."""
    candidates = [t for t in _flatten(annotation) if t is not type(None)]
    if isinstance(data, dict):
        models = [t for t in candidates if isinstance(t, type) and issubclass(t, BaseModel)]
        tagged = [m for m in models if "type" in m.model_fields
                  and m.model_fields["type"].default == data.get("type")]
        if len(tagged) == 1:
            return tagged[0]
        if len(models) == 1:
            return models[0]
        mappings = [t for t in candidates if get_origin(t) is dict]
        return mappings[0] if mappings else None
    if isinstance(data, list):
        sequences = [t for t in candidates if get_origin(t) in (list, tuple)]
        return sequences[0] if sequences else None
    return candidates[0] if len(candidates) == 1 else None


def _type_at(model: type[BaseModel], path: tuple, document: Any) -> Any:
    current_type: Any = model
    data = document
    for part in path:
        current_type = _narrow(current_type, data)
        if current_type is None:
            return None
        if isinstance(current_type, type) and issubclass(current_type, BaseModel):
            field = current_type.model_fields.get(part)
            if field is None:
                return None
            current_type = field.annotation
        elif get_origin(current_type) is dict:
            current_type = get_args(current_type)[1]
        elif get_origin(current_type) is list:
            current_type = get_args(current_type)[0]
        elif get_origin(current_type) is tuple:
            args = get_args(current_type)
            current_type = args[0] if args else Any
        else:
            return None
        data = step(data, part)[1]
    return _narrow(current_type, data)


def _fields_at(model: type[BaseModel], path: tuple, document: Any) -> list[str]:
    found = _type_at(model, path, document)
    if isinstance(found, type) and issubclass(found, BaseModel):
        return list(found.model_fields)
    return []


def _known_tags(model: type[BaseModel], path: tuple, document: Any) -> list[str]:
    parent = _type_at(model, path[:-1], document) if path else None
    annotation = None
    if isinstance(parent, type) and issubclass(parent, BaseModel) and path[-1] in parent.model_fields:
        annotation = parent.model_fields[path[-1]].annotation
    elif get_origin(parent) is dict:
        annotation = get_args(parent)[1]
    if annotation is None:
        return []
    return [m.model_fields["type"].default for m in _flatten(annotation)
            if isinstance(m, type) and issubclass(m, BaseModel) and "type" in m.model_fields]
