"""A full disk under the project folder (not the cache), through the real CLI.

The run record (``.compressflow/runs/<id>/run.json``) cannot be written: the run exits 1 with
``cannot write the run record <file>: No space left on device; the disk holding it is full ...``
and no traceback, leaves no temporary record file, keeps the cache entries it committed valid,
and the next run, once there is space, reuses them.

On a real 1 MB tmpfs that fills up (when this process may mount file systems): full before the
run starts, and filled while a stage runs (the final record fails; the stage's entry stays). The
same story, before the run, with ENOSPC injected by ``tests/storage_faults.py``, runs everywhere.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
from pathlib import Path

import pytest

import compressflow.api
from compressflow.runs.console import LineReporter

from helpers import Result, cli, spawn_cli, write
from waiting import wait_until

FIRST = "version: 1\nname: faults\nstages:\n  first: {type: toy_number, value: 1, blob_kib: 64}\n"
SECOND = FIRST + "  second: {type: toy_scale, model: first, factor: 2, blob_kib: 64%s}\n"
FULL = os.strerror(errno.ENOSPC)


def leftovers(folder: Path) -> list[str]:
    """Temporary files anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".tmp"))


def stage_actions(pipeline: Path, cache: Path) -> dict[str, str]:
    return {name: s.action for name, s in compressflow.api.plan(pipeline, cache_dir=cache).stages.items()}


def fill(folder: Path) -> Path:
    """Fill the file system holding ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def check_clean_failure(result, project: Path) -> None:
    assert result.code == 1, result.text
    assert "Traceback" not in result.text, result.text
    assert "error: cannot write the run record " in result.err, result.text
    assert f"{project / '.compressflow' / 'runs'}" in result.err and "run.json" in result.err, result.err
    assert f"{FULL}; the disk holding it is full: free space on it" in result.err, result.err
    assert "run the same command again" in result.err, result.err
    assert leftovers(project) == [], "a temporary file was left behind"


def check_recovery(pipeline: Path, cache: Path, log: Path, expected_runs: list[str]) -> None:
    log.unlink(missing_ok=True)
    result = cli("run", pipeline, "--cache", cache)
    assert result.code == 0, result.text
    ran = [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []
    assert ran == expected_runs
    verify = cli("cache", "verify", "--cache", cache)
    assert verify.code == 0 and " 0 damaged" in verify.out, verify.text


@pytest.fixture
def log(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(path))
    return path


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 1 MB tmpfs (skipped where this process may not mount file systems)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the injected full disk covers this")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here; the injected full disk covers this")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def cache_first(pipeline: Path, cache: Path) -> None:
    """Set-up, in this process: the pipeline with ``first`` only, run into ``cache``."""
    write(pipeline, FIRST)
    assert compressflow.api.run(pipeline, cache_dir=cache, reporter=LineReporter(io.StringIO())).ok


def test_a_full_project_disk_before_the_run_fails_it_cleanly(tiny_tmpfs: Path, tmp_path: Path, log: Path):
    project, cache = tiny_tmpfs / "project", tmp_path / "cache"
    pipeline = project / "pipeline.yaml"
    cache_first(pipeline, cache)
    write(pipeline, SECOND % "")
    records_before = sorted((project / ".compressflow" / "runs").iterdir())
    filler = fill(project)

    result = cli("run", pipeline, "--cache", cache)

    check_clean_failure(result, project)
    assert sorted((project / ".compressflow" / "runs").iterdir()) == records_before, "an empty run folder was left"
    assert stage_actions(pipeline, cache) == {"first": "cached", "second": "run"}
    filler.unlink()
    check_recovery(pipeline, cache, log, ["second"])


def test_a_project_disk_that_fills_during_the_run_keeps_the_finished_stages(tiny_tmpfs: Path, tmp_path: Path,
                                                                            log: Path):
    project, cache = tiny_tmpfs / "project", tmp_path / "cache"
    pipeline = project / "pipeline.yaml"
    cache_first(pipeline, cache)
    release = tmp_path / "release"
    write(pipeline, SECOND % f", wait_for: {release}")  # NOTE: wait_for is not in the cache key
    log.unlink()

    process = spawn_cli("run", pipeline, "--cache", cache)
    try:
        # NOTE: the stage has started (its run is recorded) once it logs itself; a run that ends stops the wait.
        wait_until(lambda: (log.exists() and log.read_text().startswith("second")) or process.poll() is not None,
                   "the second stage to start")
        assert log.exists() and log.read_text().startswith("second"), "the stage never started"
        filler = fill(project)
        release.touch()
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    check_clean_failure(Result(process.returncode, out, err), project)
    assert stage_actions(pipeline, cache) == {"first": "cached", "second": "cached"}
    filler.unlink()
    check_recovery(pipeline, cache, log, [])


def test_an_injected_full_project_disk_fails_the_run_cleanly(tmp_path: Path, log: Path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    pipeline = project / "pipeline.yaml"
    cache_first(pipeline, cache)
    write(pipeline, SECOND % "")
    runs = project / ".compressflow" / "runs"
    records_before = sorted(runs.iterdir())
    plugins = os.environ["COMPRESSFLOW_PLUGINS"] + ",storage_faults"

    result = cli("run", pipeline, "--cache", cache, fresh=True, env={  # the plugin reads its setting on import
        "COMPRESSFLOW_PLUGINS": plugins, "COMPRESSFLOW_TEST_STORAGE_FAULT": f"ENOSPC:{runs}"})

    check_clean_failure(result, project)
    assert sorted(runs.iterdir()) == records_before, "an empty run folder was left"
    assert stage_actions(pipeline, cache) == {"first": "cached", "second": "run"}
    check_recovery(pipeline, cache, log, ["second"])
