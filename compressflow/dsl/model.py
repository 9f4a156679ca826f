"""The validated, resolved pipeline that the executor and the CLI work with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from compressflow.errors import Location
from compressflow.dsl.digraph import DiGraph
from compressflow.dsl.located import LocatedDict, location_of
from compressflow.stages.base import Dataset, Stage


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A pipeline after includes, templates, overrides and ``${params.x}`` are resolved.

    ``datasets`` and ``stages`` hold validated config objects in file order.
    ``path`` is the resolved pipeline file (None when loaded from a dict) and
    ``root`` the folder that relative paths in the pipeline start from, and where
    the user's modules (builders, dataset functions, ``imports``) are looked for first.
    ``imports`` are the modules imported before any stage loads a model.
    """

    name: str
    version: int
    seed: int
    params: dict[str, Any]
    datasets: dict[str, Dataset]
    stages: dict[str, Stage]
    path: Path | None
    root: Path
    document: LocatedDict = field(repr=False)
    imports: tuple[str, ...] = ()
    _graph: DiGraph = field(repr=False, default_factory=DiGraph)

    def location_of(self, path: tuple) -> Location | None:
        """Where the value at a document path was written, e.g. ``("stages", "pruned", "epochs")``.

        For a value that came from a template or an include, that is the other
        file; for an override, ``<--set KEY>:1:1``. None when there is no such value
        (a default, or a path that does not exist).
        """
        return location_of(self.document, tuple(path))

    def dependencies(self, stage: str) -> list[str]:
        """Stages that ``stage`` references (every reference field and ``after``), once each, in order."""
        seen: dict[str, None] = {}
        for names in self.stages[stage].stage_refs().values():
            for name in names:
                seen.setdefault(name, None)
        return list(seen)

    def graph(self) -> DiGraph:
        """A copy of the stage graph: one node per stage, edges ``dependency -> dependent``."""
        return self._graph.copy()
