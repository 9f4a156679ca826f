"""Helpers shared by the benchmark sections: running timed subprocesses, summarising repetitions.

Every timed command runs in a fresh subprocess whose wall time is measured from here. The
checkout this file lives in is put first on ``PYTHONPATH``, so the suite measures the code
next to it (a copy of the repository measures that copy).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable


class BenchError(RuntimeError):
    """A benchmarked command failed; the message holds the end of its output."""


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of every benchmarked subprocess.

    Bytecode caching is left on (as in a normal install), TensorFlow's C++ logging is
    quieted for both sides alike, and the checkout under test comes first on the path.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("COMPRESSFLOW_CACHE", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["TF_USE_LEGACY_KERAS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_DIR), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def compressflow_cmd(*args: str) -> list[str]:
    """The command line of ``compressflow ARGS`` run with this interpreter."""
    return [PYTHON, "-m", "compressflow", *args]


@dataclass
class Timed:
    """One timed command: wall seconds, peak memory of its process tree, its output."""

    seconds: float
    peak_rss_mb: float | None
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system time of the command and the processes it waited for


class TreeMemorySampler:
    """Samples the summed RSS of a process and all its descendants (psutil) every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)


def run_timed(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
              memory: bool = False, timeout: float = 1200) -> Timed:
    """Run ``cmd`` to completion and time it; raise :class:`BenchError` if it fails."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env or bench_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sampler = TreeMemorySampler(proc.pid) if memory else None
    if sampler:
        sampler.__enter__()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}\n{err[-2000:]}")
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"exit status {proc.returncode}: {' '.join(cmd)}\n{(out + err)[-3000:]}")
    peak = sampler.peak_bytes / 2**20 if sampler else None
    return Timed(seconds, peak, out, err, _children_cpu() - cpu_before)


def _children_cpu() -> float:
    """User + system seconds of every finished child (and the children they waited for)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Series:
    """Repeated measurements of one quantity (seconds unless said otherwise)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def to_json(self) -> dict:
        return {"values": self.values, "median": self.median, "min": self.low, "max": self.high}


def paired_ratios(numerators: Series, denominators: Series) -> Series:
    """Ratios of measurements taken side by side (repetition i of one over repetition i of the other)."""
    return Series([a / b for a, b in zip(numerators.values, denominators.values)])


def fmt_seconds(series: Series) -> str:
    """``12.3 s (11.9–12.8)``: median and range."""
    if len(series.values) == 1:
        return f"{series.median:.2f} s"
    return f"{series.median:.2f} s ({series.low:.2f}–{series.high:.2f})"


def fmt_ratio(series: Series, suffix: str = "") -> str:
    if len(series.values) == 1:
        return f"{series.median:.3f}{suffix}"
    return f"{series.median:.3f}{suffix} ({series.low:.3f}–{series.high:.3f})"


def log(message: str) -> None:
    """Progress of the suite, on stderr so the report stays clean."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
