"""``compressflow runs`` and ``compressflow show``: recorded runs, as tables and text."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from compressflow.errors import UsageError
from compressflow.records import find_record, list_records, runs_root

EXIT_OK = 0


def pipeline_runs(pipeline_file: str) -> tuple[list[Path], str]:
    """(folders holding the runs of a pipeline file, its name).

    A pipeline that no longer validates still has its runs: then its name is read from the
    file as plain YAML.
    """
    from compressflow.dsl import load_pipeline
    from compressflow.errors import CompressflowError

    path = Path(pipeline_file)
    if not path.is_file():
        raise UsageError(f"pipeline file {pipeline_file!r} does not exist")
    try:
        pipeline = load_pipeline(path)
        return [runs_root(pipeline.root)], pipeline.name
    except CompressflowError as exc:
        import yaml

        try:
            name = (yaml.safe_load(path.read_text()) or {}).get("name")
        except (yaml.YAMLError, AttributeError):
            name = None
        if not isinstance(name, str):
            raise exc
        return [runs_root(path.resolve().parent)], name


def list_runs(args) -> int:
    """``compressflow runs PIPELINE``: one line per run, newest last."""
    roots, name = pipeline_runs(args.pipeline)
    records = list_records(roots, name)[-max(args.limit, 1):] if args.limit else list_records(roots, name)
    if args.json:
        print(json.dumps([_brief(r) for r in records], indent=2))
        return EXIT_OK
    if not records:
        print(f"no recorded runs of {name!r} yet (in {roots[0]})")
        return EXIT_OK
    rows = [("run", "started", "status", "time", "ran", "cached", "failed", "command")]
    for record in records:
        counts = record.get("counts", {})
        rows.append((record["id"], _when(record.get("started_at")), record.get("status", "?"),
                     _seconds(record.get("seconds")), str(counts.get("ran", 0)), str(counts.get("cached", 0)),
                     str(counts.get("failed", 0)), " ".join(record.get("argv", [])[1:])))
    print(_table(rows))
    return EXIT_OK


def show_run(args) -> int:
    """``compressflow show [RUN] [PIPELINE]``: a run's stages, errors, outputs and metrics."""
    if args.pipeline:
        roots, name = pipeline_runs(args.pipeline)
    else:
        roots, name = _nearby_roots(), None
    record = find_record(roots, args.run, name)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(format_record(record))
    return EXIT_OK


def _nearby_roots() -> list[Path]:
    here = Path.cwd()
    return [runs_root(here), *sorted(p.parent / "runs" for p in here.glob("*/.compressflow") if p.is_dir())]


def format_record(record: dict[str, Any]) -> str:
    """A run record as readable text."""
    from compressflow.stages.report_table import format_table

    pipeline = record.get("pipeline", {})
    lines = [f"run {record['id']}  {record.get('status', '?')}",
             f"pipeline  {pipeline.get('name')} ({pipeline.get('path')})",
             f"command   compressflow {' '.join(record.get('argv', []))}",
             f"started   {_when(record.get('started_at'))}   took {_seconds(record.get('seconds'))}",
             f"folder    {record.get('run_dir')}", ""]
    rows = [("stage", "type", "status", "time", "key", "why / error")]
    for name, stage in record.get("stages", {}).items():
        if stage.get("status") == "skipped":
            continue
        why = stage.get("error") or "; ".join(stage.get("reasons", []))
        rows.append((name, stage.get("type", ""), stage.get("status", ""),
                     _seconds(stage.get("seconds")) if stage.get("status") in ("ran", "failed") else "",
                     stage.get("key", "")[:12], why.splitlines()[0] if why else ""))
    lines.append(_table(rows))
    for name, stage in record.get("stages", {}).items():
        extra = []
        for path in stage.get("published", []):
            extra.append(f"wrote {path}")
        if stage.get("tensorboard_dir"):
            extra.append(f"TensorBoard logs: {stage['tensorboard_dir']}")
        if stage.get("error") and "\n" in stage["error"]:
            extra.append(stage["error"])
        metrics = stage.get("metrics")
        if metrics and metrics.get("models"):
            extra.append(format_table(metrics["models"], metrics.get("baseline"), metrics.get("notes", [])).rstrip())
        elif stage.get("table"):
            extra.append(stage["table"].rstrip())
        if extra:
            lines += ["", f"{name}:"] + ["  " + line for text in extra for line in text.splitlines()]
    tracking = record.get("tracking", {}).get("mlflow")
    if tracking:
        lines += ["", f"MLflow: run {tracking['run_id']} in {tracking['tracking_uri']}"]
    return "\n".join(lines)


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("id", "status", "started_at", "ended_at", "seconds", "argv",
                                              "counts", "run_dir")}


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    render = lambda row: "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([render(rows[0]), render(tuple("-" * w for w in widths)), *map(render, rows[1:])])
