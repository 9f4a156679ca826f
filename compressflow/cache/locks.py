"""One lock per cache key: ``flock(2)`` on a file that also records who holds it.

The operating system releases an ``flock`` when its holder dies, however it dies, so a
crashed process never blocks others. The record inside the lock file (pid, host, stage,
since when) serves two purposes: a waiting process can say whom it waits for, and a
record still present when a lock is acquired means the previous holder did not release
cleanly, which is reported.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from compressflow.errors import CacheError
from compressflow.cache.holders import (
    HeldLock, describe_holder, process_is_alive, takeover_message, waiting_message)

_RECORD_LIMIT = 4096
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def open_lock_file(path: Path, log: Callable[[str], None]) -> int:
    """Open (creating) the lock file ``path``, never through a symlink at its place.

    A symlink where a lock file belongs would make locking write and truncate whatever it
    points to; it is removed (the link only) and reported, and a regular file made there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(path, _OPEN_FLAGS, 0o666)
    except OSError as exc:
        if exc.errno != errno.ELOOP or not os.path.islink(path):
            raise
        log(f"removing the symbolic link {path} (to {os.readlink(path)}) where a lock file belongs; "
            "the cache never follows links (what it points to is left alone)")
        path.unlink(missing_ok=True)
    return os.open(path, _OPEN_FLAGS, 0o666)


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock."""

    pid: int
    host: str
    stage: str
    since: float

    @classmethod
    def for_this_process(cls, stage: str) -> "LockHolder":
        return cls(pid=os.getpid(), host=socket.gethostname(), stage=stage, since=time.time())

    @classmethod
    def parse(cls, data: bytes) -> "LockHolder | None":
        """The holder recorded in ``data``; None if there is no readable record."""
        try:
            doc = json.loads(data.decode("utf-8"))
            return cls(pid=int(doc["pid"]), host=str(doc["host"]), stage=str(doc["stage"]),
                       since=float(doc["since"]))
        except (ValueError, KeyError, TypeError):
            return None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    def is_on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def describe(self) -> str:
        return describe_holder(self.pid, self.host, self.stage, self.since)


def _takeover_message(previous: LockHolder) -> str:
    if not previous.is_on_this_host():
        state = "not released cleanly"
    elif process_is_alive(previous.pid):
        state = "still running, no longer holding it"
    else:
        state = "dead"
    return takeover_message(previous.stage, previous.pid, previous.host, state)


class KeyLock(HeldLock):
    """An exclusive lock on one lock file. Not re-entrant: acquire it once per holder.

    The file descriptor is close-on-exec, so programs a stage starts do not inherit the
    lock (a forked child without exec does; fork before locking).
    """

    def __init__(self, path: Path, *, stage: str, subject: str, log: Callable[[str], None]):
        self.path = path
        self.stage = stage
        self.subject = subject
        self._log = log
        self._fd: int | None = None

    def acquire(self, *, blocking: bool = True, on_wait: Callable[[str], None] | None = None) -> bool:
        """Take the lock; wait for it when ``blocking`` (telling ``on_wait`` once whom we wait for).

        Returns False only when not blocking and another process holds it.
        """
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        told = False
        while True:
            fd = self._open()
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not blocking:
                        os.close(fd)
                        return False
                    if on_wait is not None and not told:
                        on_wait(self._waiting_message(fd))
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                locked_current_file = self._is_current_file(fd)
                if locked_current_file:
                    self._take_over(fd)
            except BaseException:
                os.close(fd)
                raise
            if locked_current_file:
                self._fd = fd
                return True
            # NOTE: the previous holder deleted the lock file (cache gc) while we waited on it;
            # a lock on an unlinked file excludes nobody, so lock the file now at that path.
            os.close(fd)

    def release(self, *, remove_file: bool = False) -> None:
        """Clear the holder record (or delete the lock file) and release the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if remove_file:
                self.path.unlink(missing_ok=True)
            else:
                os.ftruncate(fd, 0)
        except OSError:
            pass  # the next holder will report a takeover; nothing else is affected
        finally:
            os.close(fd)  # closing releases the flock

    def _open(self) -> int:
        try:
            return open_lock_file(self.path, self._log)
        except OSError as exc:
            reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
            raise CacheError(f"cannot lock {self.subject} at {self.path}: {reason}") from exc

    def _is_current_file(self, fd: int) -> bool:
        try:
            at_path = os.lstat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)

    def _take_over(self, fd: int) -> None:
        previous = LockHolder.parse(os.pread(fd, _RECORD_LIMIT, 0))
        if previous is not None:
            self._log(_takeover_message(previous))
        os.ftruncate(fd, 0)
        os.pwrite(fd, LockHolder.for_this_process(self.stage).encode(), 0)

    def _waiting_message(self, fd: int) -> str:
        holder = LockHolder.parse(os.pread(fd, _RECORD_LIMIT, 0))
        return waiting_message(self.subject, holder.describe() if holder else None)
