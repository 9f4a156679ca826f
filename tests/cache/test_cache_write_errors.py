"""A cache that cannot be written (disk full, permission denied, read-only) fails clearly and cleanly."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from compressflow.errors import CacheError
from compressflow.cache.local import Cache
from compressflow.cache.local_fs import LocalFS


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache", log=lambda message: None)


def write_entry(cache: Cache, key: str, payload: bytes = b"model" * 1000) -> None:
    with cache.writer(key, stage="pruned", key_doc={"type": "prune"}) as out:
        (out / "model.keras").write_bytes(payload)
        (out / "saved_model").mkdir()
        (out / "saved_model" / "saved_model.pb").write_bytes(b"graph")


def leftovers(cache: Cache) -> list[str]:
    """Names in the entries tree that are neither shard directories nor committed entries."""
    names = []
    for shard in (cache.root / "entries").iterdir():
        names += [name for name in os.listdir(shard) if name.startswith(".")]
    return names


# (LocalFS method to break, errno, calls that succeed first) — one per step of writing an entry.
INJECTIONS = [
    ("make_new_dir", errno.EROFS, 0),            # creating the temporary directory
    ("write_new_file", errno.ENOSPC, 0),         # key.json
    ("make_read_only", errno.EPERM, 1),          # second file
    ("hash_file", errno.ENOSPC, 2),              # flushing the third file
    ("sync_dir", errno.EIO, 1),                  # flushing a directory
    ("atomic_write_bytes", errno.ENOSPC, 0),     # the manifest
    ("rename_dir", errno.EACCES, 0),             # moving the entry into place
]


@pytest.mark.parametrize("method, error_number, successes", INJECTIONS,
                         ids=[f"{m}-{errno.errorcode[e]}" for m, e, _ in INJECTIONS])
def test_failure_at_each_step_gives_cache_error_and_leaves_no_partial_entry(
        cache: Cache, monkeypatch: pytest.MonkeyPatch, method: str, error_number: int, successes: int) -> None:
    earlier = make_key("earlier")
    write_entry(cache, earlier)
    key = make_key("failing")
    original = getattr(LocalFS, method)
    calls = []

    def broken(self, *args, **kwargs):
        calls.append(args)
        if len(calls) > successes:
            raise OSError(error_number, os.strerror(error_number), str(args[0]) if args else None)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LocalFS, method, broken)
    with pytest.raises(CacheError) as raised:
        write_entry(cache, key)
    monkeypatch.undo()

    assert str(raised.value) == f"cannot write the cache at {cache.root}: {os.strerror(error_number)}"
    assert len(calls) == successes + 1
    assert cache.status(key) == "miss"
    assert leftovers(cache) == []
    assert cache.verify_all() == []
    assert cache.lookup(earlier, stage="pruned", verify=True) is not None
    write_entry(cache, key)
    assert cache.lookup(key, stage="pruned", verify=True) is not None


@pytest.mark.parametrize("error_number", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_disk_full_while_the_stage_writes_its_output_is_a_cache_error(cache: Cache, error_number: int) -> None:
    key = make_key("stage writes")
    with pytest.raises(CacheError, match=os.strerror(error_number)):
        with cache.writer(key, stage="pruned", key_doc={}) as out:
            (out / "model.keras").write_bytes(b"half")
            raise OSError(error_number, os.strerror(error_number))
    assert cache.status(key) == "miss"
    assert leftovers(cache) == []


def test_permission_denied_inside_the_cache_is_a_cache_error(cache: Cache) -> None:
    key = make_key("permission")
    with pytest.raises(CacheError, match="Permission denied"):
        with cache.writer(key, stage="pruned", key_doc={}) as out:
            raise PermissionError(errno.EACCES, "Permission denied", str(out / "model.keras"))
    assert leftovers(cache) == []


def test_unrelated_os_errors_of_the_stage_propagate_unchanged(cache: Cache, tmp_path: Path) -> None:
    key = make_key("stage bug")
    with pytest.raises(FileNotFoundError):
        with cache.writer(key, stage="pruned", key_doc={}):
            (tmp_path / "no such dataset.csv").read_bytes()
    with pytest.raises(PermissionError):
        with cache.writer(key, stage="pruned", key_doc={}):
            raise PermissionError(errno.EACCES, "Permission denied", "/etc/shadow")
    assert cache.status(key) == "miss"
    assert leftovers(cache) == []


def test_refs_that_cannot_be_written_are_a_cache_error(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(self, path, data, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LocalFS, "atomic_write_bytes", disk_full)
    with pytest.raises(CacheError, match="No space left on device"):
        cache.set_ref("digits", "pruned", make_key("k"), {})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_a_read_only_cache_directory_gives_a_clear_error(cache: Cache) -> None:
    earlier = make_key("earlier")
    write_entry(cache, earlier)
    key = make_key("denied")
    shard = cache.entry_dir(key).parent
    shard.mkdir(parents=True, exist_ok=True)
    shard.chmod(0o555)
    try:
        with pytest.raises(CacheError, match="Permission denied"):
            write_entry(cache, key)
    finally:
        shard.chmod(0o755)
    assert cache.status(key) == "miss"
    assert cache.lookup(earlier, stage="pruned", verify=True) is not None


def test_atomic_write_failure_keeps_the_previous_file_and_leaves_no_temp(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fs = LocalFS()
    target = tmp_path / "record.json"
    fs.atomic_write_bytes(target, b"old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        fs.atomic_write_bytes(target, b"new")
    monkeypatch.undo()

    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["record.json"]
