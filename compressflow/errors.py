"""Errors that compressflow reports to the user.

Every error a user can cause (a bad pipeline file, a bad command line, a model
file that would run code) is a :class:`CompressflowError`. The CLI prints its
message and exits with its ``exit_code``; it never shows a traceback for one.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class Location:
    """A place in a source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pipeline: where, what, and what to do about it."""

    message: str
    location: Location | None = None
    path: tuple[str | int, ...] = ()
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.location}: " if self.location else ""
        at = f" (at {format_path(self.path)})" if self.path else ""
        text = f"{where}error: {self.message}{at}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


def format_path(path: Iterable[str | int]) -> str:
    """Render a document path like ``stages.pruned.schedule.final_sparsity``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            out += ("." if out else "") + (text if text.isprintable() else quoted(text))
    return out


#: Most names one suggestion compares ``name`` with (a hostile file may define thousands).
MAX_COMPARED = 200
#: Most problems a report prints; the rest are counted.
MAX_REPORTED = 50


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """Return ``"did you mean 'x'?"`` when ``name`` is close to one of ``known``.

    Only names of about the same length can be close; at most :data:`MAX_COMPARED` of them are compared.
    """
    name = str(name)
    # NOTE: a ratio of at least 0.6 needs lengths within a factor of 2 of each other.
    shortest, longest = len(name) // 2, len(name) * 2 + 1
    candidates = [text for text in map(str, itertools.islice(known, 100_000)) if shortest <= len(text) <= longest]
    if len(candidates) > MAX_COMPARED:
        same_start = [text for text in candidates if text[:1] == name[:1]]
        candidates = (same_start + [text for text in candidates if text[:1] != name[:1]])[:MAX_COMPARED]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean {quoted(close[0])}?" if close else None


def quoted(name: object) -> str:
    """``name`` in single quotes, escaped (``'a\\nb'``) when it holds a newline or another unprintable character."""
    text = str(name)
    if text.isprintable():
        return f"'{text}'"
    return "'" + repr(text)[1:-1].replace("'", "\\'") + "'" if repr(text)[0] == '"' else repr(text)


class CompressflowError(Exception):
    """Base of every error reported to the user without a traceback."""

    exit_code = 1

    def render(self) -> str:
        return f"error: {self}"


class UsageError(CompressflowError):
    """The command line or API call is wrong (exit status 2)."""

    exit_code = 2


class PipelineError(CompressflowError):
    """A pipeline is invalid; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))

    def render(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} found"
        shown = [p.render() for p in self.problems[:MAX_REPORTED]]
        if count > MAX_REPORTED:
            shown.append(f"... and {count - MAX_REPORTED:,} more problems (the first {MAX_REPORTED} are shown)")
        return "\n".join(shown) + f"\n{head}; nothing was run."


class StageFailed(CompressflowError):
    """A stage raised while running (exit status 1)."""

    exit_code = 1


class GateFailed(StageFailed):
    """A stage's results miss a requirement of its config (``require:`` of ``evaluate``).

    Unlike a crash, this is the answer for these inputs: running the same stages again gives
    the same one. ``fields`` names the config fields that hold the requirement.
    """

    def __init__(self, message: str, fields: tuple[str, ...] = ("require",)):
        super().__init__(message)
        self.fields = tuple(fields)


class UnsafeModelError(CompressflowError):
    """A model file would run code on load and the stage did not say ``trust: true``."""

    exit_code = 2


class CacheError(CompressflowError):
    """The cache cannot be read or written (permissions, disk full, ...)."""

    exit_code = 1


@dataclass
class ProblemCollector:
    """Collects problems so that all of them can be reported at once."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, message: str, location: Location | None = None,
            path: tuple[str | int, ...] = (), hint: str | None = None) -> None:
        self.problems.append(Problem(message, location, tuple(path), hint))

    def raise_if_any(self) -> None:
        if self.problems:
            raise PipelineError(self.problems)
