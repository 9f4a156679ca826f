"""A cache that cannot be written, through the real CLI: disk full, read-only, permission denied.

A first run caches ``first``; a second run adds ``second`` while the cache's storage
fails. The run exits 1 with ``cannot write the cache at <cache>: <reason>``, leaves no
partial entry, keeps ``first`` intact, and the next healthy run computes only ``second``.

The failure is injected by a test-only plugin (``tests/storage_faults.py``) for ENOSPC,
EROFS and EACCES (root writes through permissions, so EACCES cannot be had for real
here); when this process may mount file systems, the same story also runs on a real
1 MB tmpfs that fills up, and on that tmpfs remounted read-only.
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

from helpers import cli, write

FIRST = "version: 1\nname: faults\nstages:\n  first: {type: toy_number, value: 1, blob_kib: 64}\n"
SECOND = FIRST + "  second: {type: toy_scale, model: first, factor: 2, blob_kib: %d}\n"


def entry_files(cache: Path) -> dict[str, int]:
    """Every file under the cache's entries with its size (temporary and half-written ones included)."""
    root = cache / "entries"
    return {str(p.relative_to(root)): p.lstat().st_size for p in root.rglob("*") if not p.is_dir()}


def stage_actions(pipeline: Path, cache: Path) -> dict[str, str]:
    return {name: s.action for name, s in compressflow.api.plan(pipeline, cache_dir=cache).stages.items()}


def cache_first(pipeline: Path, cache: Path) -> None:
    """Set-up, in this process: the pipeline with ``first`` only, run into ``cache``."""
    write(pipeline, FIRST)
    assert compressflow.api.run(pipeline, cache_dir=cache, reporter=LineReporter(io.StringIO())).ok


def check_failed_run(result, cache: Path, reason: str, before: dict[str, int], pipeline: Path) -> None:
    assert result.code == 1, result.text
    assert f"cannot write the cache at {cache}: {reason}" in result.text, result.text
    assert "Traceback" not in result.text
    assert entry_files(cache) == before, "a partial entry was left, or an earlier one changed"
    assert stage_actions(pipeline, cache) == {"first": "cached", "second": "run"}


def check_recovery(pipeline: Path, cache: Path, log: Path) -> None:
    log.unlink(missing_ok=True)
    result = cli("run", pipeline, "--cache", cache)
    assert result.code == 0, result.text
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["second"]
    verify = cli("cache", "verify", "--cache", cache)
    assert verify.code == 0 and "verified 2 entries" in verify.out and " 0 damaged" in verify.out, verify.text


@pytest.fixture
def story(tmp_path: Path, monkeypatch):
    """(pipeline path, run log) with ``first`` already cached in ``cache``."""
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    return tmp_path / "p" / "pipeline.yaml", log


@pytest.mark.parametrize("fault", ["ENOSPC", "EROFS", "EACCES"])
def test_injected_storage_failure_fails_the_run_cleanly(story, tmp_path: Path, fault: str):
    pipeline, log = story
    cache = tmp_path / "cache"
    cache_first(pipeline, cache)
    write(pipeline, SECOND % 64)
    before = entry_files(cache)
    plugins = os.environ["COMPRESSFLOW_PLUGINS"] + ",storage_faults"

    result = cli("run", pipeline, "--cache", cache, fresh=True, env={  # the plugin reads its setting on import
        "COMPRESSFLOW_PLUGINS": plugins, "COMPRESSFLOW_TEST_STORAGE_FAULT": f"{fault}:{cache / 'entries'}"})

    check_failed_run(result, cache, os.strerror(getattr(errno, fault)), before, pipeline)
    assert "second: FAILED" in result.out
    check_recovery(pipeline, cache, log)


def test_a_read_only_cache_still_serves_a_fully_cached_run(story):
    pipeline, log = story
    cache = pipeline.parent / "cache"
    cache_first(pipeline, cache)
    before = entry_files(cache)
    log.unlink()
    plugins = os.environ["COMPRESSFLOW_PLUGINS"] + ",storage_faults"

    result = cli("run", pipeline, "--cache", cache, fresh=True, env={  # the plugin reads its setting on import
        "COMPRESSFLOW_PLUGINS": plugins, "COMPRESSFLOW_TEST_STORAGE_FAULT": f"EROFS:{cache}"})

    assert result.code == 0, result.text
    assert "first: cached" in result.out and "Traceback" not in result.text
    assert "not remembered for `compressflow plan` explanations" in result.text, result.text
    assert os.strerror(errno.EROFS) in result.text
    assert entry_files(cache) == before
    assert not log.exists(), "a cached stage ran"


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 1 MB tmpfs (skipped where this process may not mount file systems)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected faults cover this")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_real_full_disk_fails_the_run_cleanly(story, tiny_tmpfs: Path):
    pipeline, log = story
    cache = tiny_tmpfs / "cache"
    cache_first(pipeline, cache)
    write(pipeline, SECOND % 2048)  # 2 MB does not fit in what is left of 1 MB
    before = entry_files(cache)

    result = cli("run", pipeline, "--cache", cache)

    check_failed_run(result, cache, os.strerror(errno.ENOSPC), before, pipeline)
    write(pipeline, SECOND % 64)  # a smaller output fits: the cache was left usable
    check_recovery(pipeline, cache, log)


def test_a_real_read_only_cache_fails_the_run_cleanly(story, tiny_tmpfs: Path):
    pipeline, log = story
    cache = tiny_tmpfs / "cache"
    cache_first(pipeline, cache)
    write(pipeline, SECOND % 64)
    before = entry_files(cache)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    try:
        result = cli("run", pipeline, "--cache", cache)
        assert result.code == 1, result.text
        assert f"{cache}" in result.text and os.strerror(errno.EROFS) in result.text, result.text
        assert "Traceback" not in result.text
        assert entry_files(cache) == before
        assert stage_actions(pipeline, cache) == {"first": "cached", "second": "run"}
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_tmpfs)], check=True)
    check_recovery(pipeline, cache, log)
