"""The cache is a boundary, through the real CLI and real processes.

* ``cache gc`` never removes an entry a live run holds or is about to read: runs hold the
  cache's run lock (shared) for their duration, gc takes it exclusively and waits, or with
  ``--no-wait`` exits 2 naming the run.
* Nothing follows a symbolic link out of the cache: a shard folder replaced by a link to an
  outside folder is reported, and gc, verify and run leave what it points to untouched.
* Every path an entry's ``artifact.json`` names must be one of the entry's own files: an entry
  naming ``/etc/hostname``, a file outside or a ``..`` path is damaged (reported, removed,
  recomputed), with or without a manifest that agrees, and its outside file is never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import pytest

import compressflow.api
from compressflow.runs.console import LineReporter

from helpers import cli, runs, spawn_cli, write

BUSY = """
version: 1
name: busy
stages:
  a: {type: toy_number, value: 1}
  w: {type: toy_scale, model: a, factor: 2, wait_for: RELEASE}
  c: {type: toy_sum, inputs: [a, w]}
"""

OTHER = """
version: 1
name: other
stages:
  lone: {type: toy_number, value: 7}
"""

SMALL = """
version: 1
name: small
stages:
  a: {type: toy_number, value: 1}
  b: {type: toy_scale, model: a, factor: 2}
  c: {type: toy_sum, inputs: [b], add: 1}
"""

_PATIENCE = 120.0  # seconds before a wait for another process gives up (a hang, not a timing check)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + _PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def snapshot(folder: Path) -> dict[str, object]:
    """Every name under ``folder`` (links not followed) with its bytes, link target or 'dir'."""
    found: dict[str, object] = {}
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(parent, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


def entry_dirs(pipeline: Path, cache: Path | None = None) -> dict[str, Path]:
    """Where each stage's entry lives (asked of `compressflow plan --json` in a process of its own)."""
    plan = cli("plan", pipeline, "--json", *(["--cache", cache] if cache else []))
    assert plan.code == 0, plan.text
    root = cache or pipeline.parent / ".compressflow" / "cache"
    return {name: root / "entries" / s["key"][:2] / s["key"] for name, s in json.loads(plan.out).items()}


def make_writable(entry: Path) -> None:
    entry.chmod(0o755)
    for path in entry.iterdir():
        path.chmod(0o644)


# ------------------------------------------------------------------------------- gc and live runs


@pytest.fixture
def busy_run(tmp_path: Path):
    """A run of BUSY started in its own process and stopped inside stage w, after a committed.

    Yields (run process, pipeline, cache, release file, run log); the release file lets w finish.
    """
    release = tmp_path / "release"
    log = tmp_path / "runs.log"
    pipeline = write(tmp_path / "p" / "busy.yaml", BUSY.replace("RELEASE", str(release)))
    write(tmp_path / "p" / "other.yaml", OTHER)
    cache = tmp_path / "cache"
    run = spawn_cli("run", pipeline, "--cache", cache, env={"TOY_RUN_LOG": str(log), "PYTHONUNBUFFERED": "1"})
    try:
        wait_until(lambda: "w" in runs(log) or run.poll() is not None, "stage w of the run to start")
        assert run.poll() is None, run.communicate()
        yield run, pipeline, cache, release, log
    finally:
        release.touch()
        if run.poll() is None:
            run.communicate(timeout=_PATIENCE)


def test_gc_waits_for_a_run_in_progress_and_removes_nothing_it_uses(busy_run):
    run, pipeline, cache, release, log = busy_run
    a_entry = entry_dirs(pipeline, cache)["a"]
    assert a_entry.is_dir()  # committed: c will read it once w is done

    gc = spawn_cli("cache", "gc", "--only-given", pipeline.parent / "other.yaml", "--cache", cache,
                   env={"PYTHONUNBUFFERED": "1"})
    first_line = gc.stdout.readline()  # the waiting message, or (before the run lock) gc's summary
    assert a_entry.is_dir(), "gc removed an entry the run is about to read"
    release.touch()
    run_out, run_err = run.communicate(timeout=_PATIENCE)
    gc_out, gc_err = gc.communicate(timeout=_PATIENCE)

    assert f"a run is in progress (pid {run.pid}" in first_line and "waiting" in first_line, first_line + gc_out
    assert run.returncode == 0, run_out + run_err
    assert runs(log) == ["a", "w", "c"]  # c read a's entry after gc had asked to remove it
    assert gc.returncode == 0 and "removed 3 entries" in gc_out, gc_out + gc_err  # after the run: all unused
    assert not a_entry.exists()


def test_gc_with_no_wait_exits_2_naming_the_run_and_removes_nothing(busy_run):
    run, pipeline, cache, release, log = busy_run
    before = snapshot(cache / "entries")

    gc = cli("cache", "gc", pipeline.parent / "other.yaml", "--cache", cache, "--no-wait")

    assert gc.code == 2, gc.text
    assert f"a run is in progress (pid {run.pid}" in gc.text and "Traceback" not in gc.text, gc.text
    assert snapshot(cache / "entries") == before
    release.touch()
    out, err = run.communicate(timeout=_PATIENCE)
    assert run.returncode == 0, out + err
    assert runs(log) == ["a", "w", "c"]


def test_a_run_from_python_leaves_the_cache_to_gc_once_it_returns(tmp_path: Path):
    pipeline = write(tmp_path / "p" / "small.yaml", SMALL)
    write(tmp_path / "p" / "other.yaml", OTHER)
    assert compressflow.api.run(pipeline, reporter=LineReporter(io.StringIO()), echo=None).ok

    gc = cli("cache", "gc", "--only-given", pipeline.parent / "other.yaml", "--no-wait")

    assert gc.code == 0 and "removed 3 entries" in gc.out, gc.text  # the run no longer holds the run lock


# ------------------------------------------------------------------------------- symbolic links


@pytest.fixture
def linked_shard(tmp_path: Path, monkeypatch):
    """SMALL run once; the shard folder of b's entry moved outside the cache and replaced by a link.

    Returns (pipeline, run log, outside folder, link, stages whose entries were in that shard).
    """
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    pipeline = write(tmp_path / "p" / "small.yaml", SMALL)
    write(tmp_path / "p" / "other.yaml", OTHER)
    assert compressflow.api.run(pipeline, reporter=LineReporter(io.StringIO()), echo=None).ok
    log.unlink()
    entries = entry_dirs(pipeline)
    link = entries["b"].parent
    outside = tmp_path / "elsewhere"
    link.rename(outside)
    (outside / "precious.txt").write_text("not the cache's\n")
    link.symlink_to(outside, target_is_directory=True)
    moved = [name for name, entry in entries.items() if entry.parent == link]
    return pipeline, log, outside, link, moved


def assert_link_reported(text: str, link: Path) -> None:
    assert f"entries/{link.name}" in text and "symbolic link" in text, text


def test_gc_reports_a_linked_shard_and_removes_nothing_it_points_to(linked_shard):
    pipeline, _log, outside, link, _moved = linked_shard
    before = snapshot(outside)

    gc = cli("cache", "gc", pipeline.parent / "other.yaml", "--cache", pipeline.parent / ".compressflow" / "cache")

    assert snapshot(outside) == before
    assert gc.code == 0, gc.text
    assert_link_reported(gc.text, link)
    assert not link.is_symlink()  # the link itself is the cache's to remove


def test_verify_reports_a_linked_shard_without_reading_through_it(linked_shard):
    pipeline, _log, outside, link, _moved = linked_shard
    before = snapshot(outside)

    verify = cli("cache", "verify", pipeline)

    assert verify.code == 1, verify.text
    assert_link_reported(verify.text, link)
    assert snapshot(outside) == before


def test_run_reports_a_linked_shard_and_recomputes_without_using_it(linked_shard):
    pipeline, log, outside, link, moved = linked_shard
    before = snapshot(outside)

    result = cli("run", pipeline)

    assert result.code == 0, result.text
    assert_link_reported(result.text, link)
    assert runs(log) == moved  # what lay behind the link is recomputed inside the cache
    assert snapshot(outside) == before
    assert link.is_dir() and not link.is_symlink()
    assert cli("cache", "verify", pipeline).code == 0


# ------------------------------------------------------------------------------- names in artifact.json


@pytest.fixture
def small(tmp_path: Path, monkeypatch):
    """SMALL run once; returns (pipeline, run log, entry folders, writable)."""
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    pipeline = write(tmp_path / "p" / "small.yaml", SMALL)
    assert compressflow.api.run(pipeline, reporter=LineReporter(io.StringIO()), echo=None).ok
    log.unlink()
    entries = entry_dirs(pipeline)
    for entry in entries.values():
        make_writable(entry)
    return pipeline, log, entries


def name_in_artifact(entry: Path, field: str, value: str, *, manifest: bool) -> None:
    """Make the entry's artifact.json say ``field: value``; with ``manifest``, update the manifest to match;
    without, keep artifact.json's size (so only a rehash could tell)."""
    path = entry / "artifact.json"
    original = path.read_bytes()
    doc = json.loads(original)
    doc[field] = value
    if manifest:
        data = json.dumps(doc, indent=2, sort_keys=True).encode()
        path.write_bytes(data)
        manifest_path = entry / "manifest.json"
        record = json.loads(manifest_path.read_text())
        record["files"]["artifact.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        manifest_path.write_text(json.dumps(record, indent=1, sort_keys=True))
    else:
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        assert len(data) <= len(original)
        path.write_bytes(data + b" " * (len(original) - len(data)))


def outside_targets(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "outside.json").write_text("41")
    return {"etc_hostname": "/etc/hostname", "tmp_file": str(tmp_path / "outside.json"),
            "dot_dot": "../../../../../../outside.json"}  # from p/.compressflow/cache/entries/xx/<key>


@pytest.mark.parametrize("target", ["etc_hostname", "tmp_file", "dot_dot"])
def test_an_entry_naming_a_file_outside_is_damaged_and_recomputed(small, tmp_path: Path, target: str):
    pipeline, log, entries = small
    value = outside_targets(tmp_path)[target]
    name_in_artifact(entries["a"], "file", value, manifest=True)
    outside_before = (tmp_path / "outside.json").read_bytes()

    result = cli("run", pipeline)

    assert result.code == 0, result.text
    assert "cache entry for stage 'a'" in result.text and "outside the entry" in result.text, result.text
    assert value in result.text and "recomputing" in result.text, result.text
    assert runs(log) == ["a"]
    assert "value = 1.0" in result.out and "value = 41" not in result.out  # a's summary reads a's own file
    assert (tmp_path / "outside.json").read_bytes() == outside_before
    assert json.loads((entries["a"] / "artifact.json").read_text())["file"] == "value.json"


def test_a_same_size_edit_naming_a_file_outside_is_caught_by_a_plain_run(small):
    pipeline, log, entries = small
    name_in_artifact(entries["a"], "file", "/etc/hostname", manifest=False)

    result = cli("run", pipeline)

    assert result.code == 0, result.text
    assert "cache entry for stage 'a'" in result.text and "/etc/hostname" in result.text, result.text
    assert runs(log) == ["a"] and "value = 1.0" in result.out


def test_an_input_naming_a_file_outside_is_never_read_by_the_stage_using_it(small, tmp_path: Path):
    pipeline, log, entries = small
    name_in_artifact(entries["a"], "file", outside_targets(tmp_path)["tmp_file"], manifest=True)

    result = cli("run", pipeline, "--force", "b")

    assert result.code == 0, result.text
    assert runs(log) == ["a", "b"]
    assert json.loads((entries["b"] / "value.json").read_text()) == 2.0  # not 41 * 2


def test_verify_reports_an_entry_naming_a_file_outside(small, tmp_path: Path):
    pipeline, _log, entries = small
    name_in_artifact(entries["c"], "file", "/etc/hostname", manifest=True)

    verify = cli("cache", "verify", pipeline)

    assert verify.code == 1 and "1 damaged" in verify.out, verify.text
    assert "/etc/hostname" in verify.out and "outside the entry" in verify.out, verify.text


# ------------------------------------------------------------------------------- exports (TensorFlow)

EXPORT = """
version: 1
name: release
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {filters: [4, 8], dense: 8}
  release: {type: export, model: base, format: keras, to: out/model.keras}
"""


@pytest.mark.tf
def test_export_does_not_publish_a_file_its_entry_names_outside(tmp_path: Path):
    pipeline = write(tmp_path / "p" / "release.yaml", EXPORT)
    first = cli("run", pipeline)
    assert first.code == 0, first.text
    out = pipeline.parent / "out"
    sidecar = json.loads((out / "model.keras.json").read_text())
    model_bytes = (out / "model.keras").read_bytes()
    entry = entry_dirs(pipeline)["release"]
    (tmp_path / "outside.bin").write_bytes(b"someone else's file")

    for field, value in (("sidecar", "/etc/hostname"), ("file", str(tmp_path / "outside.bin"))):
        make_writable(entry)
        name_in_artifact(entry, field, value, manifest=True)

        result = cli("run", pipeline)

        assert result.code == 0, result.text
        assert "cache entry for stage 'release'" in result.text and value in result.text, result.text
        assert (out / "model.keras.json").read_bytes() != Path("/etc/hostname").read_bytes()
        assert json.loads((out / "model.keras.json").read_text())["model"] == sidecar["model"]
        assert (out / "model.keras").read_bytes() == model_bytes  # copied again from base's entry
        assert (tmp_path / "outside.bin").read_bytes() == b"someone else's file"


# ------------------------------------------------------------------------------- shared caches


@pytest.mark.slow
def test_a_run_on_a_cache_at_a_url_rehashes_what_it_reads_by_default_and_nothing_else(tmp_path: Path, s3_url: str):
    from compressflow.cache.remote import RemoteCache

    log = tmp_path / "runs.log"
    pipeline = write(tmp_path / "p" / "small.yaml", SMALL)
    first = cli("run", pipeline, "--cache", s3_url, env={"TOY_RUN_LOG": str(log)})
    assert first.code == 0 and runs(log) == ["a", "b", "c"], first.text
    log.unlink()
    store = RemoteCache(s3_url, local_dir=tmp_path / "copy")
    key = next(info.key for info in store.entries() if info.stage == "b")
    upload = json.loads(store.store.read(store._manifest_rel(key)))["upload"]
    store.store.put(f"{store._key_prefix(key)}/{upload}/value.json", b"9.0")  # same size as 2.0

    another_machine = {"TOY_RUN_LOG": str(log), "COMPRESSFLOW_LOCAL_CACHE": str(tmp_path / "machine-b")}
    cached = cli("run", pipeline, "--cache", s3_url, env=another_machine)  # no --verify
    assert cached.code == 0 and "0 to run, 3 cached" in cached.out, cached.text  # reads no entry: nothing rehashed
    assert not log.exists()

    write(pipeline, SMALL.replace("add: 1", "add: 2"))  # c runs again: it reads b, which is rehashed first
    result = cli("run", pipeline, "--cache", s3_url, env=another_machine)

    assert result.code == 0, result.text
    assert "cache entry for stage 'b'" in result.text and "does not match its checksum" in result.text, result.text
    assert runs(log) == ["b", "c"]
