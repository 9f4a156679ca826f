"""Run ``compressflow`` commands in bounded processes: a memory limit, a CPU limit and a timeout.

Two ways, same result:

* :class:`ForkServer` keeps one process with the CLI imported (``cli_forkserver.py``) and
  forks a fresh child per command: the corpus of hostile files runs in seconds.
* :func:`run_fresh` starts ``python -m compressflow`` from scratch for each command.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import forked_cli
from forked_cli import Outcome, decode

MEMORY_LIMIT = 2 * 1024**3   # bytes of address space
# NOTE: the bound on a command's work is CPU time, which a loaded machine does not stretch; the wall-clock
# timeout only catches a command blocked without computing (waiting on a FIFO, a lock), far above any run.
CPU_SECONDS = 30             # per command
TIMEOUT = 300.0              # seconds per command (a hang guard, not a measurement)


class ForkServer(forked_cli.ForkServer):
    """The shared fork server, with this corpus's limits on every command."""

    def run(self, *argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = TIMEOUT,
            memory: int = MEMORY_LIMIT) -> Outcome:
        return super().run(*argv, cwd=cwd, env=env, timeout=timeout, memory=memory, cpu=CPU_SECONDS)


def run_fresh(*argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = TIMEOUT,
              memory: int = MEMORY_LIMIT) -> Outcome:
    """``python -m compressflow ARGV`` in a new interpreter under the same limits."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))

    try:
        proc = subprocess.run([sys.executable, "-m", "compressflow", *map(str, argv)], cwd=cwd,
                              env={**os.environ, **(env or {})}, capture_output=True, timeout=timeout,
                              preexec_fn=limit)
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, decode(exc.stdout), decode(exc.stderr), timed_out=True)
    return Outcome(proc.returncode, decode(proc.stdout), decode(proc.stderr))
