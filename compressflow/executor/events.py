"""Structured events of running stages (log lines, epochs, training steps), from wherever they run.

A stage's events are appended as JSON lines to a file in the run's folder by
:class:`EventSink`. The sink holds only a path, so a task can carry it to a worker
process (or any machine that sees the folder). The main process follows the files with
:class:`EventTailer` and hands every event, in the order it was written, to a listener
(the progress reporter).

An event is a dict with at least ``event`` (``log``, ``epoch``, ``step`` or what a stage
sends through ``ctx.progress``), ``stage`` and ``time`` (seconds since the epoch)::

    {"event": "epoch", "stage": "trained", "time": 1718000000.5, "epoch": 3, "epochs": 15,
     "loss": 0.21, "accuracy": 0.94, "val_loss": 0.19, "val_accuracy": 0.95, "seconds": 0.12,
     "text": "epoch 3/15  loss 0.2100  ..."}
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from compressflow.cache.names import encode_name

EVENTS_DIR = "events"
EVENTS_SUFFIX = ".jsonl"


def events_file(run_dir: Path, stage: str) -> Path:
    """Where the events of ``stage`` go in a run's folder."""
    return Path(run_dir) / EVENTS_DIR / f"{encode_name(stage)}{EVENTS_SUFFIX}"


class EventSink:
    """Append a stage's events to a JSON-lines file; picklable (only the path travels)."""

    def __init__(self, path: str | os.PathLike[str], stage: str):
        self.path = str(path)
        self.stage = stage
        self._file = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "stage": self.stage}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.stage, self._file = state["path"], state["stage"], None

    def __call__(self, event: dict[str, Any]) -> None:
        record = {"event": "progress", **event, "stage": self.stage, "time": time.time()}
        line = json.dumps(record, default=_json_default) + "\n"
        if self._file is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
        # NOTE: one write of a whole line, flushed at once: a reader never sees half an event
        # except at the very end of the file, which it leaves for its next read.
        self._file.write(line)
        self._file.flush()

    def log(self, text: str) -> None:
        """Send each line of ``text`` as a ``log`` event."""
        for line in str(text).splitlines() or [""]:
            self({"event": "log", "text": line})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event of a JSON-lines file (an unfinished last line is left out)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return [json.loads(line) for line in data[:end + 1].splitlines() if line.strip()] if end >= 0 else []


class EventTailer:
    """Follow the event files of a folder and pass each new event to ``listener``.

    A background thread polls every ``interval`` seconds; :meth:`flush` reads what is
    there now (call it before reporting a stage finished, so its last lines come first).
    """

    def __init__(self, directory: Path, listener: Callable[[dict[str, Any]], None], *, interval: float = 0.1):
        self.directory = Path(directory)
        self.listener = listener
        self.interval = interval
        self._offsets: dict[Path, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "EventTailer":
        self._thread = threading.Thread(target=self._follow, name="compressflow-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def __enter__(self) -> "EventTailer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Read and deliver every complete event written so far."""
        with self._lock:
            if not self.directory.is_dir():
                return
            for path in sorted(self.directory.glob(f"*{EVENTS_SUFFIX}")):
                for event in self._new_events(path):
                    try:
                        self.listener(event)
                    except Exception:  # NOTE: a display problem must never stop the run
                        pass

    def _new_events(self, path: Path) -> list[dict[str, Any]]:
        offset = self._offsets.get(path, 0)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offsets[path] = offset + end + 1
        events = []
        for line in data[:end + 1].splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events
