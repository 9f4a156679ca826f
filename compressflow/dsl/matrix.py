"""A stage's ``matrix:``: which fields a sweep sets, and to which values.

::

    pruned:
      type: prune
      matrix:
        schedule.final_sparsity: [0.7, 0.8, 0.9]   # a field path of this stage -> values
        epochs: [4, 8]

Each key is a path of fields of the stage's own type (checked, with a did-you-mean);
each value a non-empty list without repeats. The stage becomes one variant per
combination, labelled by the last segment of each path.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from compressflow.errors import Location, Problem, did_you_mean
from compressflow.dsl.located import LocatedDict, LocatedList
from compressflow.dsl.model_paths import fields_at
from compressflow.dsl.names import format_value
from compressflow.dsl.problems import Problems
from compressflow.dsl.schema import pipeline_model

#: Most variants one stage's matrix may make.
MAX_VARIANTS = 1000
#: Fields a sweep cannot set.
UNSWEPT = {"type": "the stage type", "extends": "the template", "matrix": "the sweep itself"}


@dataclass(frozen=True)
class Axis:
    """One key of a matrix: the field path it sets and the values it takes, with their locations."""

    path: tuple[str, ...]
    values: tuple[Any, ...]
    locations: tuple[Location, ...]
    key_location: Location

    @property
    def label(self) -> str:
        return self.path[-1]


@dataclass(frozen=True)
class Setting:
    """One variant's value for one axis."""

    axis: Axis
    index: int

    @property
    def value(self) -> Any:
        return self.axis.values[self.index]

    @property
    def location(self) -> Location:
        return self.axis.locations[self.index]

    @property
    def text(self) -> str:
        return format_value(self.value)


def take_matrix(document: LocatedDict, name: str, config: LocatedDict, known_type: bool,
                problems: Problems) -> list[Axis] | None:
    """Remove ``matrix`` from a stage's config and return its axes (None when it has none or is invalid).

    ``known_type`` says whether the stage's ``type`` is a registered one; field paths
    can only be checked then (otherwise validation reports the type).
    """
    matrix, location = config["matrix"], config.key_location("matrix")
    config.drop("matrix")
    base = ("stages", name, "matrix")
    if config.get("type") == "pipeline":
        problems.append(Problem(
            "a sweep ('matrix') cannot be put on a 'pipeline' stage", location, base,
            hint="sweep a stage inside the recipe, or the stage that feeds the recipe: its variants flow through"))
        return None
    if not isinstance(matrix, LocatedDict) or not matrix:
        problems.append(Problem("'matrix' maps field paths of the stage to lists of values, "
                                "e.g. {epochs: [2, 4]}", location, base))
        return None
    if not known_type:
        return None
    axes = [axis for key in matrix if (axis := _axis(document, name, matrix, key, problems)) is not None]
    if len(axes) != len(matrix):
        return None
    count = math.prod(len(axis.values) for axis in axes)
    if count > MAX_VARIANTS:
        problems.append(Problem(
            f"the matrix of stage '{name}' makes {count:,} variants; at most {MAX_VARIANTS:,} are allowed",
            location, base, hint="sweep fewer values, or split the sweep into several stages"))
        return None
    return axes


def combinations(axes: list[Axis]) -> list[tuple[Setting, ...]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    return [tuple(Setting(axis, index) for axis, index in zip(axes, indexes))
            for indexes in itertools.product(*(range(len(axis.values)) for axis in axes))]


def apply_setting(config: LocatedDict, setting: Setting) -> str | None:
    """Set ``setting``'s field in ``config`` (creating mappings on the way); an error text if it cannot."""
    parent = config
    for depth, part in enumerate(setting.axis.path[:-1]):
        if part not in parent:
            parent.put(part, LocatedDict(setting.axis.key_location), setting.axis.key_location,
                       setting.axis.key_location)
        child = parent[part]
        if not isinstance(child, LocatedDict):
            shown = ".".join(setting.axis.path[:depth + 1])
            return f"cannot sweep '{'.'.join(setting.axis.path)}': '{shown}' is not a mapping"
        parent = child
    parent.put(setting.axis.path[-1], setting.value, setting.axis.key_location, setting.location)
    return None


def _axis(document: LocatedDict, name: str, matrix: LocatedDict, key: str, problems: Problems) -> Axis | None:
    key_location, path = matrix.key_location(key), ("stages", name, "matrix", key)
    parts = tuple(key.split("."))
    if not key or any(not part for part in parts):
        problems.append(Problem(f"'{key}' is not a field path like epochs or schedule.final_sparsity",
                                key_location, path))
        return None
    if parts[0] in UNSWEPT:
        problems.append(Problem(f"a sweep cannot change '{parts[0]}' ({UNSWEPT[parts[0]]})", key_location, path,
                                hint="write one stage per type instead"))
        return None
    missing = _missing_field(document, name, parts)
    if missing is not None:
        problems.append(Problem(missing[0], key_location, path, hint=missing[1]))
        return None
    values = matrix[key]
    if not isinstance(values, LocatedList) or not values:
        problems.append(Problem(f"the values of '{key}' must be a non-empty list, e.g. [0.7, 0.8]",
                                matrix.value_location(key), path))
        return None
    seen: dict[Any, int] = {}
    for index, value in enumerate(values):
        identity = _identity(value)
        if identity in seen:
            problems.append(Problem(
                f"value {format_value(value)} of '{key}' is listed twice (items {seen[identity] + 1} and {index + 1})",
                values.item_location(index), path + (index,), hint="each variant must differ"))
            return None
        seen[identity] = index
    return Axis(parts, tuple(values), tuple(values.item_location(i) for i in range(len(values))), key_location)


def _missing_field(document: LocatedDict, name: str, parts: tuple[str, ...]) -> tuple[str, str | None] | None:
    """``(message, hint)`` when ``parts`` is not a field path of the stage's type."""
    model = pipeline_model()
    kind = document["stages"][name].get("type")
    for depth, part in enumerate(parts):
        fields = [field for field in fields_at(model, ("stages", name) + parts[:depth], document) if field != "type"]
        if not fields:
            return None  # a free-form mapping (or a union not yet chosen): anything may be below
        if part not in fields:
            owner = f"stage '{name}' ({kind})" if depth == 0 else f"'{'.'.join(parts[:depth])}' of stage '{name}'"
            hint = did_you_mean(part, fields) or "fields: " + ", ".join(fields)
            return f"matrix on a missing field: {owner} has no field '{part}'", hint
    return None


def _identity(value: Any) -> Any:
    """Equal for values that would make the same config (1 and 1.0 are the same number)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, (dict, list)):
        return ("json", repr(_plain(value)))
    return (type(value).__name__, value)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((str(key), _plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return _identity(value)
