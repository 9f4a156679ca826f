"""Helpers for tests that run the real ``compressflow`` command in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> Result:
    """Run ``python -m compressflow ARGS`` and capture its output."""
    proc = subprocess.run([sys.executable, "-m", "compressflow", *map(str, args)], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def spawn_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "compressflow", *map(str, args)], cwd=cwd,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


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
