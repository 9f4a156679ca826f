"""The machine a measurement is made on: CPU model, logical cores, OS / architecture and runtime versions.

A latency depends on the machine that measured it, so a stage whose output holds one
(:meth:`compressflow.stages.base.Stage.depends_on_machine`) has this machine's fingerprint in its
cache key: a run on another machine (CI, a colleague's laptop reading the same S3 cache) measures
again instead of reusing a number that says nothing about it. Everything here is read cheaply and
without importing TensorFlow: ``/proc/cpuinfo`` (or :mod:`platform`) and installed distribution
versions.

``COMPRESSFLOW_MACHINE_ID`` names the machine instead: machines given the same name share their
measurements (e.g. identical CI runners), and a test can play two machines on one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

from compressflow.fingerprints import distribution_version

MACHINE_ID_VARIABLE = "COMPRESSFLOW_MACHINE_ID"
# Distributions that run the measured models; their versions are part of the machine's identity.
RUNTIMES = ("tensorflow", "ai-edge-litert")
_CPUINFO = Path("/proc/cpuinfo")
# Fields naming the CPU in /proc/cpuinfo: x86 first, then ARM and others.
_CPU_FIELDS = ("model name", "hardware", "cpu model", "processor")


def machine_fingerprint() -> dict[str, str]:
    """``{"id": short id, "description": what the machine is}`` of the machine this process runs on.

    With ``COMPRESSFLOW_MACHINE_ID`` set, its value is the id (and the description says so).
    """
    named = os.environ.get(MACHINE_ID_VARIABLE, "").strip()
    if named:
        return {"id": named, "description": f"named by {MACHINE_ID_VARIABLE}"}
    return dict(_measured_fingerprint())


def describe_machine(machine: dict[str, Any] | None) -> str:
    """``id (description)`` of a fingerprint, for plans, tables and reports."""
    if not machine:
        return "an unknown machine"
    return f"{machine.get('id', '?')} ({machine.get('description', '?')})"


@lru_cache(maxsize=1)
def _measured_fingerprint() -> tuple[tuple[str, str], ...]:
    parts = machine_parts()
    runtimes = ", ".join(f"{name} {value}" for name, value in parts["runtimes"].items() if value)
    description = f"{parts['cpu']}, {parts['cores']} cores, {parts['system']}" + (f"; {runtimes}" if runtimes else "")
    ident = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    return (("id", ident), ("description", description))


def machine_parts() -> dict[str, Any]:
    """What identifies the machine: CPU model, logical cores, OS and architecture, runtime versions."""
    return {"cpu": cpu_model(), "cores": os.cpu_count() or 0,
            "system": f"{platform.system()} {platform.machine()}".strip(),
            "runtimes": {name: distribution_version(name) for name in RUNTIMES}}


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one), else what :mod:`platform` says."""
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        text = ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        # NOTE: on ARM "processor" is the core's number on every line; only a name that is not a number counts.
        if sep and value and name in _CPU_FIELDS and not value.isdigit():
            found.setdefault(name, value)
    for name in _CPU_FIELDS:
        if name in found:
            return found[name]
    return platform.processor() or platform.machine() or "unknown CPU"


