"""Build located values straight from PyYAML's event stream.

No PyYAML constructor ever runs, so no tag can build a Python object: scalars
are resolved with PyYAML's safe resolver and turned into values here, and only
the standard tags are accepted (str, int, float, bool, null, seq, map;
timestamps stay strings). The builder is iterative (no recursion, whatever the
nesting) and enforces the limits of :mod:`compressflow.dsl.limits` while it
reads: nesting depth, number of values, and growth through aliases.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from yaml.constructor import SafeConstructor
from yaml.events import (AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                         SequenceEndEvent, StreamEndEvent)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from compressflow.errors import Location, Problem
from compressflow.dsl.limits import MAX_ALIAS_VALUES, MAX_DEPTH, MAX_INT, MAX_NODES, MIN_INT
from compressflow.dsl.located import LocatedDict, LocatedList, copy_located

_STD = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_STD + t for t in ("str", "int", "float", "bool", "null"))
TIMESTAMP, MERGE, VALUE, SEQ, MAP = (_STD + t for t in ("timestamp", "merge", "value", "seq", "map"))
_KEY_TAGS = (STR, INT, FLOAT, BOOL, NULL, TIMESTAMP, VALUE)

# Braces of `${...}` as yaml_source protects them from the YAML parser (see there).
PROTECTED_OPEN, PROTECTED_CLOSE = "\ue000", "\ue001"
_UNPROTECT = str.maketrans({PROTECTED_OPEN: "{", PROTECTED_CLOSE: "}"})

_RESOLVER = Resolver()
_SCALARS = SafeConstructor()
_IN_PROGRESS = object()  # an anchored value still being read (an alias to it is recursive)
_MERGE_KEY = object()  # the `<<` key of a YAML merge
_BAD_KEY = object()  # a key that was already reported: its value is read and dropped
_KEY_MARKERS = (_MERGE_KEY, _BAD_KEY)


class Fatal(Exception):
    """Stops reading: the document cannot be converted at all."""

    def __init__(self, problem: Problem):
        self.problem = problem


class ReadBudget:
    """Values read and values added by aliases so far; one budget may span several texts (``--set``)."""

    __slots__ = ("values", "alias_values")

    def __init__(self) -> None:
        self.values = 0
        self.alias_values = 0


class _Frame:
    """A mapping or list being read."""

    __slots__ = ("value", "path", "anchor", "key", "key_location", "merges", "skip")

    def __init__(self, value: LocatedDict | LocatedList, path: tuple, anchor: str | None):
        self.value = value
        self.path = path
        self.anchor = anchor
        self.key: Any = None  # mappings: the key read, waiting for its value
        self.key_location: Location | None = None
        self.merges: list[tuple[Any, Location]] = []
        self.skip = False  # the next value belongs to an invalid key: read it, drop it


class Builder:
    """Reads one document from ``get_event`` into located values, collecting problems."""

    def __init__(self, name: str, protected: bool = False, budget: ReadBudget | None = None):
        self.name = name
        self.protected = protected
        self.problems: list[Problem] = []
        self.invalid_paths: list[tuple] = []
        self._anchors: dict[str, Any] = {}
        self.budget = budget if budget is not None else ReadBudget()

    def location(self, mark) -> Location:
        return Location(self.name, mark.line + 1, mark.column + 1)

    def _invalid(self, message: str, location: Location, path: tuple, hint: str | None = None) -> None:
        self.problems.append(Problem(message, location, path, hint))
        self.invalid_paths.append(path)

    # -- the event loop -----------------------------------------------------------

    def document(self, get_event: Callable[[], Any]) -> tuple[Any, Location | None, Location | None]:
        """``(root value, its location, location of a second document or None)``; None root if empty."""
        get_event()  # stream start
        event = get_event()
        if isinstance(event, StreamEndEvent):
            return None, None, None
        root, root_location = self._value(get_event)
        get_event()  # document end
        event = get_event()
        extra = self.location(event.start_mark) if isinstance(event, DocumentStartEvent) else None
        return root, root_location, extra

    def _value(self, get_event: Callable[[], Any]) -> tuple[Any, Location]:
        stack: list[_Frame] = []
        name = self.name
        budget = self.budget
        while True:
            event = get_event()
            kind = type(event)
            budget.values += 1
            if kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                if frame.merges:
                    self._merge(frame)
                value, location = frame.value, frame.value.location
                if frame.anchor is not None:
                    self._anchors[frame.anchor] = value
            else:
                mark = event.start_mark
                location = Location(name, mark.line + 1, mark.column + 1)
                if budget.values > MAX_NODES:
                    raise Fatal(Problem(f"the document has more than {MAX_NODES:,} values", location))
                if kind is ScalarEvent:
                    value = self._scalar(event, location, stack)
                    if event.anchor is not None:
                        self._define(event.anchor, event.value if value in _KEY_MARKERS else value, location)
                elif kind is AliasEvent:
                    value = self._alias(event.anchor, location, len(stack))
                else:
                    if len(stack) >= MAX_DEPTH:
                        raise Fatal(Problem(f"values are nested more than {MAX_DEPTH} levels deep", location))
                    stack.append(self._open(event, location, _path(stack)))
                    continue
            if not stack:
                return value, location
            frame = stack[-1]
            container = frame.value
            if type(container) is LocatedList:
                container.add(value, location)
            elif frame.key is None and not frame.skip:
                self._key(frame, value, location)
            else:
                self._set(frame, value, location)

    # -- containers ---------------------------------------------------------------

    def _open(self, event, location: Location, path: tuple) -> _Frame:
        is_map = type(event) is MappingStartEvent
        tag = event.tag
        if tag not in (None, "!", MAP if is_map else SEQ):
            self._invalid(_tag_message(tag), location, path)
        if event.anchor is not None:
            self._define(event.anchor, _IN_PROGRESS, location)
        return _Frame(LocatedDict(location) if is_map else LocatedList(location), path, event.anchor)

    @staticmethod
    def _set(frame: _Frame, value: Any, location: Location) -> None:
        key, frame.key = frame.key, None
        if frame.skip:
            frame.skip = False
        elif key is _MERGE_KEY:
            frame.merges.append((value, location))
        else:
            frame.value.put(key, value, frame.key_location, location)

    def _key(self, frame: _Frame, key: Any, location: Location) -> None:
        container = frame.value
        if key is _MERGE_KEY:
            frame.key = key
        elif key is _BAD_KEY:
            frame.skip = True  # already reported
        elif not isinstance(key, str):
            self._invalid("mapping keys must be plain names, not lists or mappings", location, frame.path)
            frame.skip = True
        elif key in container:
            first = container.key_location(key)
            self.problems.append(Problem(
                f"duplicate key '{key}': first written at line {first.line}, again at line {location.line}",
                location, frame.path + (key,),
                hint="YAML would silently keep only one of them; remove or rename one"))
            frame.skip = True
        else:
            frame.key, frame.key_location = key, location

    def _merge(self, frame: _Frame) -> None:
        """YAML merge keys (``<<: *defaults``): keys written in the mapping itself win."""
        target = frame.value
        for value, location in frame.merges:
            sources = value if isinstance(value, LocatedList) else [value]
            for source in sources:
                if not isinstance(source, LocatedDict):
                    self._invalid("'<<' (merge) needs a mapping or a list of mappings", location, frame.path)
                    break
                for key in source:
                    if key not in target:
                        target.put_like(key, source[key], source, key)

    # -- anchors and aliases --------------------------------------------------------

    def _define(self, anchor: str, value: Any, location: Location) -> None:
        if value is _IN_PROGRESS and anchor in self._anchors:
            self.problems.append(Problem(f"anchor '&{anchor}' is defined twice", location))
        self._anchors[anchor] = value

    def _alias(self, anchor: str, location: Location, depth: int) -> Any:
        value = self._anchors.get(anchor, None)
        if anchor not in self._anchors:
            raise Fatal(Problem(f"alias '*{anchor}' refers to no anchor '&{anchor}' defined before it", location))
        if value is _IN_PROGRESS:
            raise Fatal(Problem(f"alias '*{anchor}' is used inside the value it refers to (recursive alias)",
                                location))
        if not isinstance(value, (LocatedDict, LocatedList)):
            return value
        size, nesting = _measure(value)
        self.budget.alias_values += size
        if self.budget.alias_values > MAX_ALIAS_VALUES:
            raise Fatal(Problem(
                f"YAML aliases add more than {MAX_ALIAS_VALUES:,} values to this document", location,
                hint="aliases ('*name') may repeat values, not multiply them"))
        if depth + nesting > MAX_DEPTH:
            raise Fatal(Problem(f"values are nested more than {MAX_DEPTH} levels deep", location))
        return copy_located(value)

    # -- scalars --------------------------------------------------------------------

    def _text(self, text: str) -> str:
        if self.protected and PROTECTED_OPEN in text:
            return text.translate(_UNPROTECT)
        return text

    def _scalar(self, event: ScalarEvent, location: Location, stack: list[_Frame]) -> Any:
        text = event.value
        tag = event.tag
        if tag is None or tag == "!":
            tag = _resolve(text, event.implicit)
        if stack and _wants_key(stack[-1]):
            if tag == MERGE:
                return _MERGE_KEY
            if tag not in _KEY_TAGS:
                self._invalid(_tag_message(tag), location, _path(stack))
                return _BAD_KEY
            # The key as written: `yes:` or `1:` name a field, they are not a boolean or a number.
            return self._text(text)
        if tag == STR or tag == TIMESTAMP or tag == VALUE:
            return self._text(text)
        if tag == NULL:
            return None
        try:
            if tag == BOOL:
                return _SCALARS.construct_yaml_bool(ScalarNode(tag, text))
            if tag == INT:
                value = _SCALARS.construct_yaml_int(ScalarNode(tag, text))
                if MIN_INT <= value <= MAX_INT:
                    return value
                self._invalid(f"integer {_clip(text)} is out of range (integers must fit in 64 bits)",
                              location, _path(stack))
                return None
            if tag == FLOAT:
                return _SCALARS.construct_yaml_float(ScalarNode(tag, text))
        except (ValueError, KeyError, IndexError):  # e.g. `!!int ""`, `!!bool maybe`, 5000 digits
            what = {INT: "integer", FLOAT: "number", BOOL: "boolean"}[tag]
            self._invalid(f"{what} '{_clip(text)}' is out of range or malformed", location, _path(stack))
            return None
        self._invalid(_tag_message(tag), location, _path(stack))
        return None


# Plain scalars repeat a lot (`type: prune`, `data: digits`): their tags are cached.
_resolved: dict[str, str] = {}

# YAML 1.2 numbers that YAML 1.1 (PyYAML) reads as strings: `1e-3`, `2E5`.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


def _resolve(text: str, implicit: tuple[bool, bool]) -> str:
    """The tag of an untagged scalar (``yes`` is a bool, ``"yes"`` a string), as PyYAML decides it.

    One addition: exponents without a dot or sign (``1e-3``, ``2e5``) are numbers, as in YAML 1.2;
    PyYAML would make them strings, which strict validation would then refuse.
    """
    if not implicit[0]:
        return _RESOLVER.resolve(ScalarNode, text, implicit)
    tag = _resolved.get(text)
    if tag is None:
        tag = _RESOLVER.resolve(ScalarNode, text, implicit)
        if tag == STR and _FLOAT_12.match(text):
            tag = FLOAT
        if len(_resolved) < 10_000 and len(text) < 100:
            _resolved[text] = tag
    return tag


def _path(stack: list[_Frame]) -> tuple:
    """Document path of the value being read below the innermost open container."""
    if not stack:
        return ()
    frame = stack[-1]
    if isinstance(frame.value, LocatedList):
        return frame.path + (len(frame.value),)
    if isinstance(frame.key, str):
        return frame.path + (frame.key,)
    return frame.path


def _wants_key(frame: _Frame) -> bool:
    return isinstance(frame.value, LocatedDict) and frame.key is None and not frame.skip


def _measure(value: Any) -> tuple[int, int]:
    """``(number of values, nesting depth)`` of a located tree."""
    count, deepest = 0, 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return count, deepest


def _tag_message(tag: str) -> str:
    shown = "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag
    return (f"tag '{shown}' is not allowed: pipeline files hold only strings, numbers, "
            "booleans, null, lists and mappings (nothing is constructed from tags)")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
