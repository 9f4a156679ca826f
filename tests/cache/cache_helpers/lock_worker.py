"""Child process for the lock tests.

Usage:
  python lock_worker.py hold CACHE_ROOT KEY STAGE
      take the lock, print "locked", then wait until killed or stdin closes
  python lock_worker.py wait CACHE_ROOT KEY STAGE
      take the lock, printing "waiting <message>" if it has to wait, then print "acquired"
  python lock_worker.py compute CACHE_ROOT COMPUTED_LOG KEY[,KEY...]
      wait for "go" on stdin; then for each key: under its lock, look it up and write the entry
      on a miss (appending "<key> <pid>" to COMPUTED_LOG); finally print one JSON line per key
      with what a lookup outside the lock returns
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from compressflow.cache.local import Cache


def hold(cache: Cache, key: str, stage: str) -> None:
    with cache.lock(key, stage=stage):
        print("locked", flush=True)
        sys.stdin.read()


def wait(cache: Cache, key: str, stage: str) -> None:
    with cache.lock(key, stage=stage, on_wait=lambda message: print(f"waiting {message}", flush=True)):
        print("acquired", flush=True)


def compute(cache: Cache, computed_log: Path, keys: list[str]) -> None:
    sys.stdin.readline()
    for key in keys:
        with cache.lock(key, stage=f"stage-{key[:6]}"):
            if cache.lookup(key, stage=f"stage-{key[:6]}") is None:
                with cache.writer(key, stage=f"stage-{key[:6]}", key_doc={"key": key}) as out:
                    (out / "result.bin").write_bytes(key.encode() * 1000)
                    time.sleep(0.1)  # widen the window in which others must wait
                with open(computed_log, "a") as log:
                    log.write(f"{key} {os.getpid()}\n")
    for key in keys:
        entry = cache.lookup(key, stage=f"stage-{key[:6]}", verify=True)
        print(json.dumps({"key": key, "hit": entry is not None,
                          "sha256": entry.files["result.bin"]["sha256"] if entry else None}), flush=True)


def main() -> None:
    mode, root = sys.argv[1], Path(sys.argv[2])
    cache = Cache(root, log=lambda message: print(f"log {message}", flush=True))
    if mode == "hold":
        hold(cache, sys.argv[3], sys.argv[4])
    elif mode == "wait":
        wait(cache, sys.argv[3], sys.argv[4])
    elif mode == "compute":
        compute(cache, Path(sys.argv[3]), sys.argv[4].split(","))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
