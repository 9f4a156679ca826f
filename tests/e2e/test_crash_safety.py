"""Real `compressflow run` processes killed, interrupted, run concurrently, and a damaged cache."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest

import compressflow.api
from compressflow.executor.cache import Cache

from helpers import cli, runs, spawn_cli, write

SLOW_PIPELINE = """
version: 1
name: slow
stages:
  a: {type: toy_number, value: 1, sleep: 0.15, blob_kib: 4096}
  b: {type: toy_scale, model: a, sleep: 0.15, blob_kib: 4096}
  c: {type: toy_scale, model: b, sleep: 0.15, blob_kib: 4096}
  d: {type: toy_sum, inputs: [a, c], sleep: 0.15, blob_kib: 4096}
"""


@pytest.fixture
def slow(tmp_path: Path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    return write(tmp_path / "slow.yaml", SLOW_PIPELINE), log


def wipe(folder: Path) -> None:
    def make_writable_and_retry(function, path, _exc):
        Path(path).parent.chmod(0o700)
        Path(path).chmod(0o700)
        function(path)

    if folder.exists():
        shutil.rmtree(folder, onerror=make_writable_and_retry)


def committed(pipeline: Path) -> set[str]:
    """Stages whose entries a run would trust (checked in this process: faster than the CLI)."""
    plan = compressflow.api.plan(pipeline)
    return {name for name, s in plan.stages.items() if s.action == "cached"}


def damaged(pipeline: Path) -> list:
    return Cache(pipeline.parent / ".compressflow" / "cache").verify_all()


@pytest.mark.slow
def test_sigkill_at_many_moments_never_leaves_a_trusted_bad_entry(slow):
    pipeline, log = slow
    started = time.perf_counter()
    assert cli("run", pipeline).code == 0
    duration = time.perf_counter() - started
    wipe(pipeline.parent / ".compressflow")
    # Kill moments spread evenly over a whole run: start-up, each stage's work, writing and commit.
    moments = [duration * (i + 0.5) / 24 for i in range(24)]
    kills = 0
    for moment in moments:
        cached_before = committed(pipeline)
        process = spawn_cli("run", pipeline)
        time.sleep(moment)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.communicate()
        assert damaged(pipeline) == []
        assert committed(pipeline) >= cached_before, "a committed entry was lost"
        wipe(pipeline.parent / ".compressflow")  # each kill starts from an empty cache
    assert kills >= 20
    # After a kill, the next run completes and recomputes only what had not committed.
    process = spawn_cli("run", pipeline)
    time.sleep(duration * 0.6)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    before = committed(pipeline)
    log.unlink(missing_ok=True)
    final = cli("run", pipeline)
    assert final.code == 0, final.text
    assert set(runs(log)) == {"a", "b", "c", "d"} - before
    verify = cli("cache", "verify", pipeline)
    assert verify.code == 0 and " 0 damaged" in verify.out, verify.text


def test_sigint_stops_cleanly_with_the_resume_command(slow):
    pipeline, log = slow
    process = spawn_cli("run", pipeline)
    deadline = time.monotonic() + 60
    while not runs(log) and time.monotonic() < deadline:  # interrupt while a stage works
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "interrupted" in err and f"compressflow run {pipeline}" in err
    assert "Traceback" not in out + err
    verify = cli("cache", "verify", pipeline)
    assert " 0 damaged" in verify.out
    assert cli("run", pipeline).code == 0


def test_sigterm_stops_the_worker_processes_and_records_the_interruption(tmp_path: Path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    pipeline = write(tmp_path / "branches.yaml", "version: 1\nname: branches\nstages:\n"
                     "  left: {type: toy_number, value: 1, sleep: 60}\n"
                     "  right: {type: toy_number, value: 2, sleep: 60}\n")
    process = spawn_cli("run", pipeline, "--jobs", "2")
    deadline = time.monotonic() + 60
    while len(runs(log)) < 2 and time.monotonic() < deadline:  # both branches working, in two workers
        time.sleep(0.05)
    workers = {int(line.split()[1]) for line in log.read_text().splitlines()}
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, (out, err)
    assert "terminated" in err and f"compressflow run {pipeline} --jobs 2" in err and "Traceback" not in err
    assert len(workers) == 2 and not any(psutil.pid_exists(pid) for pid in workers), "a worker outlived the run"
    (record,) = (json.loads(p.read_text()) for p in (tmp_path / ".compressflow" / "runs").glob("*/run.json"))
    assert record["status"] == "interrupted"


def test_concurrent_runs_compute_each_stage_once(slow):
    pipeline, log = slow
    processes = [spawn_cli("run", pipeline) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], results
    assert sorted(runs(log)) == ["a", "b", "c", "d"]
    assert cli("cache", "verify", pipeline).code == 0


def test_damaged_entry_is_reported_removed_and_recomputed(slow):
    pipeline, log = slow
    assert cli("run", pipeline).code == 0
    key = json.loads(cli("plan", pipeline, "--json").out)["b"]["key"]
    blob = pipeline.parent / ".compressflow" / "cache" / "entries" / key[:2] / key / "blob.bin"
    blob.chmod(0o644)
    with open(blob, "r+b") as fh:
        fh.truncate(100)
    log.unlink()
    result = cli("run", pipeline)
    assert result.code == 0, result.text
    assert "stage 'b'" in result.out and "damaged" in result.out
    assert runs(log) == ["b"]  # c and d keep their keys: b's key did not change
    assert cli("cache", "verify", pipeline).code == 0
