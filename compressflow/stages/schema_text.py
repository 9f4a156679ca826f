"""Field types of a JSON Schema in words: allowed values, bounds, item and value types, nested models.

``describe`` renders the stage reference with it, in Markdown (docs/stages.md) and for the terminal
(``compressflow stages NAME``); a :class:`Style` says how values and nested models are written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

NULL = {"type": "null"}
_REF_PREFIX = "#/$defs/"


class _SchemaWithFactoryDefaults(GenerateJsonSchema):
    """JSON Schema whose fields with a ``default_factory`` show the default it makes (``[]``, ``{}``)."""

    def get_default_value(self, schema):
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()
        return super().get_default_value(schema)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s validation JSON Schema, with the defaults of default factories filled in."""
    return model.model_json_schema(schema_generator=_SchemaWithFactoryDefaults)


@dataclass(frozen=True)
class Style:
    """How rendered types are written: ``value`` wraps one allowed value, ``link`` names a nested model
    (given its name in ``$defs``), ``union`` separates alternatives."""

    value: Callable[[str], str]
    link: Callable[[str], str]
    union: str = " | "


def value_text(value: Any) -> str:
    """A value as a user writes it in YAML: ``adam``, ``0.2``, ``true``, ``["accuracy"]``, ``null``."""
    if isinstance(value, str) and value and _reads_back_as_string(value):
        return value
    return json.dumps(value, default=str)


def _reads_back_as_string(text: str) -> bool:
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False


def is_nullable(schema: dict[str, Any]) -> bool:
    """Whether ``null`` is one of the values the schema allows."""
    return NULL in schema.get("anyOf", ()) or schema.get("type") == "null"


def ref_name(schema: dict[str, Any]) -> str | None:
    """The ``$defs`` name a ``{"$ref": "#/$defs/Name"}`` schema points to."""
    ref = schema.get("$ref", "")
    return ref[len(_REF_PREFIX):] if ref.startswith(_REF_PREFIX) else None


def referenced_models(schema: Any) -> list[str]:
    """``$defs`` names referenced anywhere in ``schema``, in order of first appearance."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            name = ref_name(node)
            if name is not None and name not in found:
                found.append(name)
            for key, value in node.items():
                if key != "$defs":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def type_text(schema: dict[str, Any], style: Style) -> str:
    """The type of a field in words, e.g. ``integer (>= 1)``, ``qat | int8``, ``list of string``,
    ``ConstantSchedule | PolynomialDecaySchedule, optional``.

    "optional" marks a field that may be null (left unset).
    """
    members = [member for member in schema.get("anyOf", [schema]) if member != NULL]
    text = style.union.join(_one(member, style) for member in members) if members else "null"
    return text + ", optional" if is_nullable(schema) and members else text


def _one(schema: dict[str, Any], style: Style) -> str:
    name = ref_name(schema)
    if name is not None:
        return style.link(name)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            return style.union.join(_one(member, style) for member in schema[key])
    if "const" in schema:
        return style.value(value_text(schema["const"]))
    if "enum" in schema:
        return style.union.join(style.value(value_text(value)) for value in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return style.union.join(_one({**schema, "type": each}, style) for each in kind)
    if kind == "array":
        return _array(schema, style)
    if kind == "object":
        return _mapping(schema, style)
    return _with_bounds(kind or "any", _number_bounds(schema) or _string_bounds(schema, style))


def _array(schema: dict[str, Any], style: Style) -> str:
    if "prefixItems" in schema:
        return "[" + ", ".join(_one(item, style) for item in schema["prefixItems"]) + "]"
    items = schema.get("items")
    text = f"list of {_one(items, style)}" if items else "list"
    return _with_bounds(text, _count_bounds(schema, "minItems", "maxItems", "item"))


def _mapping(schema: dict[str, Any], style: Style) -> str:
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and values:
        return f"dict of string to {_one(values, style)}"
    return "dict"


def _with_bounds(text: str, bounds: str) -> str:
    return f"{text} ({bounds})" if bounds else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _number_bounds(schema: dict[str, Any]) -> str:
    """``>= 0``, ``< 1``, ``0 < x <= 1``."""
    low = [(schema[key], op) for key, op in (("minimum", "<="), ("exclusiveMinimum", "<")) if key in schema]
    high = [(schema[key], op) for key, op in (("maximum", "<="), ("exclusiveMaximum", "<")) if key in schema]
    if low and high:
        return f"{_number(low[0][0])} {low[0][1]} x {high[0][1]} {_number(high[0][0])}"
    if low:
        return f"{low[0][1].replace('<', '>')} {_number(low[0][0])}"
    if high:
        return f"{high[0][1]} {_number(high[0][0])}"
    return ""


def _string_bounds(schema: dict[str, Any], style: Style) -> str:
    parts = [_count_bounds(schema, "minLength", "maxLength", "character")]
    if "pattern" in schema:
        parts.append(f"matching {style.value(schema['pattern'])}")
    return ", ".join(filter(None, parts))


def _count_bounds(schema: dict[str, Any], low_key: str, high_key: str, unit: str) -> str:
    low, high = schema.get(low_key), schema.get(high_key)
    if low is not None and low == high:
        return f"exactly {low} {unit}" + ("s" if low != 1 else "")
    if low is not None and high is not None:
        return f"{low} to {high} {unit}s"
    if low is not None:
        return f"at least {low} {unit}" + ("s" if low != 1 else "")
    if high is not None:
        return f"at most {high} {unit}" + ("s" if high != 1 else "")
    return ""
