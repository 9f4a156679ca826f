"""Worker processes die with the run that started them, and an orphaned worker never commits.

A worker calls :func:`die_with_parent` first thing. On Linux the kernel then sends it SIGKILL
as soon as its parent dies, whatever the worker is doing (even deep inside TensorFlow); on
other systems a thread watches the pipe that multiprocessing keeps open to the parent and ends
the worker when it closes. Either way, :func:`parent_is_gone` lets the worker check, just
before it commits a cache entry, that the process that started it is still its parent.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_expected_parent: int | None = None


class ParentGone(BaseException):
    """The process that started this worker is gone: abandon the stage, commit nothing.

    A ``BaseException`` so that no ``except Exception`` turns it into an ordinary stage failure.
    """


def expect_parent(pid: int) -> None:
    """Commit cache entries only while ``pid`` is this process's parent."""
    global _expected_parent
    _expected_parent = pid


def parent_is_gone() -> bool:
    """True when this process was told to expect a parent (:func:`expect_parent`) that is no longer it."""
    return _expected_parent is not None and os.getppid() != _expected_parent


def check_parent(stage: str) -> None:
    """Raise :class:`ParentGone` when the run that started this worker has died."""
    if parent_is_gone():
        raise ParentGone(f"the run that started this worker (process {_expected_parent}) is gone; "
                         f"stage '{stage}' is abandoned uncommitted")


def die_with_parent(pid: int) -> None:
    """End this process when ``pid``, its parent, dies; end it now if that has already happened."""
    expect_parent(pid)
    if not _set_parent_death_signal():
        _watch_parent_pipe()
    # NOTE: the parent may have died before the signal was armed; then we were reparented already.
    if parent_is_gone():
        os._exit(1)


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent_pipe() -> None:
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        from multiprocessing.connection import wait

        wait([parent.sentinel])  # NOTE: ready (end of file) once the parent's end of the pipe is closed
        os._exit(1)

    threading.Thread(target=watch, name="compressflow-parent-watch", daemon=True).start()
