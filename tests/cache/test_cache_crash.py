"""SIGKILL a real process writing a cache entry at every step: nothing damaged is ever trusted.

A child process (cache_helpers/slow_writer.py) writes an entry of several files (a 256 KiB
model, a SavedModel-like folder) under the key's lock, pausing before each chunk it writes
and before each fsync, chmod, replace and rename of the commit. It is killed once before
every one of those steps, then at moments spread over a free-running write. After each kill:
the entry is committed complete or absent (never damaged), every committed entry verifies,
the stale temporary directory is cleaned, the dead holder's lock is taken over with a
message naming it, and a new writer succeeds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from compressflow.cache.local import Cache

HELPER = Path(__file__).parent / "cache_helpers" / "slow_writer.py"
_spec = importlib.util.spec_from_file_location("slow_writer", HELPER)
slow_writer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slow_writer)


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def start_writer(root: Path, key: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HELPER), str(root), key, mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run_in_lockstep(root: Path, key: str, kill_before: int | None) -> tuple[subprocess.Popen, list[str]]:
    """Run the writer, acknowledging every step; SIGKILL it when it pauses before step ``kill_before``."""
    child = start_writer(root, key, "lockstep")
    steps = []
    for line in child.stdout:
        if not line.startswith("step "):
            continue
        number, what = line.split(" ", 2)[1:]
        steps.append(what.strip())
        if int(number) == kill_before:
            child.send_signal(signal.SIGKILL)
            break
        child.stdin.write("\n")
        child.stdin.flush()
    child.wait()
    child.stdin.close()
    child.stdout.close()
    return child, steps


def write_again(cache: Cache, key: str) -> None:
    with cache.writer(key, stage=slow_writer.STAGE, key_doc={"type": "prune", "key": key}) as out:
        for relative in slow_writer.EMPTY_DIRS:
            (out / relative).mkdir(parents=True)
        for relative, data in slow_writer.expected_files(key).items():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).write_bytes(data)


def assert_recovers_from_kill(cache: Cache, messages: list[str], key: str, pid: int,
                              committed: bool | None, killed_holding_lock: bool = True) -> bool:
    """Check every invariant after a kill; ``committed`` None means either outcome is allowed.

    Unless ``killed_holding_lock``, a child that committed may have released its lock already.
    """
    status = cache.status(key)
    assert status in ("hit", "miss")
    if committed is not None:
        assert status == ("hit" if committed else "miss")
    entry = cache.lookup(key, stage=slow_writer.STAGE, verify=True)
    if entry is not None:
        assert {name: entry.file(name).read_bytes() for name in slow_writer.FILE_SIZES} \
            == slow_writer.expected_files(key)
    assert not [m for m in messages if "damaged" in m]
    assert cache.verify_all() == []

    assert cache.clean_stale_tmp() == (0 if entry is not None else 1)
    shard = cache.entry_dir(key).parent
    assert [name for name in os.listdir(shard) if name.startswith(".")] == []

    messages.clear()
    with cache.lock(key, stage=slow_writer.STAGE):
        takeover = [f"taking over the lock on stage 'pruned' left by process {pid} "
                    f"on host {socket.gethostname()} (dead)"]
        if killed_holding_lock or entry is None:
            assert messages == takeover
        else:
            assert messages in ([], takeover)
        if cache.lookup(key, stage=slow_writer.STAGE) is None:
            write_again(cache, key)
    assert cache.lookup(key, stage=slow_writer.STAGE, verify=True) is not None
    messages.clear()
    # Keep the cache small so that each round's verify_all stays cheap.
    others = {info.key for info in cache.entries()} - {key}
    assert cache.gc(keep=others)[0] == 1
    return entry is not None


@pytest.fixture
def messages() -> list[str]:
    return []


@pytest.fixture
def cache(tmp_path: Path, messages: list[str]) -> Cache:
    cache = Cache(tmp_path / "cache", log=messages.append)
    write_again(cache, make_key("bystander"))  # an earlier entry every kill must leave intact
    return cache


@pytest.mark.slow
def test_sigkill_before_every_step_of_writing_and_committing(cache: Cache, messages: list[str]) -> None:
    full_run, steps = run_in_lockstep(cache.root, make_key("full run"), kill_before=None)
    assert full_run.returncode == 0 and cache.status(make_key("full run")) == "hit"
    committed_from = steps.index("renamed into place") + 1
    assert sum(what.startswith("write ") for what in steps) >= 8
    assert sum(not what.startswith("write ") for what in steps) >= 20

    outcomes = []
    for kill_before in range(1, len(steps) + 1):
        key = make_key(f"kill before step {kill_before}")
        child, seen = run_in_lockstep(cache.root, key, kill_before=kill_before)
        assert child.returncode == -signal.SIGKILL and seen == steps[:kill_before]
        outcomes.append(assert_recovers_from_kill(cache, messages, key, child.pid,
                                                  committed=kill_before >= committed_from))

    assert len(outcomes) >= 30 and True in outcomes and False in outcomes
    assert cache.verify_all() == [] and len(cache.entries()) == 2


def read_until(child: subprocess.Popen, prefix: str) -> list[str]:
    """The lines ``child`` prints up to the first that starts with ``prefix`` (which must come)."""
    lines = []
    while not lines or not lines[-1].startswith(prefix):
        line = child.stdout.readline()
        assert line, f"the writer ended before the line waited for; it printed {lines}"
        lines.append(line.rstrip("\n"))
    return lines


def test_sigkill_at_moments_spread_over_a_free_running_write(cache: Cache, messages: list[str]) -> None:
    reference = start_writer(cache.root, make_key("free reference"), "free")
    steps = [line for line in read_until(reference, "done") if line.startswith("step ")]
    reference.communicate("\n")
    assert reference.returncode == 0 and len(steps) >= 30

    # NOTE: killed on reading a line, the writer is somewhere past it (it does not wait for us);
    # the last kill comes after "done", when the entry is committed and the lock released.
    moments = ["started", *(f"step {len(steps) * index // 11} " for index in range(1, 11)), "done"]
    outcomes = []
    for index, moment in enumerate(moments):
        key = make_key(f"free kill {index}")
        child = start_writer(cache.root, key, "free")
        read_until(child, moment)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stdin.close()
        assert child.returncode == -signal.SIGKILL
        outcomes.append(assert_recovers_from_kill(cache, messages, key, child.pid,
                                                  committed=True if moment == "done" else None,
                                                  killed_holding_lock=False))

    assert len(outcomes) == 12 and outcomes[-1] is True
    assert cache.verify_all() == [] and len(cache.entries()) == 2
