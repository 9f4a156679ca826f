"""Mappings and lists that remember where each key, value and item was written.

The loader turns YAML into these containers and keeps working on them through
every transform (template merges, overrides, interpolation), so that the
location of any document path can be computed at the end, pointing at the file
and line where that value was actually written. Scalars stay plain Python values:
their location lives in the container that holds them.

Both classes are real ``dict``/``list`` subclasses, so ``json.dumps`` and
ordinary code read them like plain data.
"""

from __future__ import annotations

from typing import Any, Iterator

from compressflow.errors import Location, PipelineError, Problem
from compressflow.dsl.limits import MAX_DEPTH, MAX_INT, MAX_VALUES, MIN_INT


class LocatedDict(dict):
    """A mapping with the location of itself, of each key and of each value."""

    __slots__ = ("location", "key_locations", "value_locations", "notes")

    def __init__(self, location: Location):
        super().__init__()
        self.location = location
        self.key_locations: dict[Any, Location] = {}
        self.value_locations: dict[Any, Location] = {}
        # Where a value came from when that is not obvious (e.g. "from params.sparsity").
        self.notes: dict[Any, str] = {}

    def put(self, key: Any, value: Any, key_location: Location, value_location: Location,
            note: str | None = None) -> None:
        self[key] = value
        self.key_locations[key] = key_location
        self.value_locations[key] = value_location
        if note is None:
            self.notes.pop(key, None)
        else:
            self.notes[key] = note

    def drop(self, key: Any) -> None:
        del self[key]
        self.key_locations.pop(key, None)
        self.value_locations.pop(key, None)
        self.notes.pop(key, None)

    def key_location(self, key: Any) -> Location:
        return self.key_locations.get(key, self.location)

    def value_location(self, key: Any) -> Location:
        return self.value_locations.get(key, self.location)

    def note(self, key: Any) -> str | None:
        return self.notes.get(key)

    def put_like(self, key: Any, value: Any, source: "LocatedDict", source_key: Any) -> None:
        """Copy the entry ``source[source_key]`` with its locations under ``key``."""
        self.put(key, value, source.key_location(source_key), source.value_location(source_key),
                 source.note(source_key))


class LocatedList(list):
    """A list with the location of itself and of each item."""

    __slots__ = ("location", "item_locations", "notes")

    def __init__(self, location: Location):
        super().__init__()
        self.location = location
        self.item_locations: list[Location] = []
        self.notes: dict[int, str] = {}

    def add(self, value: Any, location: Location, note: str | None = None) -> None:
        if note is not None:
            self.notes[len(self)] = note
        self.append(value)
        self.item_locations.append(location)

    def replace(self, index: int, value: Any, location: Location, note: str | None = None) -> None:
        self[index] = value
        self.item_locations[index] = location
        if note is None:
            self.notes.pop(index, None)
        else:
            self.notes[index] = note

    def item_location(self, index: int) -> Location:
        if 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location

    def note(self, index: int) -> str | None:
        return self.notes.get(index)


Container = LocatedDict | LocatedList


def entries(container: Container) -> Iterator[tuple[Any, Any, Location]]:
    """``(key or index, value, value location)`` of each entry of a container."""
    if isinstance(container, LocatedDict):
        for key, value in container.items():
            yield key, value, container.value_location(key)
    else:
        for index, value in enumerate(container):
            yield index, value, container.item_location(index)


def copy_located(value: Any) -> Any:
    """A deep copy of the containers (scalars are immutable and shared)."""
    if isinstance(value, LocatedDict):
        out = LocatedDict(value.location)
        for key, item in value.items():
            out.put_like(key, copy_located(item), value, key)
        return out
    if isinstance(value, LocatedList):
        out_list = LocatedList(value.location)
        for index, item in enumerate(value):
            out_list.add(copy_located(item), value.item_location(index), value.note(index))
        return out_list
    return value


def count_values(value: Any) -> int:
    """Number of values in a tree (each container and each scalar counts one)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        total += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total


class ValueBudget:
    """How many values a document may still grow by through copies (templates, includes, sweeps).

    The same bound as values read with aliases (:data:`~compressflow.dsl.limits.MAX_VALUES`):
    the copy that crosses it stops the load at once, located where that copy was asked for,
    before the memory is spent.
    """

    def __init__(self, document: Any):
        self.total = count_values(document)

    def add(self, value: Any, location: Location, path: tuple, what: str) -> None:
        """Count the values of ``value`` (about to be copied into the document); ``what`` makes the copy."""
        self.total += count_values(value)
        if self.total > MAX_VALUES:
            raise PipelineError([Problem(
                f"{what} expand the document to more than {MAX_VALUES:,} values", location, path,
                hint="a pipeline copies small configs; keep large values out of repeated templates, "
                     "includes and sweeps")])


# --------------------------------------------------------------------------- paths


def step(value: Any, key: Any) -> tuple[bool, Any]:
    """One step down a document path: ``(found, child)``."""
    if isinstance(value, dict) and key in value:
        return True, value[key]
    if isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool) \
            and 0 <= key < len(value):
        return True, value[key]
    return False, None


def location_of(tree: Any, path: tuple) -> Location | None:
    """Location of the value at ``path`` in ``tree``, or None if there is no such value."""
    found = locate_path(tree, path)
    return found[0] if found is not None else None


def locate_path(tree: Any, path: tuple) -> tuple[Location, str | None] | None:
    """``(location, note)`` of the value at ``path``, or None if there is no such value."""
    if not isinstance(tree, (LocatedDict, LocatedList)):
        return None
    location, note, current = tree.location, None, tree
    for key in path:
        found, child = step(current, key)
        if not found:
            return None
        if isinstance(current, LocatedDict):
            location, note = current.value_location(key), current.note(key)
        elif isinstance(current, LocatedList):
            location, note = current.item_location(key), current.note(key)
        current = child
    return location, note


def value_at(tree: Any, path: tuple) -> tuple[bool, Any]:
    """``(found, value)`` at ``path`` in ``tree``."""
    current = tree
    for key in path:
        found, current = step(current, key)
        if not found:
            return False, None
    return True, current


def key_location_of(tree: Any, path: tuple) -> Location | None:
    """Location of the key that holds the value at ``path`` (of the item, for list items)."""
    if not path:
        return location_of(tree, path)
    found, parent = value_at(tree, path[:-1])
    last = path[-1]
    if not found:
        return None
    if isinstance(parent, LocatedDict) and last in parent:
        return parent.key_location(last)
    if isinstance(parent, LocatedList) and step(parent, last)[0]:
        return parent.item_location(last)
    return None


# --------------------------------------------------------------------------- plain values


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def from_plain(value: Any, location: Location, problems: list[Problem],
               path: tuple = (), depth: int = 0) -> Any:
    """Turn plain Python data (a dict given to the API, an override value) into located data.

    Every value gets ``location``. Tuples become lists. Anything that YAML could not
    have produced (objects, non-string keys) is reported in ``problems`` and left
    out, and so are integers beyond 64 bits; NaN is checked later, like NaN from YAML.
    """
    if depth > MAX_DEPTH:
        problems.append(Problem(f"values are nested more than {MAX_DEPTH} levels deep", location, path))
        return None
    if isinstance(value, dict):
        out = LocatedDict(location)
        for key, item in value.items():
            if not isinstance(key, str) or not _encodable(key):
                problems.append(Problem(
                    f"mapping keys must be strings, got {type(key).__name__} {key!r}", location, path))
                continue
            out.put(key, from_plain(item, location, problems, path + (key,), depth + 1), location, location)
        return out
    if isinstance(value, (list, tuple)):
        out_list = LocatedList(location)
        for index, item in enumerate(value):
            out_list.add(from_plain(item, location, problems, path + (index,), depth + 1), location)
        return out_list
    if isinstance(value, str) and not _encodable(value):
        problems.append(Problem("text holds an invalid character (an unpaired surrogate)", location, path))
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_INT <= value <= MAX_INT:
        problems.append(Problem("integer is out of range (integers must fit in 64 bits)", location, path))
        return None
    if isinstance(value, _PLAIN_SCALARS):
        return value
    problems.append(Problem(
        f"unsupported value of Python type {type(value).__name__}; use strings, numbers, booleans, "
        "null, lists and mappings", location, path))
    return None



def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
