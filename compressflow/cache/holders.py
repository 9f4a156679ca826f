"""What the two kinds of key lock share: who holds a lock, in words, and the ``with`` protocol.

A :class:`~compressflow.cache.locks.KeyLock` (``flock`` on a local file) and a
:class:`~compressflow.cache.remote_locks.LeaseLock` (a lease object on a store) record the same
holder (pid, host, stage, since) and tell waiters and takeovers in the same words.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable


def process_is_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # NOTE: the state letter follows the parenthesised command name, which may itself contain ')'.
    return stat[stat.rfind(")") + 2:][:1] != "Z"


def describe_holder(pid: int, host: str, stage: str, since: float) -> str:
    """``process 12 on host h (stage 'pruned', since 2026-01-01 10:00:00)``."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    return f"process {pid} on host {host} (stage '{stage}', since {started})"


def waiting_message(subject: str, holder: str | None) -> str:
    """What a waiter is told once: ``subject`` is locked by ``holder`` (a description, None if unreadable)."""
    return f"{subject} is locked by {holder or 'another process'}; waiting for it to finish"


def takeover_message(stage: str, pid: int, host: str, state: str) -> str:
    """What is logged when a lock its holder left behind is taken over; ``state`` says why it was free."""
    return f"taking over the lock on stage '{stage}' left by process {pid} on host {host} ({state})"


class HeldLock:
    """``with lock:`` acquires (waiting) and releases; subclasses give ``acquire`` and ``release``."""

    def acquire(self, *, blocking: bool = True, on_wait: Callable[[str], None] | None = None) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
