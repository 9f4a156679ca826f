"""Real `compressflow run` processes killed, interrupted, run concurrently, and a damaged cache."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import psutil
import pytest

import compressflow.api
from compressflow.cache.local import Cache

from helpers import cli, runs, spawn_cli, write
from waiting import wait_until

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


def entries(pipeline: Path) -> list[Path]:
    """The committed entry folders of the pipeline's cache (not temporary ones)."""
    return [p for p in (pipeline.parent / ".compressflow" / "cache" / "entries").glob("*/*")
            if not p.name.startswith(".")]


def writing(pipeline: Path) -> list[Path]:
    """Temporary entry folders: an entry being written or committed."""
    return list((pipeline.parent / ".compressflow" / "cache" / "entries").glob("*/.tmp-*"))


def kill_moments(pipeline: Path, log: Path) -> list[tuple[str, object]]:
    """(what, condition) for moments spread over a run: start-up, each stage working, being written, committed."""
    moments: list[tuple[str, object]] = [("start-up", lambda: True)]
    for done, stage in enumerate("abc"):
        moments += [(f"{stage} working", lambda stage=stage: stage in runs(log)),
                    (f"{stage} written or committing",
                     lambda done=done: writing(pipeline) or len(entries(pipeline)) > done),
                    (f"{stage} committed", lambda done=done: len(entries(pipeline)) > done)]
    return moments + [("d working", lambda: "d" in runs(log))]


@pytest.mark.slow
def test_sigkill_at_many_moments_never_leaves_a_trusted_bad_entry(slow):
    pipeline, log = slow
    # NOTE: TOY_BLOCK keeps the last stage working forever, so every kill finds the run alive; each kill
    # comes on an event (a stage recorded, a temporary folder, an entry), at a moment the run does not wait for.
    moments = kill_moments(pipeline, log)
    for what, reached in moments:
        log.unlink(missing_ok=True)
        process = spawn_cli("run", pipeline, env={"TOY_BLOCK": "d"})
        wait_until(reached, f"the run's moment '{what}'")
        seen = len(entries(pipeline))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert process.returncode == -signal.SIGKILL, f"the run ended before the kill at '{what}'"
        assert damaged(pipeline) == []
        assert len(committed(pipeline)) >= seen, f"a committed entry was lost (killed at '{what}')"
        wipe(pipeline.parent / ".compressflow")  # each kill starts from an empty cache
    assert len(moments) == 11
    # After a kill, the next run completes and recomputes only what had not committed.
    log.unlink(missing_ok=True)
    process = spawn_cli("run", pipeline, env={"TOY_BLOCK": "c"})
    wait_until(lambda: "c" in runs(log), "stage c to start")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert committed(pipeline) == {"a", "b"}
    log.unlink(missing_ok=True)
    final = cli("run", pipeline)
    assert final.code == 0, final.text
    assert set(runs(log)) == {"c", "d"}
    verify = cli("cache", "verify", pipeline)
    assert verify.code == 0 and " 0 damaged" in verify.out, verify.text


def test_sigint_stops_cleanly_with_the_resume_command(slow):
    pipeline, log = slow
    process = spawn_cli("run", pipeline)
    wait_until(lambda: runs(log), "a stage to start")  # interrupt while a stage works
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
    wait_until(lambda: len(runs(log)) == 2, "both branches working, in two workers")
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
