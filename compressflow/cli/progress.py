"""Progress of a run: a live view in a terminal (rich), plain lines everywhere else.

:func:`make_reporter` chooses what ``compressflow run`` shows:

* ``--quiet``: failures and the final summary only (lines);
* ``--verbose``: every line (stage logs, epochs, tracebacks, TensorFlow's own output);
* a terminal: :class:`LiveReporter`, a table of every stage (cached, waiting, running,
  done, failed) with timings, and for a training stage a bar of its epochs and steps
  with the running loss and accuracy;
* anything else (CI logs, pipes, ``TERM=dumb``): :class:`compressflow.runs.console.LineReporter`.

rich is imported only when a live view is shown.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from compressflow.runs.console import LineReporter
from compressflow.executor.task import CACHED, FAILED, RAN, TaskOutcome
from compressflow.runs.text_wrap import wrap_message

MODES = ("auto", "live", "plain")
_SHOWN_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc"}


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal that can redraw a live view."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


def make_reporter(mode: str = "auto", *, quiet: bool = False, verbose: bool = False, stream: TextIO | None = None):
    """The reporter for a run: live in a terminal, lines otherwise (see the module docstring)."""
    stream = stream or sys.stdout
    if quiet or verbose or mode == "plain" or (mode == "auto" and not is_terminal(stream)):
        return LineReporter(stream, quiet=quiet, verbose=verbose)
    return LiveReporter(stream=stream)


@dataclass
class StageRow:
    """What the live view knows about one stage."""

    name: str
    kind: str
    state: str = "waiting"  # waiting, cached, running, done, failed, not run
    key: str = ""
    started: float | None = None
    seconds: float | None = None
    epoch: int = 0           # epochs finished
    epochs: int | None = None
    step: int = 0            # steps finished in the current epoch
    steps: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def fraction(self) -> float | None:
        if not self.epochs:
            return None
        within = self.step / self.steps if self.steps and self.epoch < self.epochs else 0.0
        return min(1.0, (self.epoch + within) / self.epochs)

    def metrics_text(self) -> str:
        shown = [(key, self.metrics[key]) for key in _SHOWN_METRICS if key in self.metrics]
        return "  ".join(f"{_SHORT.get(key, key)} {value:.4f}" for key, value in shown)


class LiveReporter:
    """A live table of the run's stages in a terminal, redrawn a few times a second.

    Stage log lines are printed above the table as they come; epoch and step events
    move the stage's bar. The last frame stays on screen when the run ends.
    """

    def __init__(self, stream: TextIO | None = None, console=None):
        from rich.console import Console

        self.console = console or Console(file=stream or sys.stdout)
        self.rows: dict[str, StageRow] = {}
        self.title = ""
        self._lock = threading.RLock()
        self._live = None
        self._began = time.monotonic()
        self._finished_at: float | None = None

    # -- lifecycle ----------------------------------------------------------------

    def begin(self, plan, title: str) -> None:
        """Show every stage the plan touches, then start redrawing."""
        from rich.live import Live

        self.title = title
        for name, item in plan.stages.items():
            if item.action in ("run", "cached"):
                self.rows[name] = StageRow(name, item.stage.kind, key=item.key.key[:10])
        self._began = time.monotonic()
        self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=8,
                          transient=False, redirect_stdout=True, redirect_stderr=False)
        self._live.start()

    def end(self) -> None:
        with self._lock:
            self._finished_at = time.monotonic()
            for row in self.rows.values():
                if row.state in ("waiting", "running"):
                    row.state = "not run"
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- reporter protocol ------------------------------------------------------------

    def stage_started(self, name: str) -> None:
        with self._lock:
            row = self._row(name)
            row.state, row.started = "running", time.monotonic()

    def stage_finished(self, name: str, outcome: TaskOutcome) -> None:
        with self._lock:
            row = self._row(name)
            row.seconds = outcome.seconds if outcome.status != CACHED else None
            row.state = {RAN: "done", CACHED: "cached", FAILED: "failed"}.get(outcome.status, outcome.status)
            if outcome.status == FAILED:
                row.note = (outcome.error or "failed").splitlines()[0]
        if outcome.status == FAILED:
            self._print_failure(name, outcome)

    def stage_blocked(self, name: str, reason: str) -> None:
        with self._lock:
            row = self._row(name)
            row.state, row.note = "not run", reason

    def message(self, text: str) -> None:
        self._print(str(text))

    def stage_event(self, event: dict[str, Any]) -> None:
        """Move a stage's bar (``step``, ``epoch``) or print its log line (``log``)."""
        kind = event.get("event")
        with self._lock:
            row = self._row(str(event.get("stage", "?")))
            if kind == "step":
                row.epochs, row.steps = event.get("epochs") or row.epochs, event.get("steps") or row.steps
                row.epoch, row.step = int(event.get("epoch", 1)) - 1, int(event.get("step", 0))
                row.metrics.update(_numbers(event))
            elif kind == "epoch":
                row.epochs, row.epoch, row.step = event.get("epochs") or row.epochs, int(event.get("epoch", 0)), 0
                row.metrics = _numbers(event)
            elif kind == "log":
                row.note = str(event.get("text", ""))
        if kind == "log":
            self._print((f"  [{row.name}] {event.get('text', '')}", "dim"))

    # -- drawing ------------------------------------------------------------------

    def render(self):
        """The current frame: a title line and one row per stage."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            now = self._finished_at or time.monotonic()
            # NOTE: only the last column (details) gives way when the terminal is narrow.
            table = Table.grid(padding=(0, 1), expand=True)
            for _ in range(6):
                table.add_column(no_wrap=True)
            table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            shown = self._visible_rows(max(5, self.console.size.height - 4))
            for row in shown:
                icon, style = _STATE_LOOK.get(row.state, ("·", "dim"))
                mark = Spinner("dots", style="yellow") if row.state == "running" else Text(icon, style=style)
                elapsed = (now - row.started) if row.state == "running" and row.started else row.seconds
                fraction = row.fraction()
                bar = (ProgressBar(total=1.0, completed=fraction, width=24,
                                   complete_style="green" if row.state == "done" else "yellow")
                       if fraction is not None else Text(""))
                # NOTE: a failure's first line wraps in its cell rather than being cut; the rest is printed above.
                details = (Text(_details(row), no_wrap=False, overflow="fold") if row.state == "failed" else
                           Text(_details(row), style="dim" if row.state in ("cached", "waiting") else ""))
                table.add_row(mark, Text(row.name, style="bold"), Text(row.kind, style="cyan"),
                              Text(row.state, style=style), Text(_duration(elapsed), style="dim"), bar, details)
            counts = {state: sum(1 for r in self.rows.values() if r.state == state)
                      for state in ("running", "done", "cached", "failed", "waiting")}
            summary = "  ".join(f"{n} {state}" for state, n in counts.items() if n)
            head = Text.assemble(("compressflow ", "bold magenta"), (self.title, "bold"),
                                 (f"   {summary}   {_duration(now - self._began)}", "dim"))
            hidden = len(self.rows) - len(shown)
            if hidden:
                return Group(head, table, Text(f"  … {hidden} more stages (see the counts above)", style="dim"))
            return Group(head, table)

    def _visible_rows(self, limit: int) -> list[StageRow]:
        """All rows when they fit; else running and failed ones first, then the others, in plan order."""
        rows = list(self.rows.values())
        if len(rows) <= limit:
            return rows
        rank = {"running": 0, "failed": 1, "done": 2, "waiting": 3, "cached": 4, "not run": 5}
        chosen = {id(r) for r in sorted(rows, key=lambda r: rank.get(r.state, 6))[:limit - 1]}
        return [r for r in rows if id(r) in chosen]

    # -- helpers ------------------------------------------------------------------

    def _row(self, name: str) -> StageRow:
        if name not in self.rows:
            self.rows[name] = StageRow(name, "")
        return self.rows[name]

    def _print_failure(self, name: str, outcome: TaskOutcome) -> None:
        """A stage's failure, whole: every line of its reason wrapped to the terminal, continuations indented."""
        from rich.text import Text

        mark = f"✗ {name} failed"
        lines = wrap_message(f"{mark} after {outcome.seconds:.1f}s: {outcome.error}", self.console.size.width)
        text = Text("\n".join(lines))
        text.stylize("bold red", 0, len(mark))
        # NOTE: soft_wrap: the lines fit already; one that cannot (a long path, a table row) is never cut.
        self.console.print(text, highlight=False, soft_wrap=True)

    def _print(self, *parts) -> None:
        """Print above the live view; ``parts`` are plain strings or (text, style) pairs."""
        from rich.text import Text

        self.console.print(Text.assemble(*parts), highlight=False, soft_wrap=True)


_STATE_LOOK = {
    "waiting": ("·", "dim"),
    "cached": ("≡", "cyan"),
    "running": ("▸", "yellow"),
    "done": ("✓", "green"),
    "failed": ("✗", "bold red"),
    "not run": ("–", "dim"),
}


def _numbers(event: dict[str, Any]) -> dict[str, float]:
    skip = {"epoch", "epochs", "step", "steps", "time", "seconds"}
    return {key: float(value) for key, value in event.items()
            if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool)}


def _details(row: StageRow) -> str:
    if row.epochs:
        steps = f"  step {row.step}/{row.steps}" if row.state == "running" and row.steps and row.step else ""
        return f"epoch {row.epoch}/{row.epochs}{steps}  {row.metrics_text()}".rstrip()
    if row.state == "cached":
        return f"key {row.key}"
    return row.note


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}"
