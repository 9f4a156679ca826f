"""One run around the scheduler: its folder, progress events, record and tracking (used by ``api.run``).

::

    session = RunSession(pipeline, plan, cache, argv, reporter)
    session.start()
    report = run_plan(plan, cache, runner, session.reporter, run_dir=session.dir)
    record = session.finish(report)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from compressflow.executor.events import EVENTS_DIR, EventTailer
from compressflow.runs.records import (FAILED, INTERRUPTED, OK, RUNNING, RunRecorder, build_record, new_run_id,
                                  runs_root, write_record)


class RunSession:
    """The run folder, the event tailer feeding the reporter, and the run record."""

    def __init__(self, pipeline, plan, cache, argv: list[str], reporter, *, run_id: str | None = None,
                 origin: str = "cli"):
        self.pipeline, self.plan, self.cache, self.argv = pipeline, plan, cache, list(argv)
        self.origin = origin
        self.id = run_id or new_run_id()
        self.dir: Path = runs_root(pipeline.root) / self.id
        self.display = reporter
        listener = getattr(reporter, "stage_event", None) or (lambda event: None)
        self.tailer = EventTailer(self.dir / EVENTS_DIR, listener)
        self.reporter = RunRecorder(reporter, before_finish=self.tailer.flush)
        self.started = time.time()
        self.record: dict[str, Any] | None = None
        self.tracking: dict[str, Any] = {}

    def start(self) -> None:
        """Write the record of a running run, follow events and start the progress view."""
        self._write(RUNNING, None, None)
        self.tailer.start()
        title = f"{self.pipeline.name} · run {self.id}"
        begin = getattr(self.display, "begin", None)
        if begin is not None:
            begin(self.plan, title)

    def finish(self, report=None, *, interrupted: bool = False) -> dict[str, Any]:
        """Stop following events and the progress view; write and return the final record."""
        self.tailer.stop()
        end = getattr(self.display, "end", None)
        if end is not None:
            end()
        status = INTERRUPTED if interrupted or report is None else (OK if report.ok else FAILED)
        return self._write(status, report, time.time())

    def add_tracking(self, info: dict[str, Any]) -> None:
        """Remember where the run was tracked (e.g. the MLflow run id) in its record."""
        self.tracking.update(info)
        if self.record is not None:
            self.record["tracking"] = self.tracking
            write_record(self.dir, self.record)

    def _write(self, status: str, report, ended: float | None) -> dict[str, Any]:
        self.record = build_record(run_id=self.id, run_dir=self.dir, pipeline=self.pipeline, plan=self.plan,
                                   cache=self.cache, argv=self.argv, started=self.started, ended=ended,
                                   status=status, report=report, recorder=self.reporter,
                                   tracking=self.tracking or None, origin=self.origin)
        write_record(self.dir, self.record)
        return self.record
