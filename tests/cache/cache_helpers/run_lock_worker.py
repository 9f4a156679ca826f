"""Child process for the run lock tests.

Usage:
  python run_lock_worker.py use CACHE_ROOT KEY
      use the cache (look KEY up), printing "waiting <message>" if gc holds it, then "using";
      keep using it until stdin closes, then print the entry's status and exit
  python run_lock_worker.py gc CACHE_ROOT
      hold the cache exclusively (as cache gc does), print "exclusive", and keep it until stdin closes
"""

from __future__ import annotations

import sys
from pathlib import Path

from compressflow.cache.local import Cache


def main() -> None:
    mode, root = sys.argv[1], Path(sys.argv[2])
    cache = Cache(root, log=lambda message: print(f"waiting {message}", flush=True))
    if mode == "use":
        key = sys.argv[3]
        cache.lookup(key, stage="reader")
        print("using", flush=True)
        sys.stdin.read()
        print(cache.status(key), flush=True)
    elif mode == "gc":
        with cache.exclusive():
            print("exclusive", flush=True)
            sys.stdin.read()
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
