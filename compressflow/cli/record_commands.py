"""``compressflow runs`` and ``compressflow show``: recorded runs, as tables and text (see run_lookup)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from compressflow.runs.lookup import PipelineRuns, describe_groups, latest_file, locate_run, nearby_records

EXIT_OK = 0


def list_runs(args) -> int:
    """``compressflow runs [PIPELINE]``: one line per run, newest last.

    Without a pipeline file: the runs of the one pipeline found here or one folder down, or,
    when there are several, one line per pipeline and how to list one's runs.
    """
    if args.pipeline:
        runs = PipelineRuns.of(args.pipeline)
    else:
        groups = nearby_records()
        files = [file for file in groups if file is not None]
        if len(groups) > 1 or (groups and not files):
            return _list_pipelines(args, groups)
        if not groups:
            if args.json:
                print("[]")
                return EXIT_OK
            print(f"no recorded runs in {Path.cwd()} or one folder down; "
                  "`compressflow run PIPELINE` records one")
            return EXIT_OK
        runs = PipelineRuns(files[0])
    records = runs.records()
    records = records[-max(args.limit, 1):] if args.limit else records
    if args.json:
        print(json.dumps([_brief(r) for r in records], indent=2))
        return EXIT_OK
    if not records:
        print(f"no recorded runs of {runs.shown} yet (in {runs.root})")
        return EXIT_OK
    names = sorted({str(r.get("pipeline", {}).get("name")) for r in records})
    print(f"runs of {runs.shown} (pipeline {', '.join(map(repr, names))}), newest last")
    rows = [("run", "started", "status", "time", "ran", "cached", "failed", "command")]
    for record in records:
        counts = record.get("counts", {})
        command = " ".join(record.get("argv", [])[1:]) + (" (from Python)" if record.get("origin") == "python" else "")
        rows.append((record["id"], _when(record.get("started_at")), record.get("status", "?"),
                     _seconds(record.get("seconds")), str(counts.get("ran", 0)), str(counts.get("cached", 0)),
                     str(counts.get("failed", 0)), command))
    print(_table(rows))
    return EXIT_OK


def _list_pipelines(args, groups) -> int:
    if args.json:
        print(json.dumps([_brief(r) for records in groups.values() for r in records], indent=2))
        return EXIT_OK
    print("\n".join([f"runs of {len(groups)} pipelines here:", *describe_groups(groups),
                     f"list one's runs with: compressflow runs {latest_file(groups)}"]))
    return EXIT_OK


def show_run(args) -> int:
    """``compressflow show [RUN] [PIPELINE]``: a run's stages, errors, outputs and metrics."""
    record, _ = locate_run(args.pipeline, args.run, command="show")
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(format_record(record))
    return EXIT_OK


def format_record(record: dict[str, Any]) -> str:
    """A run record as readable text."""
    from compressflow.stages.report_table import format_table
    from compressflow.runs.text_wrap import fit_last_column, terminal_width, wrap_message

    pipeline = record.get("pipeline", {})
    lines = [f"run {record['id']}  {record.get('status', '?')}",
             f"pipeline  {pipeline.get('name')} ({pipeline.get('path')})",
             f"command   compressflow {' '.join(record.get('argv', []))}"
             + ("  (from Python)" if record.get("origin") == "python" else ""),
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
    errors = {name: stage["error"] for name, stage in record.get("stages", {}).items() if stage.get("error")}
    rows, cut = fit_last_column(rows, terminal_width(), set(errors))
    lines.append(_table(rows))
    for name, stage in record.get("stages", {}).items():
        extra = []
        for path in stage.get("published", []):
            extra.append(f"wrote {path}")
        if stage.get("tensorboard_dir"):
            extra.append(f"TensorBoard logs: {stage['tensorboard_dir']}")
        if name in cut or "\n" in errors.get(name, ""):  # the error whole, when the table cannot show it
            extra.append("\n".join(wrap_message(errors[name], terminal_width() - 2)))
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
    brief = {key: record.get(key) for key in ("id", "status", "started_at", "ended_at", "seconds", "argv",
                                               "origin", "counts", "run_dir")}
    pipeline = record.get("pipeline", {})
    return {**brief, "pipeline": {"name": pipeline.get("name"), "path": pipeline.get("path")}}


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
