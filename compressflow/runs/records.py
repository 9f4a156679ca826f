"""Run records: what each run did (``compressflow run`` or ``compressflow.run``), kept beside the pipeline.

Every run gets a folder ``.compressflow/runs/<id>/`` (next to the pipeline file) with

* ``run.json``: the record (see :func:`build_record`): pipeline, command line, start and
  end, status, and per stage its status, cache key, timings, error, the metrics of
  evaluate and select stages and what it published;
* ``events/<stage>.jsonl``: log lines and progress events of the stages that ran;
* ``tensorboard/<stage>/``: TensorBoard logs of training stages that asked for them.

Run ids sort by start time: ``20240611-142301-7f3a`` (local time and 4 random hex digits).
A record belongs to its pipeline file, not to the pipeline's ``name:`` (see :func:`recorded_file`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import secrets
import time
from pathlib import Path
from typing import Any

from compressflow.errors import CompressflowError, UsageError
from compressflow.cache.backend import CacheBackend
from compressflow.cache.holders import process_is_alive

RECORD_FILE = "run.json"
RECORD_FORMAT = 1
RUNNING, OK, FAILED, INTERRUPTED = "running", "ok", "failed", "interrupted"
LATEST = ("latest", "last")
_SCALAR = (int, float, str, bool, type(None))


def runs_root(pipeline_root: Path) -> Path:
    """The folder holding the run folders of the pipelines in ``pipeline_root``."""
    return Path(pipeline_root) / ".compressflow" / "runs"


def new_run_id(now: float | None = None) -> str:
    """A new run id: local start time plus 4 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + secrets.token_hex(2)


# --------------------------------------------------------------------------- building


class RunRecorder:
    """A reporter that notes when each stage starts and finishes, and passes everything on.

    ``before_finish`` runs before a stage is reported finished (the event tailer's flush,
    so a stage's last log lines come before its ``done`` line).
    """

    def __init__(self, inner, before_finish=None):
        self.inner = inner
        self.before_finish = before_finish
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.statuses: dict[str, str] = {}

    def stage_started(self, name: str) -> None:
        self.started[name] = time.time()
        self.inner.stage_started(name)

    def stage_finished(self, name: str, outcome) -> None:
        self.ended[name] = time.time()
        self.statuses[name] = outcome.status
        if self.before_finish is not None:
            self.before_finish()
        self.inner.stage_finished(name, outcome)

    def stage_blocked(self, name: str, reason: str) -> None:
        self.statuses[name] = "blocked"
        self.inner.stage_blocked(name, reason)

    def message(self, text: str) -> None:
        self.inner.message(text)

    def stage_event(self, event: dict[str, Any]) -> None:
        handler = getattr(self.inner, "stage_event", None)
        if handler is not None:
            handler(event)


def build_record(*, run_id: str, run_dir: Path, pipeline, plan, cache: CacheBackend, argv: list[str], started: float,
                 ended: float | None, status: str, report=None, recorder: RunRecorder | None = None,
                 tracking: dict[str, Any] | None = None, origin: str = "cli") -> dict[str, Any]:
    """The JSON record of a run (``report`` None while it is still running).

    ``origin`` says where the run was started: ``cli``, or ``python`` (then ``argv`` is the
    equivalent command line).
    """
    from compressflow.executor.events import events_file
    from compressflow.executor.scheduler import tensorboard_dir

    stages: dict[str, Any] = {}
    for name, item in plan.stages.items():
        outcome = report.outcomes.get(name) if report is not None else None
        if outcome is not None:
            state = outcome.status
        elif item.action == "skip":
            state = "skipped"
        else:  # still running, or interrupted: what the reporter saw so far
            state = (recorder.statuses.get(name) if recorder is not None else None) or (
                "running" if recorder is not None and name in recorder.started else "pending")
        entry: dict[str, Any] = {
            "type": item.stage.kind,
            "action": item.action,
            "reasons": list(item.reasons),
            "status": state,
            "key": item.key.key,
            "inputs": {field: names for field, names in item.stage.stage_refs().items() if names},
            "config": item.stage.model_dump(mode="json"),
        }
        if recorder is not None and name in recorder.started:
            entry["started_at"] = recorder.started[name]
            if name in recorder.ended:
                entry["ended_at"] = recorder.ended[name]
        if outcome is not None:
            entry["seconds"] = round(outcome.seconds, 4)
            if outcome.error:
                entry["error"] = outcome.error
            if outcome.details:
                entry["details"] = outcome.details
        events = events_file(run_dir, name)
        if events.exists():
            entry["events"] = str(events)
        board = tensorboard_dir(run_dir, name)
        if board.exists():
            entry["tensorboard_dir"] = str(board)
        if report is not None and name in report.published:
            entry["published"] = list(report.published[name])
        if state in ("ran", "cached"):
            entry.update(stage_results(cache, item.key.key))
        stages[name] = entry
    record = {
        "format": RECORD_FORMAT,
        "id": run_id,
        "status": status,
        "pipeline": {"name": pipeline.name, "path": str(pipeline.path) if pipeline.path else None,
                     "root": str(pipeline.root), "seed": pipeline.seed, "params": _jsonable(pipeline.params)},
        "argv": list(argv),
        "origin": origin,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "host": platform.node(),
        "started_at": started,
        "ended_at": ended,
        "seconds": round(ended - started, 4) if ended is not None else None,
        "cache": str(cache.root),
        "run_dir": str(run_dir),
        "stages": stages,
        "edges": [[a, b] for a, b in plan.graph.edges],
        "counts": _counts(stages),
    }
    if tracking:
        record["tracking"] = tracking
    return record


def stage_results(cache: CacheBackend, key: str) -> dict[str, Any]:
    """What a stage's cache entry says about its results, for the record.

    Evaluate stages: their whole ``metrics.json`` (``metrics``); select stages: their
    ``selection.json`` (``selection``) and table; other stages with a ``metrics.json``:
    its single values, training ``history`` and per-layer figures (``summary``).
    Only these small files are read (``cache.entry_metadata``): never the entry's models.
    """
    files = cache.entry_metadata(key, ["artifact.json", "metrics.json", "selection.json"])
    artifact = _json_of(files.get("artifact.json"))
    if not isinstance(artifact, dict):
        return {}
    out: dict[str, Any] = {"artifact": {k: v for k, v in artifact.items() if isinstance(v, _SCALAR)}}
    metrics = _json_of(files.get("metrics.json"))
    selection = _json_of(files.get("selection.json"))
    table_name = None
    if selection is not None:
        out["selection"] = selection
        table_name = str(artifact.get("selection_table") or artifact.get("table") or "table.txt")
    if isinstance(metrics, dict) and "models" in metrics:
        out["metrics"] = metrics
        table_name = str(artifact.get("table", "table.txt"))
    elif isinstance(metrics, dict):
        summary = {k: v for k, v in metrics.items() if isinstance(v, _SCALAR)}
        for name in ("history", "layers"):
            if isinstance(metrics.get(name), dict):
                summary[name] = metrics[name]
        out["summary"] = summary
    if table_name is not None:
        table = cache.entry_metadata(key, [table_name]).get(table_name)
        if table is not None:
            out["table"] = table.decode("utf-8", errors="replace")
    return out


def _json_of(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:  # NOTE: UnicodeDecodeError is a ValueError
        return None


def _counts(stages: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in stages.values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return counts


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------- storage


class RecordWriteError(CompressflowError):
    """A run record cannot be written (the project's disk is full, read-only, ...): exit status 1."""

    exit_code = 1


_FULL_DISK = {errno.ENOSPC: "the disk holding it is full", errno.EDQUOT: "the disk quota there is used up"}


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``run.json`` in ``run_dir`` atomically.

    On any failure nothing is left behind: the temporary file is removed (and ``run_dir`` when this
    call created it); a storage problem (disk full, read-only, ...) is a :class:`RecordWriteError`
    saying which file and what to do.
    """
    text = json.dumps(record, indent=2, default=str, allow_nan=True)
    path = run_dir / RECORD_FILE
    tmp = run_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp, run_dir if created else None)
        raise RecordWriteError(_storage_message(path, exc)) from None
    except BaseException:
        _discard(tmp, run_dir if created else None)
        raise
    return path


def _discard(tmp: Path, created_dir: Path | None) -> None:
    """Remove a temporary record file, and the run folder if it was just made and is empty (best effort)."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
    if created_dir is not None:
        with contextlib.suppress(OSError):
            created_dir.rmdir()  # NOTE: only succeeds while empty: never removes a run's events or logs


def _storage_message(path: Path, exc: OSError) -> str:
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    runs = path.parent.parent
    if exc.errno in _FULL_DISK:
        todo = (f"{_FULL_DISK[exc.errno]}: free space on it (old run records are in {runs}) "
                "and run the same command again")
    else:
        todo = f"make {runs} writable and run the same command again"
    return (f"cannot write the run record {path}: {reason}; {todo}; stages that finished are kept in the cache "
            "and will not run again")


def read_record(path: Path) -> dict[str, Any]:
    """Read a record (``run.json`` or the run folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_FILE
    record = json.loads(path.read_text())
    record["run_dir"] = str(path.parent)  # NOTE: where it is now, even if the project folder moved
    if record.get("status") == RUNNING and not _alive(record.get("pid"), record.get("host")):
        record["status"] = "died"  # the process ended without finishing its record (killed)
    return record


def _alive(pid: Any, host: Any) -> bool:
    if not isinstance(pid, int) or host != platform.node():
        return True  # another machine's run: cannot tell
    return process_is_alive(pid)


def recorded_file(record: dict[str, Any]) -> Path | None:
    """The pipeline file a record belongs to, where it is now (None for a pipeline given as a dict).

    Runs are keyed by file, not by the pipeline's ``name:``: a runs folder holds the runs of the
    pipeline files of one folder, and a record belongs to the file of its name there, so records
    stay with their file when the project folder moves.
    """
    path = record.get("pipeline", {}).get("path")
    run_dir = record.get("run_dir")
    if not path or not run_dir:
        return None
    return Path(run_dir).parent.parent.parent / Path(path).name


def list_records(roots: list[Path], pipeline_file: Path | None = None) -> list[dict[str, Any]]:
    """Records found in ``roots``, oldest first; only those of ``pipeline_file`` (resolved) when given."""
    records = []
    for root in roots:
        if not Path(root).is_dir():
            continue
        for path in Path(root).glob(f"*/{RECORD_FILE}"):
            try:
                record = read_record(path)
            except (OSError, ValueError):
                continue
            if pipeline_file is None or recorded_file(record) == pipeline_file:
                records.append(record)
    return sorted(records, key=lambda r: (r.get("started_at") or 0, r.get("id", "")))


def is_record_path(ref: str) -> bool:
    """Whether ``ref`` names a record by path: a ``run.json`` or a run folder holding one."""
    return Path(ref).name == RECORD_FILE or (ref not in LATEST and (Path(ref) / RECORD_FILE).is_file())


def find_record(roots: list[Path], ref: str, pipeline_file: Path | None = None) -> dict[str, Any]:
    """The record named by ``ref``: a run id, a unique prefix of one, ``latest``, or a path."""
    if is_record_path(ref):
        return read_record(Path(ref))
    where = " or ".join(str(r) for r in roots) or "(nowhere)"
    return pick_record(list_records(roots, pipeline_file), ref, where)


def pick_record(records: list[dict[str, Any]], ref: str, where: str) -> dict[str, Any]:
    """The record of ``records`` (oldest first) that ``ref`` names: an id, a unique prefix, ``latest``."""
    if not records:
        raise UsageError(f"no run records in {where}; `compressflow run` writes one per run")
    if ref in LATEST:
        return records[-1]
    matches = [r for r in records if r.get("id", "").startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        recent = ", ".join(r["id"] for r in records[-5:])
        raise UsageError(f"no run {ref!r} in {where} (latest: {recent})")
    raise UsageError(f"{ref!r} matches {len(matches)} runs ({', '.join(r['id'] for r in matches[:5])}); "
                     "give more of the id")
