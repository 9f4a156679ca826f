"""Run ``compressflow`` commands in bounded processes: a memory limit, a CPU limit and a timeout.

Two ways, same result:

* :class:`ForkServer` keeps one process with the CLI imported (``cli_forkserver.py``) and
  forks a fresh child per command: the corpus of hostile files runs in seconds.
* :func:`run_fresh` starts ``python -m compressflow`` from scratch for each command.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER = Path(__file__).with_name("cli_forkserver.py")
MEMORY_LIMIT = 2 * 1024**3   # bytes of address space
TIMEOUT = 20.0               # seconds per command (a hang guard, not a measurement)


@dataclass
class Outcome:
    """What one command did."""

    code: int | None
    out: str
    err: str
    timed_out: bool = False

    @property
    def text(self) -> str:
        return self.out + self.err


class ForkServer:
    """A ``cli_forkserver.py`` process; :meth:`run` gives one command a fresh forked child."""

    def __init__(self, env: dict[str, str] | None = None):
        self._process = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        ready = json.loads(self._process.stdout.readline() or "{}")
        if "ready" not in ready:
            self.close()
            raise RuntimeError("the CLI fork server did not start")
        self._outputs = Path(tempfile.mkdtemp(prefix="compressflow-forkserver-"))
        self._count = 0

    def run(self, *argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = TIMEOUT,
            memory: int = MEMORY_LIMIT) -> Outcome:
        self._count += 1
        out, err = self._outputs / f"{self._count}.out", self._outputs / f"{self._count}.err"
        request = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": env or {}, "stdout": str(out),
                   "stderr": str(err), "timeout": timeout, "memory": memory}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        reply = json.loads(self._process.stdout.readline())
        outcome = Outcome(reply["code"], _read(out), _read(err), reply["timed_out"])
        out.unlink(missing_ok=True)
        err.unlink(missing_ok=True)
        return outcome

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        self._process.wait(timeout=30)
        if self._process.stdout:
            self._process.stdout.close()
        if hasattr(self, "_outputs"):
            for leftover in self._outputs.iterdir():
                leftover.unlink()
            self._outputs.rmdir()


def run_fresh(*argv: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = TIMEOUT,
              memory: int = MEMORY_LIMIT) -> Outcome:
    """``python -m compressflow ARGV`` in a new interpreter under the same limits."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        proc = subprocess.run([sys.executable, "-m", "compressflow", *map(str, argv)], cwd=cwd,
                              env={**os.environ, **(env or {})}, capture_output=True, timeout=timeout,
                              preexec_fn=limit)
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, _text(exc.stdout), _text(exc.stderr), timed_out=True)
    return Outcome(proc.returncode, _text(proc.stdout), _text(proc.stderr))


def _read(path: Path) -> str:
    return _text(path.read_bytes()) if path.exists() else ""


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
