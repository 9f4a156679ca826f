"""A description of the machine and software the suite ran on (nothing here imports TensorFlow)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

from common import REPO_DIR

LIBRARIES = ("compressflow", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "pydantic", "networkx", "numpy", "scikit-learn")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_revision() -> str:
    """The commit of the checkout under test, with ``+changes`` when its tracked files differ."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def describe() -> dict:
    """CPU model, cores, memory, OS, Python and library versions, commit, load average now."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": memory_gib(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "libraries": {name: _version(name) for name in LIBRARIES}, "commit": git_revision(),
            "load_average": os.getloadavg()}
