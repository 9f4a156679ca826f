"""Client of ``cli_forkserver.py``: run ``compressflow`` commands in forked processes.

A command run this way is a real process (its own pid, exit status, environment, folder
and output), started by forking a server that has the CLI imported instead of starting an
interpreter: a test suite with hundreds of commands pays the imports once per server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

SERVER = Path(__file__).with_name("cli_forkserver.py")


@dataclass
class Outcome:
    """What one command did (``code`` is None when it was killed at its time limit)."""

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
        self._lock = threading.Lock()

    def run(self, *argv: str, cwd: Path | str, env: dict[str, str] | None = None, timeout: float = 300,
            memory: int | None = None, cpu: int | None = None) -> Outcome:
        """Run ``compressflow ARGV`` in ``cwd`` with this process's environment plus ``env``, at most
        ``timeout`` seconds, under optional limits of address space (bytes) and CPU (seconds)."""
        with self._lock:
            self._count += 1
            out, err = self._outputs / f"{self._count}.out", self._outputs / f"{self._count}.err"
            request = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": {**os.environ, **(env or {})},
                       "stdout": str(out), "stderr": str(err), "timeout": timeout, "memory": memory, "cpu": cpu}
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


def _read(path: Path) -> str:
    return decode(path.read_bytes()) if path.exists() else ""


def decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
