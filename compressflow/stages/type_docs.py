"""What the reference says about each stage type, dataset type and nested model, read from JSON Schemas.

A :class:`TypeDoc` is one table of the reference: a registered type (``prune``, ``npz``) or a model
that a field of one holds (``ConstantSchedule``, ``EarlyStopping``). :func:`nested_docs` gives every
nested model once, however many types use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from compressflow.stages.schema_text import model_schema, referenced_models, value_text

# NOTE: a discriminated union needs its `type` key written even where the member model has a default.
DISCRIMINATOR_NOTE = "Selects this alternative."


@dataclass(frozen=True)
class FieldDoc:
    """One field a user writes: its JSON Schema, whether it must be given, and what it is for."""

    name: str
    schema: dict[str, Any]
    required: bool
    description: str

    @property
    def default(self) -> str | None:
        """The default as written in YAML; ``None`` when the field is required or has no default."""
        if self.required or "default" not in self.schema:
            return None
        return value_text(self.schema["default"])


@dataclass
class TypeDoc:
    """One table of the reference.

    ``refs`` maps the ``$defs`` names its fields use to the names the nested models go by in the
    reference (the same, unless two types have different models of the same name).
    """

    title: str
    summary: str
    fields: list[FieldDoc]
    defs: dict[str, dict[str, Any]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    what: str = ""  # "stage", "dataset" or "" for a nested model
    origin: str = ""  # module:qualname of a registered type
    example: str = ""
    used_in: list[str] = field(default_factory=list)  # "prune.schedule" for a nested model

    def link_name(self, local: str) -> str:
        return self.refs.get(local, local)


def _field_docs(schema: dict[str, Any], *, skip_type: bool, discriminator: str | None = None) -> list[FieldDoc]:
    required = set(schema.get("required", ()))
    docs = []
    for name, prop in schema.get("properties", {}).items():
        if name == "type" and skip_type:
            continue
        is_key = name == discriminator
        docs.append(FieldDoc(name, prop, name in required or is_key,
                             prop.get("description", "") or (DISCRIMINATOR_NOTE if is_key else "")))
    return sorted(docs, key=lambda doc: doc.name != discriminator)  # the selecting key first


def type_doc(kind: str, cls: type[BaseModel], what: str) -> TypeDoc:
    """The table of the registered ``what`` type (``stage`` or ``dataset``) ``kind``."""
    schema = model_schema(cls)
    defs = schema.get("$defs", {})
    return TypeDoc(kind, schema.get("description", ""), _field_docs(schema, skip_type=True), defs,
                   {name: name for name in defs}, what, f"{cls.__module__}:{cls.__qualname__}",
                   getattr(cls, "example", "") or "")


def _discriminators(node: Any, found: dict[str, str]) -> dict[str, str]:
    """``$defs`` name -> the property that selects it in a discriminated union, anywhere in ``node``."""
    if isinstance(node, dict):
        selector = node.get("discriminator")
        if isinstance(selector, dict):
            for ref in selector.get("mapping", {}).values():
                found[ref.rpartition("/")[2]] = selector["propertyName"]
        for value in node.values():
            _discriminators(value, found)
    elif isinstance(node, list):
        for value in node:
            _discriminators(value, found)
    return found


def nested_docs(owners: list[TypeDoc]) -> list[TypeDoc]:
    """Every model the fields of ``owners`` hold, each once, sorted by name; fills in ``owner.refs``.

    A name that two owners use for different models is told apart by the first owner's title,
    e.g. ``Options (my_stage)``.
    """
    by_name: dict[str, TypeDoc] = {}
    for owner in owners:
        selectors = _discriminators(owner.defs, _discriminators([f.schema for f in owner.fields], {}))
        for local, schema in owner.defs.items():
            name = local
            if local in by_name and by_name[local].defs.get(local) != schema:
                name = f"{local} ({owner.title})"
            owner.refs[local] = name
            if name not in by_name:
                by_name[name] = TypeDoc(name, schema.get("description", ""),
                                        _field_docs(schema, skip_type=False, discriminator=selectors.get(local)),
                                        {local: schema})
    for owner in owners:  # nested models refer to each other by their owner's names
        for local in owner.defs:
            nested = by_name[owner.refs[local]]
            nested.refs.update(owner.refs)
    for doc in [*owners, *by_name.values()]:
        for f in doc.fields:
            for local in referenced_models(f.schema):
                place = f"{doc.title}.{f.name}"
                used_in = by_name[doc.link_name(local)].used_in
                if place not in used_in:
                    used_in.append(place)
    return [by_name[name] for name in sorted(by_name, key=str.lower)]
