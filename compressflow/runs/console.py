"""Line-based progress output of a run (works in terminals and CI logs alike)."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from compressflow.executor.task import CACHED, FAILED, RAN, TaskOutcome
from compressflow.runs.text_wrap import terminal_width, wrap_message


class LineReporter:
    """Prints one line per stage event; ``quiet`` keeps only failures.

    Stage log lines and epoch lines (:meth:`stage_event`) are printed as ``  [stage] text``;
    step events are not printed. Safe to call from several threads.
    """

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.verbose = verbose
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def begin(self, plan, title: str) -> None:
        """Called once before the run starts (line output needs nothing)."""

    def end(self) -> None:
        """Called once after the run (line output needs nothing)."""

    def stage_event(self, event: dict[str, Any]) -> None:
        """A log line or progress event from a running stage (see executor/events.py)."""
        if self.quiet or event.get("event") not in ("log", "epoch"):
            return
        text = event.get("text")
        if text is not None:
            self._print(f"  [{event.get('stage', '?')}] {text}")

    def stage_started(self, name: str) -> None:
        if not self.quiet:
            self._print(f"{name}: running")

    def stage_finished(self, name: str, outcome: TaskOutcome) -> None:
        if outcome.status == FAILED:
            line = f"{name}: FAILED after {outcome.seconds:.1f}s: {outcome.error}"
            # NOTE: a failed gate's reason is prose to read, wrapped; other errors stay whole for grep.
            self._print("\n".join(wrap_message(line, terminal_width())) if outcome.gate_fields else line)
            if self.verbose and outcome.details:
                self._print(outcome.details.rstrip())
        elif self.quiet:
            return
        elif outcome.status == RAN:
            self._print(f"{name}: done in {outcome.seconds:.1f}s")
        elif outcome.status == CACHED:
            suffix = " (computed by another process)" if outcome.seconds else ""
            self._print(f"{name}: cached{suffix}")

    def stage_blocked(self, name: str, reason: str) -> None:
        self._print(f"{name}: not run ({reason})")

    def message(self, text: str) -> None:
        if not self.quiet:
            self._print(text)
