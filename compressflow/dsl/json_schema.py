"""JSON Schema (draft 2020-12) of the pipeline format, for editors and other tools.

Built from the pydantic models, then loosened where users may write
``${params.NAME}`` instead of a value: every field of a stage or dataset (except
``type``) also accepts such a reference, at any depth.
"""

from __future__ import annotations

import copy
from typing import Any

from compressflow.dsl.schema import pipeline_model

DRAFT = "https://json-schema.org/draft/2020-12/schema"
PARAM_REFERENCE = "ParamReference"
PARAM_REFERENCE_PATTERN = r"^\$\{\s*params(\.[A-Za-z0-9_-]+)+\s*\}$"
_REF = {"$ref": f"#/$defs/{PARAM_REFERENCE}"}
_METADATA = ("title", "description", "default", "examples", "deprecated")


def pipeline_json_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline file for the stage and dataset types registered now."""
    schema = copy.deepcopy(pipeline_model().model_json_schema(mode="validation"))
    definitions = schema.setdefault("$defs", {})
    for definition in definitions.values():
        _loosen_model(definition)
    definitions[PARAM_REFERENCE] = {
        "type": "string", "pattern": PARAM_REFERENCE_PATTERN,
        "description": "A reference to a param, replaced by its value: `${params.NAME}`.",
        "examples": ["${params.sparsity}"],
    }
    return {"$schema": DRAFT, **schema}


def _loosen_model(definition: dict[str, Any]) -> None:
    properties = definition.get("properties", {})
    for name, prop in properties.items():
        if name != "type":  # the discriminator must stay literal
            properties[name] = _loosen(prop)


def _loosen(schema: Any) -> Any:
    """``schema`` that also accepts a param reference, here and in every nested value."""
    if not isinstance(schema, dict) or not schema:
        return schema
    meta = {key: schema[key] for key in _METADATA if key in schema}
    inner = {key: value for key, value in schema.items() if key not in _METADATA}
    if "items" in inner:
        inner["items"] = _loosen(inner["items"])
    if "prefixItems" in inner:
        inner["prefixItems"] = [_loosen(item) for item in inner["prefixItems"]]
    if isinstance(inner.get("additionalProperties"), dict):
        inner["additionalProperties"] = _loosen(inner["additionalProperties"])
    if not _needs_reference(inner):
        return {**meta, **inner}
    if set(inner) == {"anyOf"}:
        members = [_loosen_member(member) for member in inner["anyOf"]]
        return {**meta, "anyOf": members + [_REF]}
    return {**meta, "anyOf": [_loosen_member(inner), _REF]}


def _loosen_member(schema: dict[str, Any]) -> dict[str, Any]:
    loosened = _loosen(schema)
    # Drop the reference that _loosen added to a member: the union has it once.
    if isinstance(loosened, dict) and loosened.get("anyOf", [None])[-1] == _REF and set(loosened) == {"anyOf"}:
        members = loosened["anyOf"][:-1]
        return members[0] if len(members) == 1 else {"anyOf": members}
    return loosened


def _needs_reference(schema: dict[str, Any]) -> bool:
    """False when the schema already accepts any string (so ``${params.x}`` too)."""
    if not schema:
        return False
    constrained = {"pattern", "enum", "const", "minLength", "maxLength", "format"}
    return not (schema.get("type") == "string" and not constrained & set(schema))
