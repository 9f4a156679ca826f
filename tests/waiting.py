"""Waiting for another process to reach a state, by polling for it; a hang fails with what was awaited."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

#: Seconds before a wait gives up: a guard against a hang, far above any normal wait, not a timing check.
PATIENCE = 120.0


def wait_until(condition: Callable[[], T], what: str, patience: float = PATIENCE, interval: float = 0.01) -> T:
    """Poll ``condition`` until it returns something true, and return that; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + patience
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {patience:g} s waiting for {what}")
        time.sleep(interval)
