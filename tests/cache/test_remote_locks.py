"""Lease locks on a real S3-compatible server, with real processes: exclusion, heartbeat, takeover."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from compressflow.cache.remote_locks import Lease, LeaseLock
from compressflow.cache.remote_store import open_store

from waiting import wait_until

WORKER = Path(__file__).parent / "cache_helpers" / "remote_lock_worker.py"


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class Child:
    """A helper process whose output lines can be awaited."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, str(WORKER), *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line starting with {prefix!r}; saw {self.seen}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def send(self, text: str = "") -> None:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self) -> int:
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        return self.process.wait(timeout=120)


def lease_lock(url: str, key: str, messages: list[str], ttl: float | None = None) -> LeaseLock:
    return LeaseLock(open_store(url), f"locks/{key}.lease", stage="test", subject="test", log=messages.append,
                     ttl=ttl, poll=0.05)


def beats(url: str, key: str) -> int:
    """The heartbeat count of the lease on ``key`` (0 when there is none)."""
    data = open_store(url).read_tagged(f"locks/{key}.lease")
    lease = Lease.parse(data.data) if data is not None else None
    return lease.beat if lease is not None else 0


def put_lease(url: str, key: str, *, host: str, pid: int, ttl: float) -> None:
    lease = Lease(token="t" * 32, pid=pid, host=host, stage="abandoned", since=time.time(), ttl=ttl)
    open_store(url).put(f"locks/{key}.lease", lease.encode())


# ---------------------------------------------------------------------------------- conditional writes


def test_conditional_writes_are_atomic_on_the_server(s3_url: str) -> None:
    store = open_store(s3_url)
    assert store.atomic
    first = store.create("x", b"one")
    assert first is not None and store.create("x", b"two") is None
    second = store.replace("x", b"three", first)
    assert second is not None
    assert store.replace("x", b"four", first) is None        # a stale version never wins
    assert store.read_tagged("x").data == b"three"
    assert not store.delete_if("x", first)
    assert store.delete_if("x", second) and store.read_tagged("x") is None
    assert store.replace("absent", b"x", second) is None


# ---------------------------------------------------------------------------------- exclusion


def test_lease_is_exclusive_until_released(s3_url: str) -> None:
    key, messages = make_key("exclusive"), []
    holder, other = lease_lock(s3_url, key, messages), lease_lock(s3_url, key, messages)
    assert holder.acquire(blocking=False)
    assert not other.acquire(blocking=False)
    holder.release()
    assert other.acquire(blocking=False)
    other.release()
    assert open_store(s3_url).read_tagged(f"locks/{key}.lease") is None
    assert messages == []


@pytest.mark.slow
def test_concurrent_processes_compute_an_entry_once(tmp_path: Path, s3_url: str) -> None:
    key = make_key("compute once")
    computed = tmp_path / "computed.log"
    children = [Child("compute", s3_url, str(tmp_path / f"local-{i}"), str(computed), key) for i in range(4)]
    for child in children:
        child.send("go")
    results = [json.loads(child.expect("{")) for child in children]
    assert [child.finish() for child in children] == [0, 0, 0, 0]
    assert len(computed.read_text().split()) == 1
    assert all(result["hit"] for result in results)
    assert len({result["sha256"] for result in results}) == 1


@pytest.mark.slow
def test_heartbeat_keeps_a_live_holder_past_its_ttl(s3_url: str) -> None:
    key = make_key("heartbeat")
    holder = Child("hold", s3_url, key, "2")
    holder.expect("locked")
    waiter = Child("wait", s3_url, key)
    waiter.expect("waiting")
    # NOTE: beats are ttl / 4 apart at least: 12 of them while the waiter waits span three times the ttl.
    wait_until(lambda: beats(s3_url, key) >= 12, "12 heartbeats of the holder's lease")
    assert not any(line.startswith("acquired") for line in waiter.drain())
    holder.send("release")
    holder.expect("releasing")
    waiter.expect("acquired")
    assert holder.finish() == 0 and waiter.finish() == 0
    assert not any("taking over" in line for line in waiter.seen), waiter.seen


# ---------------------------------------------------------------------------------- takeover


def test_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(s3_url: str) -> None:
    key, messages = make_key("killed holder"), []
    holder = Child("hold", s3_url, key, "600")
    holder.expect("locked")
    pid = holder.process.pid
    os.kill(pid, signal.SIGKILL)
    holder.process.wait()

    lock = lease_lock(s3_url, key, messages)  # its own time-to-live (60 s) is never waited for
    assert lock.acquire()
    lock.release()
    assert any(f"left by process {pid}" in m and "(dead)" in m for m in messages), messages


def test_lease_without_heartbeat_from_another_host_is_taken_over_after_its_ttl(s3_url: str) -> None:
    key, messages = make_key("silent host"), []
    put_lease(s3_url, key, host="build-box-7", pid=4242, ttl=1.0)
    waited: list[str] = []
    lock = lease_lock(s3_url, key, messages)
    assert lock.acquire(on_wait=waited.append)
    lock.release()
    assert waited and "process 4242 on host build-box-7" in waited[0]
    assert any("left by process 4242 on host build-box-7 (no heartbeat for 1s)" in m for m in messages)


@pytest.mark.slow
def test_of_several_waiters_on_a_stale_lease_exactly_one_takes_it_over(s3_url: str) -> None:
    key, messages = make_key("stale race"), []
    put_lease(s3_url, key, host="build-box-7", pid=4242, ttl=0.5)
    locks = [lease_lock(s3_url, key, messages, ttl=2.0) for _ in range(3)]
    acquired: list[int] = []
    threads = [threading.Thread(target=lambda i=i: (locks[i].acquire(), acquired.append(i))) for i in range(3)]
    for thread in threads:
        thread.start()
    for turn in range(3):
        wait_until(lambda turn=turn: len(acquired) > turn, f"waiter number {turn + 1} to take the lease")
        if turn == 0:
            # NOTE: the winner keeps its lease alive past two of its ttls (8 beats); the others keep waiting.
            wait_until(lambda: beats(s3_url, key) >= 8, "8 heartbeats of the winner's lease")
            assert len(acquired) == 1
        locks[acquired[turn]].release()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(acquired) == [0, 1, 2]
    assert sum("taking over" in m for m in messages) == 1  # later holders got a released lease


def test_holder_reports_a_lost_lease(s3_url: str) -> None:
    key, messages = make_key("lost"), []
    lock = lease_lock(s3_url, key, messages, ttl=1.0)
    assert lock.acquire()
    put_lease(s3_url, key, host="build-box-7", pid=4242, ttl=60)  # someone took it over
    wait_until(lambda: any("lost the lock" in m for m in messages), "the holder to report the lost lease")
    assert any("lost the lock on test" in m for m in messages), messages
    lock.release()  # it is no longer ours: the other holder's lease stays
    assert Lease.parse(open_store(s3_url).read(f"locks/{key}.lease")).host == "build-box-7"


def test_unreadable_lease_is_taken_over_after_the_waiters_ttl(s3_url: str) -> None:
    key, messages = make_key("garbage"), []
    open_store(s3_url).put(f"locks/{key}.lease", b"\x00 not a lease")
    lock = lease_lock(s3_url, key, messages, ttl=0.5)
    assert lock.acquire()
    lock.release()
    assert any("unreadable lock" in m for m in messages)


@pytest.mark.parametrize("value, expected", [("2.5", 2.5), ("junk", 60.0), ("0", 0.5)])
def test_ttl_comes_from_the_environment(monkeypatch, value: str, expected: float) -> None:
    from compressflow.cache.remote_locks import lease_ttl

    monkeypatch.setenv("COMPRESSFLOW_LEASE_TTL", value)
    assert lease_ttl() == expected


# ---------------------------------------------------------------------------------- stores without conditional DELETE


class RefusingConditionalDelete:
    """The S3 file system of the test server, answering every conditional DELETE as a server lacking it does."""

    def __init__(self, fs):
        self._fs = fs
        self.refused = 0

    def __getattr__(self, name: str):
        return getattr(self._fs, name)

    def call_s3(self, operation: str, **kwargs):
        if operation == "delete_object" and "IfMatch" in kwargs:
            from botocore.exceptions import ClientError
            from s3fs.errors import translate_boto_error

            self.refused += 1
            error = ClientError({"Error": {"Code": "NotImplemented", "Message": "A header you provided implies "
                                           "functionality that is not implemented"}}, "DeleteObject")
            raise translate_boto_error(error)
        return self._fs.call_s3(operation, **kwargs)


def refusing_store(url: str):
    store = open_store(url)
    store.fs = RefusingConditionalDelete(store.fs)
    return store


def test_lease_is_released_on_a_store_without_conditional_delete(s3_url: str) -> None:
    key, messages = make_key("no-conditional-delete"), []
    store = refusing_store(s3_url)
    for _round in range(2):
        holder = LeaseLock(store, f"locks/{key}.lease", stage="test", subject="test", log=messages.append, poll=0.05)
        assert holder.acquire(blocking=False)
        holder.release()
        assert open_store(s3_url).read_tagged(f"locks/{key}.lease") is None   # the lease object is gone
    assert store.fs.refused == 1                                               # asked once, then read-compare-delete
    assert len([m for m in messages if "refuses conditional deletes" in m]) == 1, messages

    waiter = Child("wait", s3_url, key)                                        # another process takes it at once
    assert waiter.expect("acquired") == "acquired"
    assert waiter.finish() == 0
    assert not [line for line in waiter.seen if line.startswith("waiting")], waiter.seen


def test_read_compare_delete_leaves_a_lease_taken_over_meanwhile(s3_url: str) -> None:
    key, messages = make_key("taken-over"), []
    store = refusing_store(s3_url)
    holder = LeaseLock(store, f"locks/{key}.lease", stage="test", subject="test", log=messages.append)
    assert holder.acquire(blocking=False)
    current = store.read_tagged(f"locks/{key}.lease")
    newer = Lease(token="n" * 32, pid=1, host="elsewhere", stage="newer", since=time.time(), ttl=60)
    assert store.replace(f"locks/{key}.lease", newer.encode(), current.tag) is not None  # a takeover
    holder.release()
    left = open_store(s3_url).read_tagged(f"locks/{key}.lease")
    assert left is not None and Lease.parse(left.data).token == newer.token
