"""Several `compressflow run` processes on one cache: overlapping pipelines, and a lock left by a killed run.

Six processes run six different pipelines at once with ``--cache`` on one folder; the
pipelines share some stages (same names and configs, so the same keys) and each has
stages of its own (one of them under a name the others use with another config). Every
shared stage is computed once, every run succeeds with the right values, and the
cache verifies. Then a run is killed (SIGKILL) while it holds a stage's lock; the next
run takes the lock over and says which process left it.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

import compressflow.api
from compressflow.cache.locks import LockHolder

from helpers import cli, spawn_cli, write

PROCESSES = 6
SHARED = """
  base: {type: toy_number, value: 1, sleep: 0.4, blob_kib: 512}
  scaled: {type: toy_scale, model: base, factor: 3, sleep: 0.4}
"""


def overlapping_pipeline(folder: Path, index: int) -> Path:
    """Pipeline ``index``: the shared stages, ``own`` (a config of its own), ``evens`` for even indexes."""
    stages = SHARED + f"  own: {{type: toy_scale, model: scaled, factor: {index + 10}}}\n"
    if index % 2 == 0:
        stages += "  evens: {type: toy_sum, inputs: [scaled, base], add: 1, sleep: 0.2}\n"
    if index % 3 == 0:  # a different order of the same stages
        stages = "\n".join(reversed(stages.strip("\n").splitlines())) + "\n"
    return write(folder / f"p{index}" / "pipeline.yaml", f"version: 1\nname: overlap-{index}\nstages:\n{stages}")


@pytest.mark.slow
def test_overlapping_pipelines_on_one_cache_compute_each_stage_once(tmp_path: Path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    cache = tmp_path / "shared-cache"
    pipelines = [overlapping_pipeline(tmp_path, index) for index in range(PROCESSES)]

    processes = [spawn_cli("run", path, "--cache", cache, *(["--jobs", "2"] if index == 1 else []))
                 for index, path in enumerate(pipelines)]
    results = [process.communicate(timeout=240) for process in processes]

    assert [process.returncode for process in processes] == [0] * PROCESSES, results
    for index, path in enumerate(pipelines):
        values = stage_values(path, cache)
        assert values == {"base": 1.0, "scaled": 3.0, "own": 3.0 * (index + 10), **({"evens": 5.0} if index % 2 == 0
                                                                                    else {})}
    computed = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert computed == {"base": 1, "scaled": 1, "evens": 1, "own": PROCESSES}
    verify = cli("cache", "verify", "--cache", cache)
    assert verify.code == 0 and f"verified {3 + PROCESSES} entries" in verify.out and " 0 damaged" in verify.out, \
        verify.text


def stage_values(pipeline: Path, cache: Path) -> dict[str, float]:
    """Each stage's number, read from the cache entry its key names (every stage must be cached)."""
    plan = compressflow.api.plan(pipeline, cache_dir=cache)
    assert {s.action for s in plan.stages.values()} == {"cached"}
    return {name: json.loads((cache / "entries" / s.key.key[:2] / s.key.key / "value.json").read_text())
            for name, s in plan.stages.items()}


def lock_holder(cache: Path, key: str) -> LockHolder | None:
    path = cache / "locks" / f"{key}.lock"
    return LockHolder.parse(path.read_bytes()) if path.exists() else None


def test_a_lock_left_by_a_killed_run_is_taken_over_naming_the_dead_process(tmp_path: Path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    cache = tmp_path / "cache"
    pipeline = write(tmp_path / "p" / "pipeline.yaml", """
        version: 1
        name: stuck
        stages:
          slow: {type: toy_number, value: 5, blob_kib: 64}
          after: {type: toy_scale, model: slow, factor: 2}
        """)
    key = cli("plan", pipeline, "--cache", cache, "--json")
    assert key.code == 0, key.text
    slow_key = json.loads(key.out)["slow"]["key"]

    stuck = spawn_cli("run", pipeline, "--cache", cache, env={"TOY_BLOCK": "slow"})
    deadline = time.monotonic() + 120  # a hang guard: the stage blocks until it is killed
    # Killed once it holds the lock and its stage is working (the stage logs its start after the lock).
    while ((holder := lock_holder(cache, slow_key)) is None or holder.pid != stuck.pid
           or not (log.exists() and log.read_text().startswith("slow "))):
        assert stuck.poll() is None and time.monotonic() < deadline, stuck.communicate()
        time.sleep(0.05)
    stuck.send_signal(signal.SIGKILL)
    stuck.communicate()

    result = cli("run", pipeline, "--cache", cache)

    assert result.code == 0, result.text
    assert f"taking over the lock on stage 'slow' left by process {stuck.pid} on host {socket.gethostname()} (dead)" \
        in result.text, result.text
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["slow", "slow", "after"]
    leftovers = [p.name for p in (cache / "entries").rglob(".*")]
    assert leftovers == [], "the killed run's unfinished entry is still there"
    verify = cli("cache", "verify", "--cache", cache)
    assert verify.code == 0 and "verified 2 entries" in verify.out and " 0 damaged" in verify.out, verify.text
