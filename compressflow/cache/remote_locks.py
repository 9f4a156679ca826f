"""One lock per cache key on an object store: a lease object, created with a conditional put.

Scheme (every step is one atomic request on S3-compatible stores, see
:mod:`~compressflow.cache.remote_store`):

* **acquire**: create ``locks/<key>.lease`` only if it does not exist (``If-None-Match: *``).
  The lease records a random token, the holder (pid, host, stage, since), a heartbeat counter
  and the holder's time-to-live ``ttl``.
* **heartbeat**: while held, a background thread rewrites the lease every ``ttl / 4`` seconds,
  bumping the counter, only if it is still the version it last wrote (``If-Match: <ETag>``).
  If that fails the lease was taken over (the holder looked dead); the holder reports it.
  Its work stays correct: entries are committed by a conditional manifest write that never
  trusts a lock (see :mod:`~compressflow.cache.remote`).
* **wait**: a waiter polls the lease. It is *stale* when its version has not changed for
  ``ttl`` seconds of the waiter's own monotonic clock (no clocks of two machines are ever
  compared), or at once when the holder is a process of this host that is no longer running.
* **take over**: replace the stale lease only if it is still the version judged stale
  (``If-Match``); of several waiters exactly one wins. The takeover is reported.
* **release**: stop the heartbeat and delete the lease only if it is still ours (``If-Match``; on a
  server without conditional DELETE, by reading its version and deleting it if that is still ours).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

from compressflow.cache.holders import (
    HeldLock, describe_holder, process_is_alive, takeover_message, waiting_message)
from compressflow.cache.remote_store import ObjectStore

TTL_ENV = "COMPRESSFLOW_LEASE_TTL"
DEFAULT_TTL = 60.0
_MIN_TTL, _MAX_TTL = 0.5, 24 * 3600.0


def lease_ttl() -> float:
    """Seconds a lease lives without a heartbeat: ``$COMPRESSFLOW_LEASE_TTL`` or 60."""
    try:
        value = float(os.environ.get(TTL_ENV, DEFAULT_TTL))
    except ValueError:
        value = DEFAULT_TTL
    return min(max(value, _MIN_TTL), _MAX_TTL)


@dataclass(frozen=True)
class Lease:
    """The content of a lease object."""

    token: str
    pid: int
    host: str
    stage: str
    since: float
    ttl: float
    beat: int = 0

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes) -> "Lease | None":
        try:
            doc = json.loads(data.decode("utf-8"))
            return cls(token=str(doc["token"]), pid=int(doc["pid"]), host=str(doc["host"]),
                       stage=str(doc["stage"]), since=float(doc["since"]),
                       ttl=min(max(float(doc["ttl"]), _MIN_TTL), _MAX_TTL), beat=int(doc.get("beat", 0)))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def describe(self) -> str:
        return describe_holder(self.pid, self.host, self.stage, self.since)

    def is_dead_here(self) -> bool:
        """Whether the holder is a process of this host that is not running."""
        return self.host == socket.gethostname() and not process_is_alive(self.pid)


class LeaseLock(HeldLock):
    """An exclusive lease on one object of ``store``. Not re-entrant: acquire it once per holder."""

    def __init__(self, store: ObjectStore, rel: str, *, stage: str, subject: str,
                 log: Callable[[str], None], ttl: float | None = None, poll: float | None = None):
        self.store = store
        self.rel = rel
        self.stage = stage
        self.subject = subject
        self._log = log
        self.ttl = ttl if ttl is not None else lease_ttl()
        self._poll = poll if poll is not None else min(1.0, self.ttl / 4)
        self._lease: Lease | None = None
        self._tag: str | None = None
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._lease is not None

    def acquire(self, *, blocking: bool = True, on_wait: Callable[[str], None] | None = None) -> bool:
        """Take the lease; wait for it when ``blocking`` (telling ``on_wait`` once whom we wait for).

        Returns False only when not blocking and another live holder has it.
        """
        if self._lease is not None:
            raise RuntimeError(f"lease {self.rel} is already held by this object")
        told = False
        seen_tag: str | None = None
        seen_since = 0.0
        while True:
            mine = self._new_lease()
            tag = self.store.create(self.rel, mine.encode())
            if tag is not None:
                self._hold(mine, tag)
                return True
            current = self.store.read_tagged(self.rel)
            if current is None:
                continue  # released between our two requests: try again at once
            holder = Lease.parse(current.data)
            if current.tag != seen_tag:
                seen_tag, seen_since = current.tag, time.monotonic()
            ttl = holder.ttl if holder else self.ttl
            dead = holder is not None and holder.is_dead_here()
            if dead or time.monotonic() - seen_since >= ttl:
                tag = self.store.replace(self.rel, mine.encode(), current.tag)
                if tag is not None:
                    self._hold(mine, tag)
                    self._log(_takeover_message(holder, dead, ttl))
                    return True
                continue  # another waiter took it over first, or the holder beat just now
            if not blocking:
                return False
            if on_wait is not None and not told:
                on_wait(waiting_message(self.subject, holder.describe() if holder else None))
                told = True
            time.sleep(self._poll)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours."""
        self._stop.set()
        if self._beater is not None:
            self._beater.join()
            self._beater = None
        with self._state:
            lease, tag, self._lease, self._tag = self._lease, self._tag, None, None
        if lease is None or tag is None:
            return
        conditional = self.store.conditional_delete
        try:
            self.store.delete_if(self.rel, tag)
            if conditional and not self.store.conditional_delete:
                self._log(f"the store {self.store.url} refuses conditional deletes: locks are released by "
                          "reading each lease and deleting it while it is still ours")
        except OSError as exc:
            # NOTE: a lease we cannot delete only delays the next holder until it looks stale.
            self._log(f"could not release the lock on {self.subject}: {exc}")

    # ------------------------------------------------------------------ internals

    def _new_lease(self) -> Lease:
        return Lease(token=secrets.token_hex(16), pid=os.getpid(), host=socket.gethostname(),
                     stage=self.stage, since=time.time(), ttl=self.ttl)

    def _hold(self, lease: Lease, tag: str) -> None:
        self._lease, self._tag = lease, tag
        self._stop = threading.Event()
        self._beater = threading.Thread(target=self._beat, name=f"lease {self.rel}", daemon=True)
        self._beater.start()

    def _beat(self) -> None:
        interval = self.ttl / 4
        while not self._stop.wait(interval):
            with self._state:
                lease, tag = self._lease, self._tag
                if lease is None or tag is None:
                    return
                beaten = Lease(**{**asdict(lease), "beat": lease.beat + 1})
                try:
                    new_tag = self.store.replace(self.rel, beaten.encode(), tag)
                except OSError as exc:
                    self._log(f"could not renew the lock on {self.subject}: {exc}")
                    continue
                if new_tag is None:
                    self._lease = self._tag = None
                    self._log(f"lost the lock on {self.subject}: another process took it over "
                              "(this one looked dead); its result is still committed safely")
                    return
                self._lease, self._tag = beaten, new_tag


def _takeover_message(previous: Lease | None, dead: bool, ttl: float) -> str:
    if previous is None:
        return f"taking over an unreadable lock left unchanged for {ttl:g}s"
    state = "dead" if dead else f"no heartbeat for {ttl:g}s"
    return takeover_message(previous.stage, previous.pid, previous.host, state)
