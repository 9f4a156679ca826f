"""Child process for the crash tests: writes one cache entry, pausing before every step.

Usage: python slow_writer.py CACHE_ROOT KEY MODE

Steps are every chunk the "stage" writes and every fsync, chmod, replace and rename the
cache performs while committing. Before each step the child pauses:

* MODE ``lockstep``: print ``step <n> <what>`` and wait for a line on stdin, so the parent
  can kill it exactly before step n;
* MODE ``free``: print ``step <n> <what>`` and go on after a few milliseconds, so a parent that
  kills it on reading step n kills it somewhere after step n, at a moment it does not choose.
  After ``done`` it waits for a line on stdin, so such a kill always finds it alive.

The entry's files and contents are given by :func:`expected_files` (the parent imports it).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

STAGE = "pruned"
CHUNK = 64 * 1024
FILE_SIZES = {
    "model.keras": 4 * CHUNK,
    "saved_model/saved_model.pb": 40_000,
    "saved_model/variables/variables.data-00000-of-00001": 2 * CHUNK,
    "saved_model/variables/variables.index": 900,
    "metrics.json": 60,
}
EMPTY_DIRS = ["saved_model/assets"]


def expected_files(key: str) -> dict[str, bytes]:
    """The bytes of every file the child writes for ``key``."""
    files = {}
    for name, size in FILE_SIZES.items():
        seed = hashlib.sha256(f"{key}/{name}".encode()).digest()
        files[name] = (seed * (size // len(seed) + 1))[:size]
    return files


def _stable_name(path) -> str:
    """A file's name without the per-process part of a temporary name."""
    name = Path(path).name
    return f"temporary {name.split('-', 3)[-1]}" if name.startswith(".tmp-") else name


def install_pauses(pause) -> None:
    """Pause before every durable step of the cache (and right after each rename)."""
    real_fsync, real_chmod, real_replace, real_rename = os.fsync, os.chmod, os.replace, os.rename

    def fsync(fd):
        pause("fsync")
        return real_fsync(fd)

    def chmod(path, mode, **kwargs):
        pause(f"chmod {_stable_name(path)}")
        return real_chmod(path, mode, **kwargs)

    def replace(source, target, **kwargs):
        pause(f"replace {Path(target).name}")
        result = real_replace(source, target, **kwargs)
        pause(f"replaced {Path(target).name}")
        return result

    def rename(source, target, **kwargs):
        pause("rename into place")
        result = real_rename(source, target, **kwargs)
        pause("renamed into place")
        return result

    os.fsync, os.chmod, os.replace, os.rename = fsync, chmod, replace, rename


def main() -> None:
    root, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    from compressflow.cache.local import Cache

    counter = {"step": 0}

    def pause(what: str) -> None:
        counter["step"] += 1
        print(f"step {counter['step']} {what}", flush=True)
        if mode == "lockstep":
            sys.stdin.readline()
        else:
            time.sleep(0.004)

    cache = Cache(Path(root), log=lambda message: print(f"log {message}", flush=True))
    install_pauses(pause)
    with cache.lock(key, stage=STAGE):
        with cache.writer(key, stage=STAGE, key_doc={"type": "prune", "key": key}) as out:
            print("started", flush=True)  # holding the lock, temporary directory made
            for relative in EMPTY_DIRS:
                (out / relative).mkdir(parents=True)
            for relative, data in expected_files(key).items():
                (out / relative).parent.mkdir(parents=True, exist_ok=True)
                with open(out / relative, "wb") as handle:
                    for offset in range(0, len(data), CHUNK):
                        pause(f"write {relative} chunk {offset // CHUNK}")
                        handle.write(data[offset:offset + CHUNK])
                        handle.flush()
    print("done", flush=True)
    if mode == "free":
        sys.stdin.readline()


if __name__ == "__main__":
    main()
