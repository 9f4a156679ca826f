"""The list of problems a load collects, and how it is reported."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from compressflow.errors import Problem


class Problems(list):
    """Problems found so far, in the order found.

    A problem added with :meth:`invalid` also marks its value as unusable: later
    problems about that value or anything inside it are follow-ups (an unknown
    param is not also "expected a number, got '${params.x}'") and are dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self._invalid: dict[tuple, int] = {}  # path -> index of the first follow-up

    def invalid(self, problem: Problem) -> None:
        self.append(problem)
        self.mark_invalid(problem.path)

    def mark_invalid(self, path: tuple) -> None:
        """Problems added from now on about ``path`` (or inside it) are follow-ups."""
        self._invalid.setdefault(tuple(path), len(self))

    def copy_invalid(self, source: tuple, target: tuple) -> None:
        """What is unusable in or at ``source`` is so in ``target`` (a stage generated from a written one)."""
        source, target = tuple(source), tuple(target)
        for path, since in list(self._invalid.items()):
            if path[:len(source)] == source:
                self._invalid.setdefault(target + path[len(source):], since)

    def _is_follow_up(self, index: int, path: tuple) -> bool:
        if not self._invalid:
            return False
        for length in range(len(path) + 1):
            since = self._invalid.get(path[:length])
            if since is not None and index >= since:
                return True
        return False

    def report(self, main_file: str | None = None,
               note_of: Callable[[tuple], str | None] | None = None) -> list[Problem]:
        """Problems without repeats or follow-ups, sorted by file (``main_file`` first), line and column.

        ``note_of(path)`` may tell where a value came from (e.g. a param); it is added to the hint.
        """
        kept: dict[tuple, Problem] = {}
        for index, problem in enumerate(self):
            if self._is_follow_up(index, problem.path):
                continue
            note = note_of(problem.path) if note_of and problem.path else None
            if note and note not in (problem.hint or ""):
                problem = replace(problem, hint=f"{problem.hint}; {note}" if problem.hint else note)
            kept.setdefault((problem.message, problem.location, problem.path), problem)
        files: dict[str, int] = {}
        for problem in kept.values():
            if problem.location is not None:
                files.setdefault(problem.location.file, len(files))

        def order(problem: Problem) -> tuple:
            location = problem.location
            if location is None:
                return (2, 0, 0, 0)
            return (0 if location.file == main_file else 1, files[location.file], location.line, location.column)

        return sorted(kept.values(), key=order)
