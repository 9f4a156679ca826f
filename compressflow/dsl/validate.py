"""Validate a located document against the pipeline model, reporting every problem.

Validation is pydantic's *strict JSON mode*: the document is JSON-shaped data, and
strict JSON validation accepts exactly what a careful reader of the YAML would
expect. ``true`` is not an integer, ``"5"`` is not a number, ``5.5`` is not an
integer, but lists are accepted for tuple fields (``block_size: [1, 4]``) and
integers for float fields. NaN, infinity and integers beyond 64 bits are refused
before pydantic sees them.
"""

from __future__ import annotations

import json
import math
from pydantic import BaseModel, ValidationError

from compressflow.errors import Problem
from compressflow.dsl.problems import Problems
from compressflow.dsl.errors_text import problem_from_pydantic
from compressflow.dsl.limits import MAX_INT, MIN_INT
from compressflow.dsl.located import LocatedDict, LocatedList
from compressflow.dsl.schema import pipeline_model

#: Parts of the document whose numbers must be finite (params only matter where used).
CHECKED_SECTIONS = ("seed", "datasets", "stages")


def validate_document(document: LocatedDict, problems: Problems) -> BaseModel | None:
    """The validated ``PipelineDocument``, or None after adding its problems to ``problems``."""
    model = pipeline_model()
    number_problems = 0
    for problem, container, key in _number_problems(document):
        problems.invalid(problem)
        container[key] = None  # reported; keeps it out of json.dumps, which may choke on it
        number_problems += 1
    data = json.dumps(document, ensure_ascii=False)
    try:
        validated = model.model_validate_json(data, strict=True)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(problem_from_pydantic(error, document, model))
        return None
    return None if number_problems else validated


def _number_problems(document: LocatedDict):
    """``(problem, container, key)`` for every NaN, infinity or out-of-range integer."""
    for section in CHECKED_SECTIONS:
        if section not in document:
            continue
        stack = [(document, section, (section,))]
        while stack:
            container, key, path = stack.pop()
            value = container[key]
            if isinstance(value, dict):
                stack.extend((value, child, path + (child,)) for child in value)
            elif isinstance(value, list):
                stack.extend((value, index, path + (index,)) for index in range(len(value)))
            elif isinstance(value, float) and not math.isfinite(value):
                yield Problem(f"{_float_name(value)} is not allowed here; write a finite number",
                              _location(container, key), path), container, key
            elif isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
                yield Problem(f"integer {_int_text(value)} is out of range (integers must fit in 64 bits)",
                              _location(container, key), path), container, key


def _location(container: LocatedDict | LocatedList, key):
    if isinstance(container, LocatedDict):
        return container.value_location(key)
    return container.item_location(key)


def _float_name(value: float) -> str:
    return "NaN (not a number)" if math.isnan(value) else "infinity"


def _int_text(value: int) -> str:
    if value.bit_length() > 256:  # str() refuses very long integers, and nobody wants to read them
        return f"with {int(value.bit_length() * math.log10(2))}+ digits"
    return str(value)
