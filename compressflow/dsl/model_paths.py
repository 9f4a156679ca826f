"""Which pydantic model (or type) describes the value at a document path.

Used to name the fields a mapping may have (did-you-mean for unknown fields) and
the types a ``type:`` may take, following discriminated unions by the data's ``type``.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from compressflow.dsl.located import step


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


def fields_at(model: type[BaseModel], path: tuple, document: Any) -> list[str]:
    """Field names of the model at ``path`` (empty when the value there is not a model)."""
    found = _type_at(model, path, document)
    if isinstance(found, type) and issubclass(found, BaseModel):
        return list(found.model_fields)
    return []


def known_tags(model: type[BaseModel], path: tuple, document: Any) -> list[str]:
    """The ``type`` values the tagged union at ``path`` accepts."""
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
