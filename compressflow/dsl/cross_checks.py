"""Checks across stages, once each stage is valid on its own.

Some rules involve two stages: a ``select`` stage's candidates must be models its
``evaluation`` measured; two exports must not write the same file. A stage type states
them in :meth:`~compressflow.stages.base.Stage.check_pipeline`, called once per stage
type in use; each problem is located at the field it names.
"""

from __future__ import annotations

from compressflow.errors import Problem
from compressflow.dsl.located import LocatedDict, location_of
from compressflow.dsl.problems import Problems
from compressflow.stages.base import Stage


def cross_check(document: LocatedDict, stages: dict[str, Stage], problems: Problems) -> None:
    """Add the problems that the ``check_pipeline`` of each stage type in use finds."""
    types = {type(stage): None for stage in stages.values()}
    for cls in types:
        for name, field_name, message in cls.check_pipeline(stages):
            path = ("stages", name, field_name) if field_name else ("stages", name)
            location = location_of(document, path) or location_of(document, ("stages", name))
            problems.append(Problem(message, location, path))
