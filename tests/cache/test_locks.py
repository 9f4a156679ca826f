"""One lock per key, across real processes: waiting, takeover of a dead holder, compute once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from compressflow.cache.local import Cache
from compressflow.cache.locks import KeyLock, LockHolder, process_is_alive

WORKER = Path(__file__).parent / "cache_helpers" / "lock_worker.py"


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def start_worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> str:
    out, _ = child.communicate(timeout=60)
    return out


def lock_record(cache: Cache, key: str) -> bytes:
    return (cache.root / "locks" / f"{key}.lock").read_bytes()


def test_lock_records_its_holder_and_clears_the_record_on_release(cache: Cache, messages: list[str]) -> None:
    key = make_key("record")
    with cache.lock(key, stage="pruned"):
        holder = LockHolder.parse(lock_record(cache, key))
        assert (holder.pid, holder.host, holder.stage) == (os.getpid(), socket.gethostname(), "pruned")
    assert lock_record(cache, key) == b""
    with cache.lock(key, stage="pruned"):
        pass
    assert messages == []  # clean releases are never reported as takeovers


def test_a_waiting_process_is_told_who_holds_the_lock(cache: Cache, messages: list[str]) -> None:
    key = make_key("wait")
    with cache.lock(key, stage="trained"):
        child = start_worker("wait", str(cache.root), key, "pruned")
        waiting = child.stdout.readline()
    rest = finish(child)

    assert waiting.startswith(f"waiting stage 'pruned' (key {key[:12]}\u2026) is locked by process {os.getpid()} "
                              f"on host {socket.gethostname()} (stage 'trained', since ")
    assert waiting.rstrip().endswith("; waiting for it to finish")
    assert rest == "acquired\n" and child.returncode == 0


def test_the_lock_of_a_killed_holder_is_taken_over_and_reported(cache: Cache, messages: list[str]) -> None:
    key = make_key("stale")
    child = start_worker("hold", str(cache.root), key, "pruned")
    assert child.stdout.readline() == "locked\n"
    assert LockHolder.parse(lock_record(cache, key)).pid == child.pid
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdin.close()
    child.stdout.close()
    assert not process_is_alive(child.pid)

    takeover = KeyLock(cache.root / "locks" / f"{key}.lock", stage="pruned", subject="pruned", log=messages.append)
    assert takeover.acquire(blocking=False)  # the OS released the dead holder's flock
    takeover.release()

    assert messages == [f"taking over the lock on stage 'pruned' left by process {child.pid} "
                        f"on host {socket.gethostname()} (dead)"]
    messages.clear()
    with cache.lock(key, stage="pruned"):
        assert LockHolder.parse(lock_record(cache, key)).pid == os.getpid()
    assert messages == []


def test_each_key_is_computed_once_by_concurrent_processes(cache: Cache, tmp_path: Path) -> None:
    keys = [make_key(f"shared {index}") for index in range(3)]
    computed_log = tmp_path / "computed.log"
    workers = []
    for index in range(5):
        order = keys[index % 3:] + keys[:index % 3]  # overlapping work in different orders
        workers.append(start_worker("compute", str(cache.root), str(computed_log), ",".join(order)))
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [finish(worker) for worker in workers]

    assert [worker.returncode for worker in workers] == [0] * 5
    computed = [line.split()[0] for line in computed_log.read_text().splitlines()]
    assert sorted(computed) == sorted(keys)
    results = [json.loads(line) for output in outputs for line in output.splitlines() if line.startswith("{")]
    assert len(results) == 15 and all(result["hit"] for result in results)
    for key in keys:
        assert {r["sha256"] for r in results if r["key"] == key} == {hashlib.sha256(key.encode() * 1000).hexdigest()}
    assert not [line for output in outputs for line in output.splitlines() if line.startswith("log ")]
    assert cache.verify_all() == []


def test_gc_leaves_entries_whose_lock_is_held(cache: Cache) -> None:
    busy, idle = make_key("busy"), make_key("idle")
    for key in (busy, idle):
        with cache.writer(key, stage="pruned", key_doc={}) as out:
            (out / "model.keras").write_bytes(b"m")
    with cache.lock(busy, stage="pruned"):
        removed, _ = cache.gc(keep=set())
        assert removed == 1
        assert cache.status(busy) == "hit" and cache.status(idle) == "miss"


def test_a_waiter_whose_lock_file_is_deleted_locks_the_new_file(cache: Cache) -> None:
    path = cache.root / "locks" / f"{make_key('deleted')}.lock"
    first = KeyLock(path, stage="gc", subject="deleted", log=lambda message: None)
    second = KeyLock(path, stage="pruned", subject="deleted", log=lambda message: None)
    third = KeyLock(path, stage="int8", subject="deleted", log=lambda message: None)
    second_is_waiting, second_holds = threading.Event(), threading.Event()

    first.acquire()
    waiter = threading.Thread(target=lambda: (second.acquire(on_wait=lambda m: second_is_waiting.set()),
                                              second_holds.set()))
    waiter.start()
    assert second_is_waiting.wait(timeout=30)
    first.release(remove_file=True)
    assert second_holds.wait(timeout=30)
    waiter.join()

    assert not third.acquire(blocking=False)  # second holds the lock on the file now at that path
    second.release()
    assert third.acquire(blocking=False)
    third.release()


@pytest.mark.parametrize("record, state", [
    (lambda: LockHolder(pid=os.getppid(), host=socket.gethostname(), stage="pruned", since=0.0),
     "still running, no longer holding it"),
    (lambda: LockHolder(pid=4242, host="elsewhere.example", stage="pruned", since=0.0),
     "not released cleanly"),
])
def test_takeover_messages_say_what_became_of_the_previous_holder(cache: Cache, messages: list[str],
                                                                  record, state: str) -> None:
    key = make_key("left behind")
    previous = record()
    (cache.root / "locks").mkdir(parents=True)
    (cache.root / "locks" / f"{key}.lock").write_bytes(previous.encode())

    with cache.lock(key, stage="pruned"):
        pass

    assert messages == [f"taking over the lock on stage 'pruned' left by process {previous.pid} "
                        f"on host {previous.host} ({state})"]


def test_exited_but_unreaped_processes_count_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped: a zombie
    assert not process_is_alive(child.pid)
    child.wait()
    assert process_is_alive(os.getpid())
    assert not process_is_alive(0) and not process_is_alive(-1)
