"""The cache's contract on one process: round trip, layout, status, refs, gc, key hygiene."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from compressflow.errors import CacheError
from compressflow.cache.local import Cache, CacheEntry
from compressflow.cache.names import host_tag


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def write_entry(cache: Cache, key: str, stage: str = "pruned", files: dict[str, bytes] | None = None,
                key_doc: dict | None = None) -> CacheEntry:
    files = {"model.keras": b"weights" * 100, "metrics.json": b'{"accuracy": 0.98}'} if files is None else files
    with cache.writer(key, stage=stage, key_doc=key_doc or {"type": stage}) as out:
        for relative, data in files.items():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).write_bytes(data)
    return cache.read_entry(key)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------------------------- round trip


def test_round_trip_records_files_key_doc_and_manifest(cache: Cache) -> None:
    key = make_key("round trip")
    written = write_entry(cache, key, key_doc={"type": "prune", "config": {"sparsity": 0.8}})

    entry = cache.lookup(key, stage="pruned", verify=True)

    assert entry is not None
    assert entry == written
    assert entry.path == cache.entry_dir(key) == cache.root / "entries" / key[:2] / key
    assert entry.stage == "pruned"
    assert entry.file("model.keras").read_bytes() == b"weights" * 100
    assert json.loads((entry.path / "key.json").read_text()) == {"type": "prune", "config": {"sparsity": 0.8}}
    assert entry.key_doc == {"type": "prune", "config": {"sparsity": 0.8}}
    manifest = json.loads((entry.path / "manifest.json").read_text())
    assert manifest == entry.manifest
    assert manifest["format"] == 1 and manifest["key"] == key and manifest["stage"] == "pruned"
    assert manifest["created"] == entry.created
    assert set(manifest["files"]) == {"model.keras", "metrics.json", "key.json"}
    assert manifest["files"]["model.keras"] == {
        "sha256": hashlib.sha256(b"weights" * 100).hexdigest(), "size": 700}
    assert entry.size == sum(record["size"] for record in manifest["files"].values())


def test_committed_files_are_read_only_and_still_readable(cache: Cache) -> None:
    entry = write_entry(cache, make_key("read only"))

    for path in [entry.path / "model.keras", entry.path / "manifest.json", entry.path / "key.json"]:
        assert os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0, path
        assert path.read_bytes()


def test_directory_artifacts_round_trip_including_empty_directories(cache: Cache) -> None:
    key = make_key("saved model")
    with cache.writer(key, stage="export", key_doc={}) as out:
        (out / "saved_model" / "variables").mkdir(parents=True)
        (out / "saved_model" / "assets").mkdir()
        (out / "saved_model" / "saved_model.pb").write_bytes(b"graph")
        (out / "saved_model" / "variables" / "variables.index").write_bytes(b"index")

    entry = cache.lookup(key, stage="export", verify=True)

    assert entry is not None
    assert set(entry.files) == {"key.json", "saved_model/saved_model.pb", "saved_model/variables/variables.index"}
    assert entry.manifest["dirs"] == ["saved_model", "saved_model/assets", "saved_model/variables"]
    assert (entry.path / "saved_model" / "assets").is_dir()


def test_writer_directory_is_a_fresh_temp_dir_beside_the_final_place_and_never_a_hit(cache: Cache) -> None:
    key = make_key("temp")
    with cache.writer(key, stage="pruned", key_doc={}) as out:
        (out / "model.keras").write_bytes(b"partial")
        assert out.parent == cache.entry_dir(key).parent
        assert out.name.startswith(f".tmp-{key}-{os.getpid()}-")
        assert list(out.iterdir()) == [out / "model.keras"]
        assert cache.lookup(key, stage="pruned") is None
        assert cache.status(key) == "miss"
        assert cache.entries() == []
    assert cache.status(key) == "hit"
    assert not out.exists()


def test_exception_in_writer_body_removes_the_temp_dir_and_propagates(cache: Cache) -> None:
    key = make_key("interrupted")
    with pytest.raises(KeyboardInterrupt):
        with cache.writer(key, stage="pruned", key_doc={}) as out:
            (out / "model.keras").write_bytes(b"half")
            raise KeyboardInterrupt
    assert not out.exists()
    assert cache.status(key) == "miss"
    assert os.listdir(cache.entry_dir(key).parent) == []


def test_a_valid_entry_already_in_place_is_kept_and_ours_discarded(cache: Cache) -> None:
    key = make_key("race")
    first = write_entry(cache, key, files={"model.keras": b"first"})

    second = write_entry(cache, key, files={"model.keras": b"second"})

    assert second == first
    assert (first.path / "model.keras").read_bytes() == b"first"
    assert os.listdir(first.path.parent) == [key]


def test_a_damaged_entry_in_place_is_replaced_on_commit(cache: Cache, messages: list[str]) -> None:
    key = make_key("replace damaged")
    entry = write_entry(cache, key)
    (entry.path / "manifest.json").unlink()

    replaced = write_entry(cache, key, files={"model.keras": b"fresh"})

    assert (replaced.path / "model.keras").read_bytes() == b"fresh"
    assert cache.lookup(key, stage="pruned", verify=True) is not None
    assert any("manifest.json is missing; replacing it" in m for m in messages)


@pytest.mark.parametrize("name", ["manifest.json", "key.json"])
def test_stage_output_may_not_use_reserved_names(cache: Cache, name: str) -> None:
    key = make_key("reserved " + name)
    with pytest.raises(CacheError, match=f"'{name}'.*reserved"):
        write_entry(cache, key, files={name: b"{}"})
    assert cache.status(key) == "miss"
    assert os.listdir(cache.entry_dir(key).parent) == []


def test_symlinks_in_stage_output_are_refused(cache: Cache, tmp_path: Path) -> None:
    key = make_key("symlink")
    (tmp_path / "secret").write_text("outside")
    with pytest.raises(CacheError, match="symlink"):
        with cache.writer(key, stage="pruned", key_doc={}) as out:
            (out / "link").symlink_to(tmp_path / "secret")
    assert cache.status(key) == "miss"
    assert (tmp_path / "secret").read_text() == "outside"


def test_key_doc_must_be_plain_json_and_is_checked_before_the_stage_runs(cache: Cache) -> None:
    with pytest.raises(ValueError, match="not plain JSON"):
        with cache.writer(make_key("nan"), stage="pruned", key_doc={"lr": float("nan")}):
            pytest.fail("the body must not run")
    assert not cache.root.exists()


# ---------------------------------------------------------------------------------- status and listing


def test_status_reports_hit_miss_damaged_without_side_effects(cache: Cache, messages: list[str]) -> None:
    hit, damaged = make_key("hit"), make_key("damaged")
    write_entry(cache, hit)
    broken = write_entry(cache, damaged)
    (broken.path / "extra.txt").write_text("surprise")

    assert cache.status(hit) == "hit"
    assert cache.status(make_key("absent")) == "miss"
    assert cache.status(damaged) == "damaged"
    assert (broken.path / "extra.txt").exists()
    assert messages == []


def test_entries_lists_stage_size_created_and_damage(cache: Cache) -> None:
    good = write_entry(cache, make_key("good"), stage="trained")
    bad = write_entry(cache, make_key("bad"), stage="int8")
    (bad.path / "manifest.json").chmod(0o644)
    (bad.path / "manifest.json").write_text("{not json")

    infos = {info.key: info for info in cache.entries()}

    assert set(infos) == {good.key, bad.key}
    assert infos[good.key].stage == "trained" and not infos[good.key].damaged
    assert infos[good.key].size == good.size + (good.path / "manifest.json").stat().st_size
    assert infos[good.key].created == good.created
    assert infos[bad.key].damaged and infos[bad.key].stage == "?"
    assert infos[bad.key].created == bad.path.stat().st_mtime
    assert "manifest.json is damaged" in infos[bad.key].problem


# ---------------------------------------------------------------------------------- gc and stale temps


def test_gc_removes_unkept_entries_and_stale_temp_dirs_only(cache: Cache) -> None:
    kept, dropped = write_entry(cache, make_key("kept")), write_entry(cache, make_key("dropped"))
    shard = cache.entry_dir(make_key("x")).parent
    shard.mkdir(parents=True, exist_ok=True)
    stale = shard / f".tmp-{make_key('x')}-{dead_pid()}-{host_tag()}00000000"
    live = shard / f".tmp-{make_key('x')}-{os.getpid()}-{host_tag()}00000001"
    for temp in (stale, live):
        temp.mkdir()
        (temp / "model.keras").write_bytes(b"12345")

    dropped_bytes = dropped.size + (dropped.path / "manifest.json").stat().st_size

    removed, freed = cache.gc(keep={kept.key})

    assert (removed, freed) == (1, dropped_bytes + 5)
    assert cache.status(kept.key) == "hit" and cache.status(dropped.key) == "miss"
    assert not stale.exists() and live.exists()
    key_locks = [path for path in (cache.root / "locks").iterdir() if path.name.endswith(".lock")
                 and path.name != "runs.lock"]
    assert key_locks == []  # the removed entry's lock file went with it


def test_clean_stale_tmp_spares_live_processes_and_other_hosts(cache: Cache) -> None:
    shard = cache.root / "entries" / "ab"
    shard.mkdir(parents=True)
    key = "ab" + "0" * 62
    dead = shard / f".tmp-{key}-{dead_pid()}-{host_tag()}00000000"
    doomed = shard / f".del-{key}-{dead_pid()}-{host_tag()}00000000"
    mine = shard / f".tmp-{key}-{os.getpid()}-{host_tag()}00000000"
    other_host = shard / f".tmp-{key}-{dead_pid()}-{'f' * 6 if host_tag() != 'f' * 6 else 'e' * 6}00000000"
    for path in (dead, doomed, mine, other_host):
        path.mkdir()

    assert cache.clean_stale_tmp() == 2

    assert not dead.exists() and not doomed.exists()
    assert mine.exists() and other_host.exists()


def test_a_new_writer_removes_what_a_dead_writer_of_the_same_key_left(cache: Cache) -> None:
    key = make_key("retry")
    other_key = key[:2] + "1" * 62
    shard = cache.entry_dir(key).parent
    shard.mkdir(parents=True)
    left_behind = shard / f".tmp-{key}-{dead_pid()}-{host_tag()}00000000"
    unrelated = shard / f".tmp-{other_key}-{dead_pid()}-{host_tag()}00000000"
    for path in (left_behind, unrelated):
        path.mkdir()
        (path / "model.keras").write_bytes(b"partial")

    write_entry(cache, key)

    assert not left_behind.exists() and unrelated.exists()
    assert cache.status(key) == "hit"


def test_read_only_entries_can_be_removed(cache: Cache) -> None:
    key = make_key("nested read only")
    entry = write_entry(cache, key, files={"sm/variables/data": b"1" * 10, "sm/pb": b"2"})
    (entry.path / "sm" / "variables").chmod(0o555)
    entry_bytes = entry.size + (entry.path / "manifest.json").stat().st_size

    assert cache.gc(keep=set()) == (1, entry_bytes)
    assert not entry.path.exists()
    assert os.listdir(entry.path.parent) == []


# ---------------------------------------------------------------------------------- keys and refs


@pytest.mark.parametrize("bad_key", [
    "", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61, "0" * 62 + "/x", None, 123,
    "0" * 64 + "\n",
])
def test_invalid_keys_are_rejected_everywhere(cache: Cache, bad_key: object) -> None:
    calls = [
        lambda: cache.entry_dir(bad_key),
        lambda: cache.status(bad_key),
        lambda: cache.lookup(bad_key, stage="s"),
        lambda: cache.read_entry(bad_key),
        lambda: cache.lock(bad_key, stage="s").__enter__(),
        lambda: cache.writer(bad_key, stage="s", key_doc={}).__enter__(),
        lambda: cache.set_ref("scope", "stage", bad_key, {}),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid cache key"):
            call()
    assert not cache.root.exists()


def test_refs_round_trip_and_are_remembered_per_scope_and_stage(cache: Cache) -> None:
    assert cache.get_ref("digits", "pruned") is None
    cache.set_ref("digits", "pruned", make_key("1"), {"sparsity": 0.8})
    cache.set_ref("digits", "pruned", make_key("2"), {"sparsity": 0.9})
    cache.set_ref("other", "pruned", make_key("3"), {})

    record = cache.get_ref("digits", "pruned")

    assert record["key"] == make_key("2") and record["key_doc"] == {"sparsity": 0.9}
    assert cache.get_ref("other", "pruned")["key"] == make_key("3")
    assert cache.get_ref("digits", "int8") is None


@pytest.mark.parametrize("scope, stage", [
    ("../x", "a/b"), ("..", "."), ("/etc", "passwd"), ("a/../../b", "../../../y"), ("x", "..\\..\\z"),
    (".hidden", "~user"), ("naïve", "ステージ"), ("long" * 200, "s"), ("nul\0byte", "tab\tname"),
])
def test_ref_names_stay_inside_refs(cache: Cache, scope: str, stage: str) -> None:
    refs = (cache.root / "refs").resolve()
    cache.set_ref(scope, stage, make_key(scope + stage), {"n": 1})

    written = [path.resolve() for path in cache.root.rglob("*") if path.is_file()]

    assert len(written) == 2  # the last key, and the one of the pipeline as written (its variant)
    assert all(path.is_relative_to(refs) for path in written)
    assert len([path for path in written if path.parent.parent == refs]) == 1
    assert all(len(part) < 200 for path in written for part in path.relative_to(refs).parts)
    assert cache.get_ref(scope, stage)["key"] == make_key(scope + stage)


def test_distinct_names_never_share_a_ref(cache: Cache) -> None:
    names = ["a/b", "a%2Fb", "a_b", ".x", "%2Ex", "..", "%2E.", "A", "a"]
    for index, name in enumerate(names):
        cache.set_ref("scope", name, make_key(str(index)), {})
    for index, name in enumerate(names):
        assert cache.get_ref("scope", name)["key"] == make_key(str(index))


def test_a_damaged_ref_is_ignored_and_reported(cache: Cache, messages: list[str]) -> None:
    cache.set_ref("digits", "pruned", make_key("1"), {})
    ref_file = next((cache.root / "refs").rglob("*.json"))
    ref_file.write_text("{truncated")

    assert cache.get_ref("digits", "pruned") is None
    assert any("stage 'pruned'" in m for m in messages)
