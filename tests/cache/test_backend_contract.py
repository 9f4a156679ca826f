"""Both cache backends implement the one contract (:class:`CacheBackend`), and behave alike where they
used to disagree: how damage is summarised and who it names, what ``cache ls`` counts, how a waiter
is told whom it waits for."""

from __future__ import annotations

import hashlib
import inspect
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from compressflow.cache.backend import CacheBackend
from compressflow.cache.local import Cache
from compressflow.cache.remote import RemoteCache

_PATIENCE = 120.0  # seconds before a wait for the other thread gives up (a hang, not a timing check)


def protocol_members() -> dict[str, object]:
    members = {name: value for name, value in vars(CacheBackend).items()
               if not name.startswith("_") and (callable(value) or isinstance(value, property))}
    members.update({name: None for name in CacheBackend.__annotations__})
    return members


def test_the_protocol_lists_what_callers_use() -> None:
    assert set(protocol_members()) == {
        "root", "verify_reads", "local_root", "spec", "close", "status", "lookup", "entry_dir",
        "entry_metadata", "lock", "writer", "set_ref", "get_ref", "remembered_refs", "entries",
        "verify_all", "exclusive", "gc", "clean_stale_tmp"}


@pytest.mark.parametrize("backend", [Cache, RemoteCache], ids=["local", "remote"])
def test_each_backend_implements_every_member_with_the_protocols_signature(backend: type) -> None:
    for name, member in protocol_members().items():
        if member is None:
            continue  # a plain attribute: checked on instances below
        implemented = getattr(backend, name, None)
        assert implemented is not None, f"{backend.__name__} lacks {name}"
        if isinstance(member, property):
            assert isinstance(implemented, property), f"{backend.__name__}.{name} is not a property"
            continue
        wanted = inspect.signature(member).parameters
        # NOTE: parameters only: a @contextmanager returns an Iterator where the protocol says context manager
        assert inspect.signature(implemented).parameters == wanted, f"{backend.__name__}.{name}"


def test_instances_have_the_protocols_attributes(tmp_path: Path) -> None:
    remote = RemoteCache("memory://contract/cache", local_dir=tmp_path / "copy")
    local = Cache(tmp_path / "cache")
    for cache in (local, remote):
        assert isinstance(cache.verify_reads, bool) and cache.root
        assert isinstance(cache.local_root, Path)
    assert remote.local_root == tmp_path / "copy" and local.local_root == tmp_path / "cache"
    assert (local.verify_reads, remote.verify_reads) == (False, True)


# ------------------------------------------------------------------ behaving alike


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture(params=["local", "s3"])
def pair(request, tmp_path: Path):
    """(cache, another process's view of the same cache, messages both log)."""
    messages: list[str] = []
    if request.param == "local":
        return Cache(tmp_path / "c", log=messages.append), Cache(tmp_path / "c", log=messages.append), messages
    url = request.getfixturevalue("s3_url")
    return (RemoteCache(url, local_dir=tmp_path / "a", log=messages.append),
            RemoteCache(url, local_dir=tmp_path / "b", log=messages.append), messages)


def write_entry(cache, key: str) -> None:
    with cache.lock(key, stage="pruned"):
        with cache.writer(key, stage="pruned", key_doc={"type": "prune"}) as out:
            (out / "model.keras").write_bytes(b"m" * 1000)


def put_into_entry(cache, key: str, relative: str, data: bytes) -> None:
    """Write a file into the stored entry, as damage would."""
    if isinstance(cache, RemoteCache):
        manifest = cache.store.read(cache._manifest_rel(key))
        upload = re.search(rb'"upload": "([0-9a-f]+)"', manifest).group(1).decode()
        cache.store.put(f"{cache._key_prefix(key)}/{upload}/{relative}", data)
    else:
        path = cache.entry_dir(key) / relative
        if path.exists():
            path.chmod(0o644)
        path.write_bytes(data)


def stored_manifest(cache, key: str) -> tuple[str, bytes]:
    if isinstance(cache, RemoteCache):
        return cache._manifest_rel(key), cache.store.read(cache._manifest_rel(key))
    path = cache.entry_dir(key) / "manifest.json"
    return str(path), path.read_bytes()


def break_manifest(cache, key: str) -> None:
    if isinstance(cache, RemoteCache):
        cache.store.put(cache._manifest_rel(key), b"{not json")
    else:
        path = cache.entry_dir(key) / "manifest.json"
        path.chmod(0o644)
        path.write_bytes(b"{not json")


def test_several_problems_are_summarised_in_the_same_words(pair) -> None:
    cache, other, messages = pair
    key = make_key("many")
    write_entry(cache, key)
    for index in range(5):
        put_into_entry(cache, key, f"extra{index}", b"x")

    assert other.lookup(key, stage="pruned") is None
    assert messages == [f"cache entry for stage 'pruned' (key {key[:12]}\u2026) is damaged: unexpected file extra0; "
                        "unexpected file extra1; unexpected file extra2; and 2 more problems; "
                        "removing it and recomputing"]
    assert other.status(key) == "miss"


def test_an_unreadable_manifest_names_an_unknown_stage(pair) -> None:
    cache, other, messages = pair
    key = make_key("no manifest")
    write_entry(cache, key)
    break_manifest(cache, key)

    problems = other.verify_all(remove=True)

    assert [(p.key, p.stage) for p in problems] == [(key, "?")]
    assert len(messages) == 1 and messages[0].startswith(f"cache entry for an unknown stage (key {key[:12]}")
    assert other.status(key) == "miss"


def test_listed_size_is_every_stored_byte_manifest_included(pair) -> None:
    cache, other, _messages = pair
    key = make_key("sized")
    write_entry(cache, key)
    _where, manifest = stored_manifest(cache, key)
    files = sum(record["size"] for record in cache.lookup(key, stage="pruned").files.values())

    [info] = other.entries()

    assert (info.key, info.stage, info.damaged) == (key, "pruned", False)
    assert info.size == files + len(manifest)


def test_a_waiter_is_told_whom_it_waits_for_in_the_same_words(pair) -> None:
    cache, other, _messages = pair
    key = make_key("busy")
    told: list[str] = []
    got_it = threading.Event()

    def wait_for_it() -> None:
        with other.lock(key, stage="second", on_wait=told.append):
            got_it.set()

    with cache.lock(key, stage="first"):
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        deadline = time.monotonic() + _PATIENCE
        while not told and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not got_it.is_set()
    waiter.join(_PATIENCE)

    assert got_it.is_set() and len(told) == 1
    pattern = (rf"stage 'second' \(key {key[:12]}\u2026\) is locked by process \d+ on host "
               rf"{re.escape(socket.gethostname())} \(stage 'first', since [0-9-]+ [0-9:]+\); waiting for it to finish")
    assert re.fullmatch(pattern, told[0]), told[0]
