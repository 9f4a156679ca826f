"""Nothing follows a link out of the cache, and nothing an entry names escapes it.

Symbolic links where the cache's own folders and files belong (``entries``, a shard, ``locks``,
a lock file, ``refs``) are reported and removed, never followed; what they point to is never
written, truncated, read as an entry or removed. The paths an entry's ``artifact.json`` names
must be its own files: an entry naming anything else is damaged on every read, local and remote,
and a stage cannot commit one. Readers (``Artifact.file``) and exports refuse such paths too.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from compressflow.errors import CacheError
from compressflow.cache.local import Cache
from compressflow.cache.remote import RemoteCache
from compressflow.stages.base import Artifact
from compressflow.stages.publish import atomic_copy_file, atomic_copy_tree

VALUE = b"2.0"


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the cache holding a file nobody may touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text("not the cache's\n")
    return folder


def write_entry(cache: Cache, key: str, artifact: dict | None = None) -> None:
    with cache.writer(key, stage="number", key_doc={"type": "toy"}) as out:
        (out / "value.json").write_bytes(VALUE)
        (out / "artifact.json").write_text(json.dumps(artifact or {"kind": "number", "file": "value.json"}))


def tree(folder: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(parent, name)
            found[str(path.relative_to(folder))] = "dir" if path.is_dir() else path.read_bytes()
    return found


def relink(cache: Cache, relative: str, outside: Path) -> Path:
    """Move the cache's ``relative`` folder into ``outside`` and leave a symlink to it in its place."""
    place = cache.root / relative
    if place.exists():
        for item in place.iterdir():
            item.rename(outside / item.name)
        place.rmdir()
    place.parent.mkdir(parents=True, exist_ok=True)
    place.symlink_to(outside, target_is_directory=True)
    return place


def reported_link(messages: list[str], relative: str) -> bool:
    return any(f"the cache folder {relative} is a symbolic link" in m and "left alone" in m for m in messages)


# ---------------------------------------------------------------------------------- links in the cache


def test_a_symlinked_lock_file_is_replaced_and_what_it_points_to_is_untouched(
        cache: Cache, outside: Path, messages: list[str]) -> None:
    key = make_key("lock link")
    lock_file = cache.root / "locks" / f"{key}.lock"
    lock_file.parent.mkdir(parents=True)
    lock_file.symlink_to(outside / "precious.txt")

    with cache.lock(key, stage="pruned"):
        pass

    assert (outside / "precious.txt").read_text() == "not the cache's\n"  # not written, not truncated
    assert lock_file.is_file() and not lock_file.is_symlink()
    assert any(f"removing the symbolic link {lock_file}" in m for m in messages), messages


def test_a_symlinked_locks_folder_is_not_written_through(cache: Cache, outside: Path, messages: list[str]) -> None:
    key = make_key("locks link")
    write_entry(cache, key)
    link = relink(cache, "locks", outside)
    before = tree(outside)
    fresh = Cache(cache.root, log=messages.append)

    with fresh.lock(key, stage="pruned"):
        assert fresh.lookup(key, stage="pruned") is not None

    assert tree(outside) == before
    assert not link.is_symlink() and link.is_dir()
    assert reported_link(messages, "locks"), messages


def test_a_symlinked_refs_folder_is_neither_read_nor_written(cache: Cache, outside: Path,
                                                             messages: list[str]) -> None:
    key = make_key("refs link")
    cache.set_ref("digits", "pruned", key, {"type": "prune"})
    link = relink(cache, "refs", outside)
    before = tree(outside)

    assert cache.get_ref("digits", "pruned") is None  # the record behind the link is not the cache's
    cache.set_ref("digits", "pruned", key, {"type": "prune", "again": True})

    assert tree(outside) == before
    assert not link.is_symlink() and cache.get_ref("digits", "pruned")["key_doc"] == {"type": "prune", "again": True}
    assert reported_link(messages, "refs"), messages


def test_a_symlinked_entries_folder_is_no_entry_and_entries_are_written_inside(
        cache: Cache, outside: Path, messages: list[str]) -> None:
    key = make_key("entries link")
    write_entry(cache, key)
    link = relink(cache, "entries", outside)
    before = tree(outside)

    assert cache.status(key) == "damaged"
    assert cache.lookup(key, stage="number") is None
    write_entry(cache, key)

    assert tree(outside) == before
    assert reported_link(messages, "entries"), messages
    assert not link.is_symlink() and cache.lookup(key, stage="number", verify=True) is not None


def test_verify_reports_a_symlinked_shard_and_removes_only_the_link(
        cache: Cache, outside: Path, messages: list[str]) -> None:
    key = make_key("shard link")
    write_entry(cache, key)
    link = relink(cache, f"entries/{key[:2]}", outside)
    before = tree(outside)

    problems = cache.verify_all()
    assert [p.key for p in problems] == [f"entries/{key[:2]}"]
    assert "symbolic link" in problems[0].message and str(outside) in problems[0].message
    assert cache.entries() == []  # nothing behind the link is listed as an entry
    assert link.is_symlink()

    assert len(cache.verify_all(remove=True)) == 1
    assert not link.exists() and tree(outside) == before
    assert reported_link(messages, f"entries/{key[:2]}"), messages
    assert cache.verify_all() == []


def test_gc_removes_a_symlinked_shard_link_but_nothing_behind_it(
        cache: Cache, outside: Path, messages: list[str]) -> None:
    key = make_key("gc link")
    write_entry(cache, key)
    link = relink(cache, f"entries/{key[:2]}", outside)
    stale = outside / f".tmp-{key}-999999-{'0' * 14}"  # a temp name gc would clean inside the cache
    stale.mkdir()
    before = tree(outside)

    assert cache.gc(keep=set()) == (0, 0)

    assert tree(outside) == before
    assert not link.exists()
    assert reported_link(messages, f"entries/{key[:2]}"), messages


# ---------------------------------------------------------------------------------- names in artifact.json


@pytest.mark.parametrize("field, name", [
    ("file", "/etc/hostname"), ("file", "../../../outside/precious.txt"), ("file", "sub/../../x"),
    ("file", "missing.json"), ("file", 5), ("sidecar", "/etc/hostname"), ("table", "/etc/passwd"),
    ("selection_table", "../x"),
])
def test_an_entry_naming_a_path_that_is_not_its_own_is_damaged(cache: Cache, messages: list[str],
                                                               field: str, name) -> None:
    key = make_key(f"names {field} {name}")
    write_entry(cache, key)
    entry = cache.entry_dir(key)
    doc = {"kind": "number", "file": "value.json", field: name}
    rewrite_consistently(entry, "artifact.json", json.dumps(doc).encode())

    assert cache.status(key) == "damaged"
    assert cache.lookup(key, stage="number", verify=True) is None

    assert "artifact.json" in messages[0] and repr(name) in messages[0] and "recomputing" in messages[0]
    assert cache.status(key) == "miss"


def test_a_stage_cannot_commit_an_output_naming_a_file_outside(cache: Cache) -> None:
    key = make_key("commit outside")
    with pytest.raises(CacheError, match=r"stage 'number' declared an output the cache cannot hold: .*/etc/hostname"):
        write_entry(cache, key, {"kind": "number", "file": "/etc/hostname"})
    assert cache.status(key) == "miss"


def test_artifact_file_refuses_names_that_leave_the_artifact(tmp_path: Path, outside: Path) -> None:
    folder = tmp_path / "entry"
    folder.mkdir()
    (folder / "value.json").write_bytes(VALUE)
    (folder / "link.json").symlink_to(outside / "precious.txt")
    artifact = Artifact(stage="a", key=make_key("a"), path=folder, kind="number", meta={"file": "value.json"})

    assert artifact.file().read_bytes() == VALUE
    for name in ("/etc/hostname", "../outside/precious.txt", "link.json"):
        with pytest.raises(CacheError, match="not inside it"):
            artifact.file(name)
    with pytest.raises(CacheError, match="not inside it"):
        Artifact(stage="a", key=make_key("a"), path=folder, kind="number", meta={"file": "/etc/hostname"}).file()


def test_exports_refuse_to_copy_symlinks(tmp_path: Path, outside: Path) -> None:
    link = tmp_path / "model.keras"
    link.symlink_to(outside / "precious.txt")
    with pytest.raises(CacheError, match="symbolic link"):
        atomic_copy_file(link, tmp_path / "out" / "model.keras")
    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "variables" / "data").symlink_to(outside / "precious.txt")
    with pytest.raises(CacheError, match="symbolic link"):
        atomic_copy_tree(folder, tmp_path / "out" / "saved_model")
    assert not (tmp_path / "out" / "model.keras").exists() and not (tmp_path / "out" / "saved_model").exists()


def rewrite_consistently(entry: Path, relative: str, data: bytes) -> None:
    """Replace one file of an entry and its manifest record (as someone with write access could)."""
    entry.chmod(0o755)
    (entry / relative).chmod(0o644)
    (entry / relative).write_bytes(data)
    manifest_path = entry / "manifest.json"
    manifest_path.chmod(0o644)
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][relative] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest_path.write_text(json.dumps(manifest))


# ---------------------------------------------------------------------------------- remote caches


def test_a_remote_entry_naming_a_file_outside_is_damaged_and_never_served(
        tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("remote outside")
    writer = RemoteCache(s3_url, local_dir=tmp_path / "machine-a", log=messages.append)
    with writer.lock(key, stage="number"):
        with writer.writer(key, stage="number", key_doc={"type": "toy"}) as out:
            (out / "value.json").write_bytes(VALUE)
            (out / "artifact.json").write_text(json.dumps({"kind": "number", "file": "value.json"}))
    manifest = json.loads(writer.store.read(writer._manifest_rel(key)))
    forged = json.dumps({"kind": "number", "file": "/etc/hostname"}).encode()
    writer.store.put(f"{writer._key_prefix(key)}/{manifest['upload']}/artifact.json", forged)
    manifest["files"]["artifact.json"] = {"sha256": hashlib.sha256(forged).hexdigest(), "size": len(forged)}
    writer.store.put(writer._manifest_rel(key), json.dumps(manifest).encode())

    reader = RemoteCache(s3_url, local_dir=tmp_path / "machine-b", log=messages.append)
    problems = reader.verify_all()
    assert len(problems) == 1 and "/etc/hostname" in problems[0].message

    assert reader.lookup(key, stage="number", verify=True) is None

    assert any("/etc/hostname" in m and "outside the entry" in m and "recomputing" in m for m in messages), messages
    assert reader.status(key) == "miss"  # removed from the store, to be recomputed
    assert not reader.local.entry_dir(key).exists()
    assert RemoteCache.verify_reads and not Cache.verify_reads  # a shared cache is rehashed by default
