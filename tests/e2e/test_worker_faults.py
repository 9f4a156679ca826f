"""Worker processes of `compressflow run --jobs N` that lose their run, or are killed under it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import compressflow.api

from helpers import runs, spawn_cli, write

pytestmark = pytest.mark.slow

WAIT_SECONDS = 120  # generous bound on waiting for an event; never a measured duration


def wait_until(condition, what: str, run: subprocess.Popen | None = None):
    """Poll ``condition`` until it holds (and return its value); fail if ``run`` ends first."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if run is not None and run.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {run.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting: {what}")


def workers_of(log: Path) -> dict[str, int]:
    """Stage name -> pid of the process that ran it (recorded by the toy stages)."""
    return {line.split()[0]: int(line.split()[1]) for line in log.read_text().splitlines()} if log.exists() else {}


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def committed(pipeline: Path) -> set[str]:
    plan = compressflow.api.plan(pipeline)
    return {name for name, s in plan.stages.items() if s.action == "cached"}


def entries_dir(pipeline: Path) -> Path:
    return pipeline.parent / ".compressflow" / "cache" / "entries"


@pytest.fixture
def log(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(path))
    return path


@pytest.fixture
def leftovers():
    """Processes a failing test may leave behind; killed at the end whatever happened."""
    processes: list[psutil.Process] = []
    yield processes
    for process in processes:
        if alive(process):
            process.kill()


def test_workers_die_with_a_killed_run_and_commit_nothing(tmp_path: Path, log: Path, leftovers):
    gate = tmp_path / "go"
    pipeline = write(tmp_path / "p.yaml", "version: 1\nname: orphans\nstages:\n"
                     f"  left: {{type: toy_number, value: 1, wait_for: '{gate}'}}\n"
                     f"  right: {{type: toy_number, value: 2, wait_for: '{gate}'}}\n")
    main = spawn_cli("run", pipeline, "--jobs", "2")
    wait_until(lambda: len(workers_of(log)) == 2, "both stages working", main)
    children = psutil.Process(main.pid).children(recursive=True)
    leftovers.extend(children)
    worker_pids = set(workers_of(log).values())
    assert worker_pids <= {child.pid for child in children}
    main.send_signal(signal.SIGKILL)
    main.wait(timeout=60)
    gate.touch()  # an orphan that survived would now finish its stage and try to commit it
    wait_until(lambda: not any(alive(child) for child in children), "every worker of the killed run gone")
    assert committed(pipeline) == set()
    # Only the temporary folders of the killed stages may remain (the next run removes them).
    assert [p.name for p in entries_dir(pipeline).glob("*/*") if not p.name.startswith(".tmp-")] == []
    main.communicate(timeout=60)  # its output pipes close once the last worker holding them is gone


ORPHAN_WORKER = """
import os, sys
from compressflow import api
from compressflow.executor.parent_watch import ParentGone, expect_parent
from compressflow.executor.scheduler import make_task
from compressflow.executor.task import execute

expect_parent(os.getppid())  # as a worker of a run does, but without asking to die with it
pipeline = api.load(sys.argv[1])
plan = api.plan(pipeline)
task = make_task(plan, "slow", str(api.default_cache_dir(pipeline)), verify=False)
try:
    said = execute(task).status
except ParentGone as exc:
    said = f"abandoned: {exc}"
with open(sys.argv[2], "w") as fh:
    fh.write(said)
"""

STARTER = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", *sys.argv[1:]], stdout=subprocess.DEVNULL)
print(worker.pid, flush=True)
time.sleep(600)
"""


def test_an_orphaned_worker_abandons_its_entry_instead_of_committing_it(tmp_path: Path, log: Path, leftovers):
    gate = tmp_path / "go"
    pipeline = write(tmp_path / "p.yaml", "version: 1\nname: orphan\nstages:\n"
                     f"  slow: {{type: toy_number, value: 1, blob_kib: 64, wait_for: '{gate}'}}\n")
    said = tmp_path / "worker-said.txt"
    starter = subprocess.Popen([sys.executable, "-c", STARTER, ORPHAN_WORKER, str(pipeline), str(said)],
                               stdout=subprocess.PIPE, text=True)
    worker = psutil.Process(int(starter.stdout.readline()))
    leftovers.extend([worker, psutil.Process(starter.pid)])
    wait_until(lambda: runs(log) == ["slow"], "the stage working")
    assert any(entries_dir(pipeline).glob("*/.tmp-*")), "the stage writes into a temporary entry"
    starter.kill()
    starter.wait(timeout=60)
    starter.stdout.close()
    wait_until(lambda: worker.ppid() != starter.pid, "the worker reparented")
    gate.touch()
    worker.wait(timeout=WAIT_SECONDS)
    assert said.read_text().startswith("abandoned: the run that started this worker"), said.read_text()
    assert committed(pipeline) == set()
    assert not any(entries_dir(pipeline).glob("*/*")), "the temporary entry was left behind"


def branches(tmp_path: Path, *extra: str) -> tuple[Path, Path, Path]:
    """``left`` and ``right`` wait on a file each (``left``'s is never made); more stages after them."""
    gates = tmp_path / "left.go", tmp_path / "right.go"
    pipeline = write(tmp_path / "p.yaml", "\n".join([
        "version: 1", "name: branches", "stages:",
        f"  left: {{type: toy_number, value: 1, wait_for: '{gates[0]}'}}",
        f"  right: {{type: toy_number, value: 2, wait_for: '{gates[1]}'}}",
        *extra,
        "  after_left: {type: toy_scale, model: left}",
        "  after_right: {type: toy_scale, model: right}", ""]))
    return pipeline, *gates


def test_a_killed_worker_is_its_stages_failure_and_the_sibling_is_kept(tmp_path: Path, log: Path, leftovers):
    pipeline, _, release_right = branches(tmp_path)
    main = spawn_cli("run", pipeline, "--jobs", "2")
    leftovers.append(psutil.Process(main.pid))
    pids = wait_until(lambda: len(workers_of(log)) == 2 and workers_of(log), "both branches working", main)
    psutil.Process(pids["left"]).send_signal(signal.SIGKILL)
    release_right.touch()
    out, err = main.communicate(timeout=WAIT_SECONDS)
    assert main.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    assert f"worker process {pids['left']} was killed by SIGKILL while running 'left'" in out + err
    assert f"compressflow run {pipeline} --jobs 2" in err  # the command that resumes
    assert sorted(runs(log)) == ["left", "right"]  # nothing new starts after a failure
    assert committed(pipeline) == {"right"}


def test_keep_going_runs_the_remaining_stages_on_a_fresh_worker(tmp_path: Path, log: Path, leftovers):
    pipeline, _, release_right = branches(tmp_path, "  third: {type: toy_number, value: 3}")
    main = spawn_cli("run", pipeline, "--jobs", "2", "--keep-going")
    leftovers.append(psutil.Process(main.pid))
    pids = wait_until(lambda: len(workers_of(log)) == 2 and workers_of(log), "both branches working", main)
    psutil.Process(pids["left"]).send_signal(signal.SIGKILL)
    # While right still works, third can only run on a worker started after left's was killed.
    third = wait_until(lambda: workers_of(log).get("third"), "third running", main)
    assert third not in (pids["left"], pids["right"])
    release_right.touch()
    out, err = main.communicate(timeout=WAIT_SECONDS)
    assert main.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    assert f"worker process {pids['left']} was killed by SIGKILL while running 'left'" in out + err
    assert sorted(runs(log)) == ["after_right", "left", "right", "third"]
    assert committed(pipeline) == {"right", "third", "after_right"}
