"""JSON Schema (draft 2020-12) of the pipeline format, for editors and other tools.

Built from the pydantic models, then adjusted to what the loader accepts:

* every field of a stage or dataset (``type`` included) may be ``${params.NAME}``, at any depth;
* stage, dataset and param names follow the name rule (``propertyNames``);
* ``type`` is required; a stage may say ``extends: TEMPLATE`` and leave required fields
  (and even ``type``) to the template.
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
    for name, section in schema.get("properties", {}).items():
        _names_as_property_names(section)
        if name in ("stages", "datasets"):
            _require_type(section, definitions)
            _allow_type_reference(section)
    _allow_extends(schema["properties"]["stages"], definitions)
    definitions[PARAM_REFERENCE] = {
        "type": "string", "pattern": PARAM_REFERENCE_PATTERN,
        "description": "A reference to a param, replaced by its value: `${params.NAME}`.",
        "examples": ["${params.sparsity}"],
    }
    return {"$schema": DRAFT, **schema}


def _names_as_property_names(section: dict[str, Any]) -> None:
    """Make the name rule of ``stages``/``datasets``/``params`` binding for every key.

    pydantic writes a key pattern as ``patternProperties``, which leaves keys that do not
    match it unchecked; ``propertyNames`` plus ``additionalProperties`` checks them all.
    """
    patterns = section.get("patternProperties")
    if not isinstance(patterns, dict) or len(patterns) != 1:
        return
    (pattern, value_schema), = patterns.items()
    del section["patternProperties"]
    section["propertyNames"] = {**section.get("propertyNames", {}), "pattern": pattern}
    section["additionalProperties"] = value_schema


def _require_type(section: dict[str, Any], definitions: dict[str, Any]) -> None:
    """``type`` selects the member of the union: it is required even though models default it."""
    for member in section.get("additionalProperties", {}).get("oneOf", []):
        definition = definitions.get(member.get("$ref", "").rpartition("/")[2])
        if definition is not None and "type" not in definition.get("required", []):
            definition["required"] = ["type", *definition.get("required", [])]


def _allow_type_reference(section: dict[str, Any]) -> None:
    """``type: ${params.kind}`` is valid too (its fields cannot be checked by the schema then)."""
    union = section.get("additionalProperties", {}).get("oneOf")
    if isinstance(union, list):
        union.append({"type": "object", "required": ["type"], "properties": {"type": _REF}})


def _allow_extends(stages: dict[str, Any], definitions: dict[str, Any]) -> None:
    """A stage may say ``extends: TEMPLATE``; its required fields may then come from the template."""
    union = stages.get("additionalProperties", {}).get("oneOf", [])
    extends = {"type": "string", "description": "Name of a template (under `templates:`) this stage starts from."}
    for member in union:
        name = member.get("$ref", "").rpartition("/")[2]
        definition = definitions.get(name)
        if definition is None:
            continue
        definition.setdefault("properties", {})["extends"] = extends
        required = [field for field in definition.pop("required", []) if field != "type"]
        definition["required"] = ["type"]
        if required:
            definition["if"] = {"required": ["extends"]}
            definition["else"] = {"required": required}
    union.append({"type": "object", "required": ["extends"], "not": {"required": ["type"]},
                  "properties": {"extends": extends}})


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
    inner = _loosen_children({key: value for key, value in schema.items() if key not in _METADATA})
    if not _needs_reference(inner):
        return {**meta, **inner}
    members = inner["anyOf"] if set(inner) == {"anyOf"} else [inner]
    return {**meta, "anyOf": [*members, _REF]}


def _loosen_children(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` whose nested values (items, mapping values, union members' items) accept references."""
    out = dict(schema)
    if "items" in out:
        out["items"] = _loosen(out["items"])
    if "prefixItems" in out:
        out["prefixItems"] = [_loosen(item) for item in out["prefixItems"]]
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _loosen(out["additionalProperties"])
    for union in ("anyOf", "oneOf"):
        if union in out:
            out[union] = [_loosen_children(member) if isinstance(member, dict) else member
                          for member in out[union]]
    return out


def _needs_reference(schema: dict[str, Any]) -> bool:
    """False when the schema already accepts any string (so ``${params.x}`` too)."""
    if not schema:
        return False
    constrained = {"pattern", "enum", "const", "minLength", "maxLength", "format"}
    return not (schema.get("type") == "string" and not constrained & set(schema))
