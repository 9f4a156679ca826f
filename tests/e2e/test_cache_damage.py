"""Damaged cache entries through the real CLI: detected, reported with the stage, removed, recomputed.

Five kinds of damage to the entry of stage ``b`` of ``a -> b -> c``: a truncated file, a
missing file, an extra file, a damaged manifest, and a file altered without changing its
size. A plain run checks every entry it trusts against its manifest (file set and sizes),
so it catches the first four; the same-size alteration needs a rehash, which
``run --verify`` does for every entry it reads (and which inputs of a running stage
always get).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import compressflow.api
from compressflow.runs.console import LineReporter

from helpers import cli, runs, write

PIPELINE = """
version: 1
name: damage
stages:
  a: {type: toy_number, value: 1, blob_kib: 32}
  b: {type: toy_scale, model: a, factor: 2, blob_kib: 32}
  c: {type: toy_sum, inputs: [b], blob_kib: 32}
"""


def truncate(entry: Path) -> None:
    with open(entry / "blob.bin", "r+b") as fh:
        fh.truncate(100)


def remove(entry: Path) -> None:
    (entry / "blob.bin").unlink()


def add_extra(entry: Path) -> None:
    (entry / "extra.bin").write_bytes(b"not in the manifest")


def break_manifest(entry: Path) -> None:
    manifest = entry / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:-20])


def alter_same_size(entry: Path) -> None:
    with open(entry / "blob.bin", "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 0xFF]))


DAMAGE = {"truncated": truncate, "missing_file": remove, "extra_file": add_extra,
          "damaged_manifest": break_manifest}


@pytest.fixture
def cached(tmp_path: Path, monkeypatch):
    """The pipeline, run once in this process (set-up); returns (pipeline, run log, entry folders)."""
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    pipeline = write(tmp_path / "p" / "pipeline.yaml", PIPELINE)
    assert compressflow.api.run(pipeline, reporter=LineReporter(io.StringIO())).ok
    log.unlink()
    plan = compressflow.api.plan(pipeline)
    cache = pipeline.parent / ".compressflow" / "cache" / "entries"
    entries = {name: cache / s.key.key[:2] / s.key.key for name, s in plan.stages.items()}
    for entry in entries.values():  # entries are read-only; damage does not ask
        entry.chmod(0o755)
        for path in entry.iterdir():
            path.chmod(0o644)
    return pipeline, log, entries


def assert_reported(text: str, stage: str) -> None:
    assert f"cache entry for stage '{stage}'" in text and "is damaged" in text and "recomputing" in text, text


def assert_verifies(pipeline: Path, entries: int = 3) -> None:
    verify = cli("cache", "verify", pipeline)
    assert verify.code == 0 and f"verified {entries} entries" in verify.out and " 0 damaged" in verify.out, \
        verify.text


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damage_is_reported_with_the_stage_removed_and_recomputed(cached, kind: str):
    pipeline, log, entries = cached
    DAMAGE[kind](entries["b"])
    listed = cli("cache", "verify", pipeline)
    assert listed.code == 1 and "1 damaged" in listed.out, listed.text

    result = cli("run", pipeline)

    assert result.code == 0, result.text
    assert_reported(result.text, "b")
    assert runs(log) == ["b"]  # c keeps its key: b's key did not change
    assert_verifies(pipeline)


def test_same_size_alteration_is_caught_only_by_a_rehash(cached):
    pipeline, log, entries = cached
    alter_same_size(entries["b"])

    plain = cli("run", pipeline)
    assert plain.code == 0, plain.text
    assert "damaged" not in plain.text and runs(log) == []  # sizes match: the cheap check trusts it

    verified = cli("run", pipeline, "--verify")
    assert verified.code == 0, verified.text
    assert_reported(verified.text, "b")
    assert runs(log) == ["b"]
    assert_verifies(pipeline)


def test_run_verify_rehashes_every_entry_it_reads(cached):
    pipeline, log, entries = cached
    clean = cli("run", pipeline, "--verify")
    assert clean.code == 0 and "damaged" not in clean.text and runs(log) == [], clean.text
    for name in ("a", "c"):
        alter_same_size(entries[name])

    result = cli("run", pipeline, "--verify")

    assert result.code == 0, result.text
    assert_reported(result.text, "a")
    assert_reported(result.text, "c")
    assert runs(log) == ["a", "c"]
    assert json.loads((entries["c"] / "value.json").read_text()) == 2.0
    assert_verifies(pipeline)
