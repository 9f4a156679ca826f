"""The run lock, across real processes: gc waits for processes using the cache, runs wait for gc."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from compressflow.cache.local import Cache
from compressflow.cache.run_lock import CacheInUse

WORKER = Path(__file__).parent / "cache_helpers" / "run_lock_worker.py"


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def write_entry(cache: Cache, key: str) -> None:
    with cache.writer(key, stage="trained", key_doc={"type": "fine_tune"}) as out:
        (out / "model.keras").write_bytes(b"weights" * 100)


def start_worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> str:
    out, _ = child.communicate(timeout=60)
    return out


def test_gc_waits_while_another_process_uses_the_cache_then_collects(tmp_path: Path, messages: list[str]) -> None:
    key = make_key("used")
    writer = Cache(tmp_path / "cache")
    write_entry(writer, key)
    writer.close()
    user = start_worker("use", tmp_path / "cache", key)
    assert user.stdout.readline() == "using\n"

    gc_cache = Cache(tmp_path / "cache", log=messages.append)
    waiting, result = threading.Event(), []
    collector = threading.Thread(target=lambda: result.append(gc_cache.gc(keep=set(), on_wait=lambda m: (
        messages.append(m), waiting.set()))))
    collector.start()
    assert waiting.wait(timeout=60)
    # NOTE: a path check, not gc_cache.status: this process's own uses wait for its gc to finish
    assert (tmp_path / "cache" / "entries" / key[:2] / key).is_dir()  # nothing removed meanwhile
    assert finish(user) == "hit\n"  # still there when the user looked last
    collector.join(timeout=60)

    assert result == [(1, result[0][1])] and gc_cache.status(key) == "miss"
    assert messages[0].startswith(f"a run is in progress (pid {user.pid}, since ")
    assert messages[0].endswith("; waiting for it to finish")


def test_gc_without_waiting_refuses_naming_the_process_and_removes_nothing(tmp_path: Path, cache: Cache) -> None:
    key = make_key("busy")
    write_entry(cache, key)
    cache.close()
    user = start_worker("use", cache.root, key)
    assert user.stdout.readline() == "using\n"
    try:
        with pytest.raises(CacheInUse, match=rf"a run is in progress \(pid {user.pid}, since .*\); cache gc "
                                             "removed nothing") as refused:
            Cache(cache.root).gc(keep=set(), wait=False)
        assert refused.value.exit_code == 2
        assert cache.status(key) == "hit"
    finally:
        finish(user)


def test_a_run_waits_while_gc_holds_the_cache_and_is_told_why(tmp_path: Path, cache: Cache) -> None:
    key = make_key("waits")
    with cache.exclusive():
        user = start_worker("use", cache.root, key)
        first = user.stdout.readline()
    rest = finish(user)

    assert first.startswith(f"waiting cache gc (pid {os.getpid()}, since "), first
    assert first.rstrip().endswith("is removing unused entries of this cache; waiting for it to finish")
    assert rest == "using\nmiss\n"


def test_a_killed_user_does_not_hold_gc_up(tmp_path: Path, cache: Cache, messages: list[str]) -> None:
    key = make_key("killed")
    write_entry(cache, key)
    cache.close()
    user = start_worker("use", cache.root, key)
    assert user.stdout.readline() == "using\n"
    user.send_signal(signal.SIGKILL)
    user.wait(timeout=60)

    assert cache.gc(keep=set(), wait=False)[0] == 1  # the OS released its lock; wait=False would raise
    assert list((cache.root / "locks" / "runs").iterdir()) == []  # its record went with it


def test_several_caches_of_one_process_never_block_each_other(tmp_path: Path) -> None:
    key = make_key("same process")
    first, second = Cache(tmp_path / "cache"), Cache(tmp_path / "cache")
    write_entry(first, key)
    assert first.status(key) == "hit"  # first uses the cache (shared)

    assert second.gc(keep=set(), wait=False)[0] == 1  # this process's own use is no other run

    assert first.status(key) == "miss"
    gc_elsewhere = start_worker("gc", tmp_path / "cache")
    assert gc_elsewhere.stdout.readline().startswith("waiting a run is in progress")  # first still uses it
    first.close()
    second.close()
    assert gc_elsewhere.stdout.readline() == "exclusive\n"
    finish(gc_elsewhere)
