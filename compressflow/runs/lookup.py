"""Which runs a command means: those of a pipeline file, or of the pipelines here and one folder down.

``runs``, ``show`` and ``report`` take a pipeline file; without one they look at the run
folders (``.compressflow/runs``) of the current folder and of each folder one level down.
When those hold the runs of one pipeline file, that is the one; when several, the command
lists them and says how to pick one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressflow.errors import UsageError
from compressflow.runs.records import (LATEST, RECORD_FILE, is_record_path, list_records, pick_record, read_record,
                                  recorded_file, runs_root)

PIPELINE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PipelineRuns:
    """The runs of one pipeline file (resolved), kept in ``.compressflow/runs`` beside it."""

    file: Path

    @classmethod
    def of(cls, pipeline_file: str | os.PathLike[str]) -> PipelineRuns:
        """The runs of a pipeline file the user named; the file must exist (it need not validate)."""
        path = Path(pipeline_file)
        if not path.is_file():
            raise UsageError(f"pipeline file {str(pipeline_file)!r} does not exist"
                             + (" (it is a folder)" if path.is_dir() else ""))
        return cls(path.resolve())

    @property
    def root(self) -> Path:
        return runs_root(self.file.parent)

    @property
    def shown(self) -> str:
        return shown_path(self.file)

    def records(self) -> list[dict[str, Any]]:
        """Its records, oldest first."""
        return list_records([self.root], self.file)

    def pick(self, ref: str) -> dict[str, Any]:
        """The record ``ref`` names (an id, a unique prefix, ``latest``); a usage error when it never ran."""
        records = self.records()
        if not records:
            raise UsageError(f"{self.shown} has no recorded runs yet (looked in {self.root}); "
                             f"`compressflow run {self.shown}` records one")
        return pick_record(records, ref, f"the runs of {self.shown}")


def shown_path(path: Path) -> str:
    """``path`` as the user would type it from here: relative when it is under the current folder."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def nearby_folders(here: Path | None = None) -> list[Path]:
    """The current folder and the folders one level down (hidden ones left out)."""
    here = (here or Path.cwd()).resolve()
    try:
        below = sorted(p for p in here.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        below = []
    return [here, *below]


def nearby_records() -> dict[Path | None, list[dict[str, Any]]]:
    """The records of the run folders here and one level down, by pipeline file (None: from a dict)."""
    roots = [runs_root(folder) for folder in nearby_folders()]
    groups: dict[Path | None, list[dict[str, Any]]] = {}
    for record in list_records([root for root in roots if root.is_dir()]):
        groups.setdefault(recorded_file(record), []).append(record)
    return groups


def describe_groups(groups: dict[Path | None, list[dict[str, Any]]]) -> list[str]:
    """One line per pipeline file: the file, its name, how many runs and the latest."""
    lines = []
    for file, records in sorted(groups.items(), key=lambda item: str(item[0])):
        latest = records[-1]
        where = shown_path(file) if file is not None else f"(a pipeline given as a dict, in {latest['run_dir']})"
        name = latest.get("pipeline", {}).get("name")
        lines.append(f"  {where}  (name {name!r}: {len(records)} run{'s' if len(records) != 1 else ''}, "
                     f"latest {latest['id']} {latest.get('status', '?')})")
    return lines


def _no_runs_here() -> UsageError:
    return UsageError(f"no recorded runs in {Path.cwd()} or one folder down (in .compressflow/runs); "
                      "`compressflow run PIPELINE` records one, or give the pipeline file")


def locate_run(pipeline: str | None, ref: str, *, command: str) -> tuple[dict[str, Any], Path]:
    """(the record, its pipeline's folder) for ``compressflow show|report``.

    The two arguments may come in either order (``show PIPELINE`` and ``report RUN`` work).
    """
    pipeline, ref = _pipeline_and_run(pipeline, ref)
    if is_record_path(ref):
        record = read_record(Path(ref))
    elif pipeline is not None:
        record = PipelineRuns.of(pipeline).pick(ref)
    else:
        groups = nearby_records()
        if not groups:
            raise _no_runs_here()
        if ref in LATEST and len(groups) > 1:
            file = latest_file(groups)
            example = (f"compressflow show latest {file}" if command == "show" else f"compressflow {command} {file}")
            raise UsageError("\n".join([f"runs of {len(groups)} pipelines here; pick one by its file "
                                        f"(e.g. `{example}`) or give a run id:", *describe_groups(groups)]))
        every = sorted((r for records in groups.values() for r in records),
                       key=lambda r: (r.get("started_at") or 0, r.get("id", "")))
        record = pick_record(every, ref, f"{Path.cwd()} or one folder down")
    return record, Path(record["run_dir"]).parent.parent.parent


def latest_file(groups: dict[Path | None, list[dict[str, Any]]]) -> str:
    """The pipeline file (as shown) with the most recent run, for examples of how to pick one."""
    files = {file: records[-1].get("started_at") or 0 for file, records in groups.items() if file is not None}
    return shown_path(max(files, key=files.__getitem__)) if files else "PIPELINE"


def _pipeline_and_run(pipeline: str | None, ref: str) -> tuple[str | None, str]:
    """Tell a pipeline file from a run reference when only one was given, or they came swapped."""
    if _is_pipeline_file(ref) and (pipeline is None or not _is_pipeline_file(pipeline)):
        return ref, pipeline or "latest"
    if pipeline is not None and not _is_pipeline_file(pipeline) and ref in LATEST:
        return None, pipeline
    return pipeline, ref


def _is_pipeline_file(text: str) -> bool:
    path = Path(text)
    if path.name == RECORD_FILE:
        return False
    return path.is_file() or path.suffix in PIPELINE_SUFFIXES
