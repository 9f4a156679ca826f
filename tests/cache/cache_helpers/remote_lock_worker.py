"""Child process for the remote lock tests (the S3 endpoint comes from AWS_ENDPOINT_URL).

Usage:
  python remote_lock_worker.py hold URL KEY TTL
      take the lease (time-to-live TTL seconds), print "locked", wait for a line on stdin,
      print "releasing" and release it
  python remote_lock_worker.py wait URL KEY
      take the lease, printing "waiting <message>" if it has to wait and every cache message
      as "log <message>", then print "acquired"
  python remote_lock_worker.py compute URL LOCAL_DIR COMPUTED_LOG KEY
      wait for a line on stdin; under the key's lease, look it up and write the entry on a
      miss (appending "<pid>" to COMPUTED_LOG); print one JSON line with what a verified
      lookup returns afterwards
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from compressflow.cache.remote import RemoteCache
from compressflow.cache.remote_locks import LeaseLock
from compressflow.cache.remote_store import open_store


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "hold":
        url, key, ttl = argv[1], argv[2], float(argv[3])
        lease = LeaseLock(open_store(url), f"locks/{key}.lease", stage="holder", subject="holder",
                          log=lambda m: say(f"log {m}"), ttl=ttl)
        lease.acquire()
        say("locked")
        sys.stdin.readline()
        say("releasing")
        lease.release()
    elif mode == "wait":
        url, key = argv[1], argv[2]
        lease = LeaseLock(open_store(url), f"locks/{key}.lease", stage="waiter", subject="waiter",
                          log=lambda m: say(f"log {m}"))
        lease.acquire(on_wait=lambda m: say(f"waiting {m}"))
        say("acquired")
        lease.release()
    elif mode == "compute":
        url, local_dir, computed_log, key = argv[1], Path(argv[2]), Path(argv[3]), argv[4]
        cache = RemoteCache(url, local_dir=local_dir, log=lambda m: say(f"log {m}"))
        sys.stdin.readline()
        with cache.lock(key, stage="shared"):
            if cache.lookup(key, stage="shared") is None:
                with cache.writer(key, stage="shared", key_doc={"key": key}) as out:
                    (out / "result.bin").write_bytes(os.urandom(4096))
                    time.sleep(0.3)  # widen the window in which the others must wait
                with open(computed_log, "a") as log:
                    log.write(f"{os.getpid()}\n")
        entry = cache.lookup(key, stage="shared", verify=True)
        say(json.dumps({"hit": entry is not None,
                        "sha256": entry.files["result.bin"]["sha256"] if entry else None}))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
