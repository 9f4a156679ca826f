"""Helpers for tests that run the real ``compressflow`` command in processes of its own."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from forked_cli import ForkServer


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
        fresh: bool = False) -> Result:
    """Run ``compressflow ARGS`` in a process of its own and capture its output.

    The process is forked from a server that has the CLI imported (``forked_cli``), which is
    what ``python -m compressflow`` is once its imports are done. ``fresh`` starts a new
    interpreter instead, for what depends on the environment at import time.
    """
    full_env = {**os.environ, **(env or {})}
    if fresh:
        proc = subprocess.run([sys.executable, "-m", "compressflow", *map(str, args)], cwd=cwd, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)
    outcome = _server_for(full_env).run(*map(str, args), cwd=cwd or os.getcwd(), env=env, timeout=timeout)
    if outcome.timed_out:
        raise subprocess.TimeoutExpired([sys.executable, "-m", "compressflow", *map(str, args)], timeout,
                                        outcome.out, outcome.err)
    return Result(outcome.code, outcome.out, outcome.err)


_servers: dict[tuple[str, str], ForkServer] = {}


def _server_for(env: dict[str, str]) -> ForkServer:
    """One fork server per set of plugins and import path: the registry is read once per process."""
    key = (env.get("COMPRESSFLOW_PLUGINS", ""), env.get("PYTHONPATH", ""))
    if key not in _servers:
        _servers[key] = ForkServer(env={"COMPRESSFLOW_PLUGINS": key[0], "PYTHONPATH": key[1]})
    return _servers[key]


@atexit.register
def _close_servers() -> None:
    for server in _servers.values():
        server.close()


def spawn_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m compressflow ARGS`` in a new interpreter, as from a terminal: Ctrl-C (SIGINT)
    interrupts it even when this process was started in the background, where SIGINT is ignored."""
    return subprocess.Popen([sys.executable, "-m", "compressflow", *map(str, args)], cwd=cwd,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def runs(log: Path) -> list[str]:
    """Stage names in the order the toy stages recorded running (see toy_stages.py)."""
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


TOY_PIPELINE = """
version: 1
name: toy
params:
  a: 1.0
stages:
  one:
    type: toy_number
    value: ${params.a}
  two:
    type: toy_number
    value: 2
  three:
    type: toy_scale
    model: one
    factor: 3
  total:
    type: toy_sum
    inputs: [three, two]
"""


def evaluated_models(folder: Path, pipeline: str, stage: str) -> dict:
    """The metrics of each model an evaluate stage of the pipeline measured, read from its cache entry."""
    import json

    key = json.loads(cli("plan", pipeline, "--json", cwd=folder).out)[stage]["key"]
    return json.loads((folder / ".compressflow/cache/entries" / key[:2] / key / "metrics.json").read_text())["models"]
