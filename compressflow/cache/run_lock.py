"""The run lock of a cache: runs use the cache shared, ``cache gc`` exclusively.

``<cache>/locks/runs.lock`` is held with ``flock(LOCK_SH)`` by every process that reads or
writes entries, for as long as it uses the cache (a run: from planning to its end), and with
``flock(LOCK_EX)`` by ``cache gc`` while it decides what to keep and removes the rest. So gc
never removes an entry that a live run has planned to use, is using or is about to read, and a
run started while gc works waits for it. The operating system releases the lock of a process
that dies, however it dies.

So that waiting is explained, each process using the cache records itself in
``locks/runs/<pid>-<host tag>.json`` (gc names the runs it waits for), and gc records itself
in the lock file (runs name the gc they wait for). Records left by dead processes are removed
by gc while it holds the lock exclusively: nobody else can be using the cache then.

``flock`` locks belong to open files, so two descriptors of one process would block each
other: all users of one cache in one process share one descriptor and count their uses (a
thread that asks while another thread of the process waits for gc waits with it).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from compressflow.errors import CacheError, CompressflowError
from compressflow.cache.names import host_tag
from compressflow.cache.locks import open_lock_file, process_is_alive

RUN_LOCK_NAME = "runs.lock"
RECORDS_DIR = "runs"
_RECORD_LIMIT = 4096
_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


class CacheInUse(CompressflowError):
    """``cache gc --no-wait`` found runs using the cache (exit status 2)."""

    exit_code = 2


@dataclass
class _Use:
    """This process's use of one run lock file."""

    fd: int | None = None
    shared: int = 0
    exclusive: int = 0
    record: Path | None = None


_USES: dict[tuple[int, str], _Use] = {}
_GUARD = threading.RLock()


@dataclass(frozen=True)
class _Holder:
    pid: int
    host: str
    since: float

    @classmethod
    def now(cls) -> "_Holder":
        return cls(pid=os.getpid(), host=socket.gethostname(), since=time.time())

    @classmethod
    def parse(cls, data: bytes) -> "_Holder | None":
        try:
            doc = json.loads(data.decode("utf-8"))
            return cls(pid=int(doc["pid"]), host=str(doc["host"]), since=float(doc["since"]))
        except (ValueError, KeyError, TypeError):
            return None

    def encode(self) -> bytes:
        return json.dumps({"pid": self.pid, "host": self.host, "since": self.since}).encode("utf-8")

    @property
    def here(self) -> bool:
        return self.host == socket.gethostname()

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        where = "" if self.here else f" on host {self.host}"
        return f"pid {self.pid}{where}, since {started}"


class RunLock:
    """The run lock at ``path`` (``<cache>/locks/runs.lock``); ``log`` gets waits and link removals."""

    def __init__(self, path: Path, *, log: Callable[[str], None]):
        self.path = path
        self.records = path.parent / RECORDS_DIR
        self._log = log

    def _use(self) -> _Use:
        # NOTE: keyed by pid too: a forked child must not believe it holds what its parent holds.
        key = (os.getpid(), os.path.join(os.path.realpath(self.path.parent), self.path.name))
        return _USES.setdefault(key, _Use())

    # ------------------------------------------------------------------------------ shared: runs

    def acquire_shared(self, *, on_wait: Callable[[str], None] | None = None) -> None:
        """Use the cache: waits while ``cache gc`` holds the lock (telling ``on_wait`` once)."""
        with _GUARD:
            use = self._use()
            if use.shared == 0 and use.exclusive == 0:
                use.fd = self._open_for_sharing()
                if use.fd is not None:
                    try:
                        fcntl.flock(use.fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:
                        (on_wait or self._log)(f"{self._gc_message(use.fd)}; waiting for it to finish")
                        fcntl.flock(use.fd, fcntl.LOCK_SH)
                    use.record = self._write_record()
            use.shared += 1

    def release_shared(self) -> None:
        """Stop using the cache (once per :meth:`acquire_shared`)."""
        with _GUARD:
            use = self._use()
            if use.shared == 0:
                return
            use.shared -= 1
            if use.shared == 0 and use.exclusive == 0:
                self._close(use)

    # ------------------------------------------------------------------------------ exclusive: gc

    @contextmanager
    def exclusive(self, *, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the lock exclusively (re-entrant): no other process uses the cache meanwhile.

        While runs use it, waits (telling ``on_wait`` which) or, without ``wait``, raises
        :class:`CacheInUse` naming them.
        """
        self._acquire_exclusive(wait, on_wait or self._log)
        try:
            yield
        finally:
            self._release_exclusive()

    def _acquire_exclusive(self, wait: bool, on_wait: Callable[[str], None]) -> None:
        with _GUARD:
            use = self._use()
            if use.exclusive:
                use.exclusive += 1
                return
            if use.fd is None:
                use.fd = self._open_for_gc()
            try:
                fcntl.flock(use.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if use.shared:
                    fcntl.flock(use.fd, fcntl.LOCK_SH)  # NOTE: a refused conversion drops the shared lock
                message = self._runs_message()
                if not wait:
                    if not use.shared:
                        self._close(use)
                    raise CacheInUse(f"{message}; cache gc removed nothing: run it again once that has "
                                     "finished, or without --no-wait to wait for it") from None
                on_wait(f"{message}; waiting for it to finish")
                fcntl.flock(use.fd, fcntl.LOCK_EX)
            use.exclusive = 1
            try:
                os.ftruncate(use.fd, 0)
                os.pwrite(use.fd, _Holder.now().encode(), 0)
            except OSError:
                pass  # only the waiting message of a run would lack our pid
            self._remove_stale_records()

    def _release_exclusive(self) -> None:
        with _GUARD:
            use = self._use()
            use.exclusive -= 1
            if use.exclusive:
                return
            try:
                os.ftruncate(use.fd, 0)
            except OSError:
                pass
            if use.shared:
                fcntl.flock(use.fd, fcntl.LOCK_SH)
            else:
                self._close(use)

    # ------------------------------------------------------------------------------ files

    def _open_for_sharing(self) -> int | None:
        """The lock file; None when this process cannot create or open it (a read-only cache,
        which no gc of ours can clean either)."""
        try:
            return open_lock_file(self.path, self._log)
        except OSError as exc:
            if exc.errno not in _READ_ONLY_ERRNOS and exc.errno != errno.ENOENT:
                raise CacheError(f"cannot lock the cache at {self.path.parent.parent}: "
                                 f"{exc.strerror or exc}") from exc
        try:
            return os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None

    def _open_for_gc(self) -> int:
        try:
            return open_lock_file(self.path, self._log)
        except OSError as exc:
            raise CacheError(f"cannot lock the cache at {self.path.parent.parent}: "
                             f"{exc.strerror or exc}") from exc

    def _close(self, use: _Use) -> None:
        if use.record is not None:
            try:
                use.record.unlink(missing_ok=True)
            except OSError:
                pass
        if use.fd is not None:
            os.close(use.fd)  # NOTE: closing releases the flock (a forked child may still hold it)
        use.fd, use.record, use.shared, use.exclusive = None, None, 0, 0

    def _records_dir(self) -> Path | None:
        if os.path.islink(self.records):
            self._log(f"removing the symbolic link {self.records} (to {os.readlink(self.records)}) where a "
                      "folder of the cache belongs; the cache never follows links (what it points to is left alone)")
            self.records.unlink()
        self.records.mkdir(exist_ok=True)
        return self.records

    def _write_record(self) -> Path | None:
        try:
            path = self._records_dir() / f"{os.getpid()}-{host_tag()}.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            try:
                os.write(fd, _Holder.now().encode())
            finally:
                os.close(fd)
            return path
        except OSError:
            return None  # only gc's waiting message would lack our pid

    def _read_records(self) -> list[tuple[Path, _Holder | None]]:
        if os.path.islink(self.records):
            return []
        try:
            names = sorted(os.listdir(self.records))
        except OSError:
            return []
        found = []
        for name in names:
            path = self.records / name
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    data = os.read(fd, _RECORD_LIMIT)
                finally:
                    os.close(fd)
            except OSError:
                found.append((path, None))
                continue
            found.append((path, _Holder.parse(data)))
        return found

    def _remove_stale_records(self) -> None:
        """Remove the records of other processes (dead ones: we hold the lock exclusively)."""
        mine = self._use().record
        for path, _holder in self._read_records():
            if path != mine:
                try:
                    path.unlink()
                except OSError:
                    pass

    # ------------------------------------------------------------------------------ messages

    def _runs_message(self) -> str:
        holders = [h for _path, h in self._read_records()
                   if h is not None and h.pid != os.getpid() and not (h.here and not process_is_alive(h.pid))]
        if not holders:
            return "a run is in progress"
        if len(holders) == 1:
            return f"a run is in progress ({holders[0].describe()})"
        pids = ", ".join(str(h.pid) for h in sorted(holders, key=lambda h: h.since))
        return f"{len(holders)} runs are in progress (pids {pids})"

    def _gc_message(self, fd: int) -> str:
        try:
            holder = _Holder.parse(os.pread(fd, _RECORD_LIMIT, 0))
        except OSError:
            holder = None
        who = f" ({holder.describe()})" if holder else ""
        return f"cache gc{who} is removing unused entries of this cache"
