"""A stage that measures latency is keyed by the machine; nothing else is (no TensorFlow needed to plan)."""

from __future__ import annotations

import pytest

import compressflow.api
from compressflow.api import open_cache
from compressflow.stages.machine import MACHINE_ID_VARIABLE, cpu_model, machine_fingerprint
import compressflow.stages.machine

from helpers import write

PIPELINE = """
version: 1
name: gated
datasets:
  digits: {type: sklearn_digits, limit: 100}
stages:
  base: {type: load, builder: compressflow.models:small_cnn}
  gate:
    type: evaluate
    models: [base]
    data: digits
    latency: {runs: 3, warmup: 1}
    require: {max_latency_ms: 1000}
  plain: {type: evaluate, models: [base], data: digits, latency: null}
  chosen: {type: select, candidates: [base], evaluation: gate, metric: latency_ms}
"""


def plan_on(machine: str, pipeline, cache_dir, monkeypatch):
    monkeypatch.setenv(MACHINE_ID_VARIABLE, machine)
    return compressflow.api.plan(pipeline, cache_dir=cache_dir)


def remember(plan, cache_dir) -> None:
    """What a run leaves for the next plan to compare with: each stage's key document."""
    cache = open_cache(plan.pipeline, cache_dir)
    for name, item in plan.stages.items():
        cache.set_ref(plan.pipeline.name, name, item.key.key, item.key.doc)


def test_another_machine_changes_only_the_keys_that_hold_a_latency(tmp_path, monkeypatch):
    pipeline = write(tmp_path / "gated.yaml", PIPELINE)
    cache_dir = tmp_path / "cache"
    first = plan_on("ci-a", pipeline, cache_dir, monkeypatch)
    remember(first, cache_dir)
    second = plan_on("ci-b", pipeline, cache_dir, monkeypatch)

    assert first.stages["gate"].key.key != second.stages["gate"].key.key
    # NOTE: select reads the gate's metrics, so its input (the gate's key) changes with it.
    assert first.stages["chosen"].key.key != second.stages["chosen"].key.key
    assert first.stages["plain"].key.key == second.stages["plain"].key.key
    assert first.stages["base"].key.key == second.stages["base"].key.key
    assert second.stages["gate"].machine == {"id": "ci-b", "description": f"named by {MACHINE_ID_VARIABLE}"}
    assert second.stages["plain"].machine is None
    reasons = second.stages["gate"].reasons
    assert reasons == [f"machine changed: measured on ci-a, this is ci-b (named by {MACHINE_ID_VARIABLE})"]
    assert second.stages["chosen"].reasons == ["input changed: evaluation"]
    assert second.machine_note() == ("latency of gate is measured on machine ci-b (named by "
                                     f"{MACHINE_ID_VARIABLE}); another machine measures it again")

    again = plan_on("ci-a", pipeline, cache_dir, monkeypatch)
    assert again.stages["gate"].key.key == first.stages["gate"].key.key


def test_a_machine_is_its_cpu_cores_system_and_runtimes(monkeypatch):
    monkeypatch.delenv(MACHINE_ID_VARIABLE, raising=False)
    machine = machine_fingerprint()
    assert len(machine["id"]) == 12 and int(machine["id"], 16) >= 0
    parts = compressflow.stages.machine.machine_parts()
    assert machine["description"].startswith(f"{parts['cpu']}, {parts['cores']} cores, {parts['system']}")
    assert set(parts["runtimes"]) == {"tensorflow", "ai-edge-litert"}
    for name, version in parts["runtimes"].items():  # NOTE: the core install has neither
        assert (f"{name} {version}" in machine["description"]) == bool(version)


@pytest.mark.parametrize(("cpuinfo", "expected"), [
    ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\n", "AMD EPYC 7B13"),
    ("processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd0c\nHardware\t: BCM2835\n", "BCM2835"),
])
def test_the_cpu_model_is_read_from_cpuinfo(tmp_path, monkeypatch, cpuinfo, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    monkeypatch.setattr(compressflow.stages.machine, "_CPUINFO", path)
    assert cpu_model() == expected
