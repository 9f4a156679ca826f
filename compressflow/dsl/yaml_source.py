"""Read YAML files into located data, safely.

PyYAML (libyaml when available) turns the text into events, and
:mod:`~compressflow.dsl.yaml_build` turns the events into located values: no
constructor runs, so no tag can build a Python object. Hostile input fails fast
and cleanly: the file size, nesting depth, number of values and alias growth are
bounded (see :mod:`compressflow.dsl.limits`), and bad bytes, syntax errors and
extra documents are reported with their file, line and column.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compressflow.errors import Location, PipelineError, Problem
from compressflow.dsl.limits import MAX_DEPTH, MAX_FILE_BYTES
from compressflow.dsl.yaml_build import PROTECTED_CLOSE, PROTECTED_OPEN, Builder, Fatal, ReadBudget

try:
    from yaml.cyaml import CParser as _EventSource
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _EventSource(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, text: str):
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)


@dataclass
class ParsedYaml:
    """A parsed document: its located value and the problems found while reading it."""

    value: Any
    location: Location
    empty: bool = False
    problems: list[Problem] = field(default_factory=list)
    # Paths whose value was left out (None) because it was invalid (bad tag, bad number).
    invalid_paths: list[tuple] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def read_yaml_file(path: Path, display_name: str | None = None) -> ParsedYaml:
    """Read and parse a YAML file; raises :class:`PipelineError` when it cannot be read."""
    name = display_name or str(path)
    try:
        data = _read_regular_file(path, MAX_FILE_BYTES + 1)
    except NotRegularFile as exc:
        raise PipelineError([Problem(
            f"{name} is {exc.kind}, not a YAML file",
            hint="pipeline, include and recipe paths name regular files")]) from None
    except FileNotFoundError:
        raise PipelineError([Problem(f"file not found: {name}")]) from None
    except IsADirectoryError:
        raise PipelineError([Problem(f"{name} is a directory, not a YAML file")]) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise PipelineError([Problem(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise PipelineError([Problem(
            f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; pipeline files are small text files",
            Location(name, 1, 1))])
    return parse_yaml(decode_utf8(data, name), name)


class NotRegularFile(OSError):
    """A path names a FIFO, a device, a socket or a folder where a file was expected."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words (``a FIFO (named pipe)``)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _read_regular_file(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``; raises :class:`NotRegularFile` for anything but a regular file."""
    # NOTE: opening a FIFO for reading blocks until a writer comes, forever; with O_NONBLOCK
    # the open returns at once and fstat (of what was opened, so no race) tells what it is.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(file_kind(mode))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            return fh.read(limit)
    finally:
        if fd >= 0:
            os.close(fd)


def decode_utf8(data: bytes, name: str) -> str:
    """Decode UTF-8 (a leading byte-order mark is allowed), reporting where a bad byte is."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", errors="replace")) + 1
        raise PipelineError([Problem(
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})", Location(name, line, column),
            hint="save the file with UTF-8 encoding")]) from None


def parse_yaml(text: str, name: str, budget: ReadBudget | None = None) -> ParsedYaml:
    """Parse one YAML document from ``text``; ``name`` is used in locations.

    A ``budget`` shared by several calls bounds their values and alias growth together,
    as if the texts were one file.
    """
    text, protected = _protect_interpolations(text)
    builder = Builder(name, protected, budget)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line, column = _position(text[:exc.start])
        raise PipelineError([Problem("the text holds an invalid character (an unpaired surrogate)",
                                     Location(name, line, column))]) from None
    try:
        root, location, extra = builder.document(_EventSource(text).get_event)
    except Fatal as exc:
        raise PipelineError([exc.problem]) from None
    except yaml.YAMLError as exc:
        raise PipelineError([_syntax_problem(exc, text, name)]) from None
    if extra is not None:
        raise PipelineError([Problem("a pipeline file holds one YAML document; this one has several ('---')",
                                     extra, hint="remove the extra '---' document separator")])
    if location is None:
        return ParsedYaml(None, Location(name, 1, 1), empty=True)
    return ParsedYaml(root, location, problems=builder.problems, invalid_paths=builder.invalid_paths)


# NOTE: `{a: ${params.x}}` is not valid YAML: braces end a plain scalar inside a flow
# mapping. Braces of `${...}` are swapped for private-use characters (one for one, so
# lines and columns stay right) before parsing, and swapped back in every string.
_INTERPOLATION = re.compile(r"\$\{([^{}\n]*)\}")


def _protect_interpolations(text: str) -> tuple[str, bool]:
    if "${" not in text or PROTECTED_OPEN in text or PROTECTED_CLOSE in text:
        return text, False
    return _INTERPOLATION.sub(lambda m: f"${PROTECTED_OPEN}{m.group(1)}{PROTECTED_CLOSE}", text), True


def _syntax_problem(exc: yaml.YAMLError, text: str, name: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _position(text.encode("utf-8")[:exc.position].decode("utf-8", errors="replace"))
        return Problem(f"invalid character in YAML: {exc.reason}", Location(name, line, column))
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    location = Location(name, *_mark_position(mark, text)) if mark else Location(name, 1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    if "maximum nesting depth" in problem:  # libyaml's own bound, which it may hit before ours
        return Problem(f"values are nested more than {MAX_DEPTH} levels deep", location)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        context = "{} at line {}, column {}".format(context, *_mark_position(context_mark, text))
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    return Problem(message, location)


def _mark_position(mark, text: str) -> tuple[int, int]:
    """1-based line and column of a YAML mark, inside ``text``."""
    # NOTE: the parser marks the end of a text without a final line break on the line after it.
    end = _position(text)
    return min((mark.line + 1, mark.column + 1), end)


# NOTE: YAML's line breaks (as its marks count lines): a lone "\r" is one, as is "\x85".
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _position(prefix: str) -> tuple[int, int]:
    """Line and column just after ``prefix``, the text before a position."""
    breaks = list(_LINE_BREAK.finditer(prefix))
    line_start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, len(prefix) - line_start + 1
