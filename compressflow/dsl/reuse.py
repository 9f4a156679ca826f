"""Reuse across files, before anything else is resolved: includes, then templates.

Sub-pipelines (:mod:`~compressflow.dsl.subpipelines`) and sweeps
(:mod:`~compressflow.dsl.sweeps`) come later, once params are resolved.
"""

from __future__ import annotations

from pathlib import Path

from compressflow.dsl.includes import expand_includes
from compressflow.dsl.located import LocatedDict
from compressflow.dsl.problems import Problems
from compressflow.dsl.templates import apply_templates


def expand_reuse(document: LocatedDict, file: Path | None, root: Path, allow_outside_paths: bool,
                 problems: Problems) -> None:
    """Expand ``include`` and ``extends`` in ``document`` (in place)."""
    expand_includes(document, file, document.location.file, root, allow_outside_paths, problems)
    apply_templates(document, problems)
