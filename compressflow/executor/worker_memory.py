"""When a worker process that runs one TensorFlow stage after another has grown enough to be replaced.

Clearing the Keras session between stages (:mod:`compressflow.executor.stage_memory`) drops what
Python holds, but TensorFlow keeps memory of its own that nothing releases (grappler and kernel
caches, the allocator's arenas, per-graph state of converters): a long pipeline in one process grows
by a few tens of MB per stage, and every later stage's peak sits on top of that growth. A fresh
process has none of it, at the price of importing TensorFlow again (seconds). So a worker reports
its memory after each stage (:func:`measure`, once that stage's memory is released) and the runner
replaces it when :class:`RecyclePolicy` says it has grown too much:

* its **baseline** is what it retained after its first stage that had TensorFlow imported (the
  import and its one-time caches, which any fresh worker pays too);
* it is replaced when what it retains after a later stage exceeds the baseline by more than
  ``growth`` (15%) of the highest peak it reached (VmHWM): the next stage would then peak at most
  that much above where it peaks in a fresh process, so a whole run stays within about 1.15x of its
  largest stage (plus the parent process), and a pipeline of small stages is not restarted for
  growth that does not matter next to its stages;
* or when it retains more than ``limit`` bytes, if one is given (``--max-worker-memory``).

Memory is read from ``/proc/self/status``; where there is none (not Linux) no figure is known and
workers are never replaced for memory.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from compressflow.errors import UsageError

#: Default share of a worker's peak it may grow by (after its first stage) before it is replaced.
GROWTH = 0.15

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass(frozen=True)
class WorkerMemory:
    """What a worker process holds after a stage: resident (``VmRSS``) and peak (``VmHWM``) bytes."""

    pid: int
    rss: int | None
    peak: int | None
    tensorflow: bool  # whether TensorFlow is imported in the worker

    def event(self) -> dict:
        """As a ``worker`` event of the stage's events file (MB figures)."""
        return {"event": "worker", "pid": self.pid,
                "rss_mb": None if self.rss is None else round(self.rss / 2**20, 1),
                "peak_mb": None if self.peak is None else round(self.peak / 2**20, 1)}


def measure() -> WorkerMemory:
    """This process's memory now, from ``/proc/self/status`` (``None`` figures where it does not exist)."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) * 1024  # NOTE: the kernel writes kB
    except (OSError, ValueError, IndexError):
        pass
    return WorkerMemory(os.getpid(), fields.get("VmRSS"), fields.get("VmHWM"), "tensorflow" in sys.modules)


@dataclass
class RecyclePolicy:
    """Decides, after each stage of a worker, whether to replace it (see the module's docstring)."""

    limit: int | None = None
    growth: float = GROWTH

    def retire(self, memory: WorkerMemory, baseline: int | None) -> tuple[bool, int | None]:
        """(replace the worker?, its baseline from now on) given its memory after a stage."""
        if memory.rss is None:
            return False, baseline
        if self.limit is not None and memory.rss > self.limit:
            return True, baseline
        if not memory.tensorflow:
            return False, None  # NOTE: the TensorFlow import is no growth: the baseline is taken after it
        if baseline is None:
            return False, memory.rss
        allowed = self.growth * (memory.peak or memory.rss)
        return memory.rss - baseline > allowed, baseline


def parse_size(text: str | int, *, option: str = "--max-worker-memory") -> int:
    """Bytes of a size such as ``1500M``, ``2G``, ``2GB`` or ``1048576``; :class:`UsageError` otherwise."""
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), flags=re.IGNORECASE)
    if not match:
        raise UsageError(f"{option} {text!r}: give a size such as 1500M or 2G")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise UsageError(f"{option} {text!r}: the size must be more than 0")
    return size
