"""Every kind of damage to a committed entry is detected, reported with the stage name, removed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import pytest

from compressflow.cache.local import Cache, CacheEntry


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


MODEL = bytes(range(256)) * 40          # 10240 bytes
VARIABLES = b"\x01\x02" * 3000


def write_entry(cache: Cache, key: str) -> CacheEntry:
    with cache.writer(key, stage="pruned", key_doc={"type": "prune"}) as out:
        (out / "model.keras").write_bytes(MODEL)
        (out / "saved_model" / "variables").mkdir(parents=True)
        (out / "saved_model" / "variables" / "variables.data").write_bytes(VARIABLES)
    return cache.read_entry(key)


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def truncate(entry: CacheEntry) -> None:
    with open(writable(entry.path / "model.keras"), "r+b") as handle:
        handle.truncate(1234)


def append(entry: CacheEntry) -> None:
    with open(writable(entry.path / "model.keras"), "ab") as handle:
        handle.write(b"tail")


def flip_byte(entry: CacheEntry) -> None:
    with open(writable(entry.path / "model.keras"), "r+b") as handle:
        handle.seek(5000)
        byte = handle.read(1)
        handle.seek(5000)
        handle.write(bytes([byte[0] ^ 0xFF]))


def replace_nested_same_size(entry: CacheEntry) -> None:
    path = writable(entry.path / "saved_model" / "variables" / "variables.data")
    path.write_bytes(b"\x00" * len(VARIABLES))


def alter_key_doc_same_size(entry: CacheEntry) -> None:
    path = writable(entry.path / "key.json")
    text = path.read_text()
    path.write_text(text.replace("prune", "PRUNE"))


def delete_file(entry: CacheEntry) -> None:
    (entry.path / "model.keras").unlink()


def delete_nested_file(entry: CacheEntry) -> None:
    (entry.path / "saved_model" / "variables" / "variables.data").unlink()


def delete_key_doc(entry: CacheEntry) -> None:
    (entry.path / "key.json").unlink()


def add_file(entry: CacheEntry) -> None:
    (entry.path / "saved_model" / "notes.txt").write_text("not from the stage")


def add_directory(entry: CacheEntry) -> None:
    (entry.path / "stray").mkdir()


def add_symlink(entry: CacheEntry) -> None:
    (entry.path / "link").symlink_to("/etc/hostname")


def delete_manifest(entry: CacheEntry) -> None:
    (entry.path / "manifest.json").unlink()


def garble_manifest(entry: CacheEntry) -> None:
    writable(entry.path / "manifest.json").write_bytes(b'{"format": 1, "key": "\xff')


def truncate_manifest(entry: CacheEntry) -> None:
    path = writable(entry.path / "manifest.json")
    path.write_bytes(path.read_bytes()[:40])


def manifest_of_another_key(entry: CacheEntry) -> None:
    path = writable(entry.path / "manifest.json")
    path.write_text(json.dumps({**entry.manifest, "key": make_key("other")}))


def manifest_escaping_the_entry(entry: CacheEntry) -> None:
    path = writable(entry.path / "manifest.json")
    files = {**entry.manifest["files"], "../../outside": {"sha256": "0" * 64, "size": 1}}
    path.write_text(json.dumps({**entry.manifest, "files": files}))


def manifest_with_an_unknown_format(entry: CacheEntry) -> None:
    path = writable(entry.path / "manifest.json")
    path.write_text(json.dumps({**entry.manifest, "format": 99}))


def entry_replaced_by_a_file(entry: CacheEntry) -> None:
    for path in sorted(entry.path.rglob("*"), reverse=True):
        path.unlink() if not path.is_dir() else path.rmdir()
    entry.path.rmdir()
    entry.path.write_text("not a directory")


Damage = Callable[[CacheEntry], None]

# (damage, words the report must contain, detected without re-hashing)
DAMAGES: list[tuple[Damage, str, bool]] = [
    (truncate, "file model.keras is truncated (1234 of 10240 bytes)", True),
    (append, "file model.keras is larger than recorded (10244 instead of 10240 bytes)", True),
    (flip_byte, "file model.keras does not match its checksum", False),
    (replace_nested_same_size, "file saved_model/variables/variables.data does not match its checksum", False),
    (alter_key_doc_same_size, "file key.json does not match its checksum", False),
    (delete_file, "file model.keras is missing", True),
    (delete_nested_file, "file saved_model/variables/variables.data is missing", True),
    (delete_key_doc, "file key.json is missing", True),
    (add_file, "unexpected file saved_model/notes.txt", True),
    (add_directory, "unexpected directory stray", True),
    (add_symlink, "unexpected symlink or special file link", True),
    (delete_manifest, "manifest.json is missing", True),
    (garble_manifest, "manifest.json is damaged (not valid JSON", True),
    (truncate_manifest, "manifest.json is damaged (not valid JSON", True),
    (manifest_of_another_key, "manifest.json belongs to another key", True),
    (manifest_escaping_the_entry, "manifest.json is damaged (bad record for '../../outside')", True),
    (manifest_with_an_unknown_format, "manifest.json has an unknown format 99", True),
    (entry_replaced_by_a_file, "the entry is not a directory", True),
]
IDS = [damage.__name__ for damage, _, _ in DAMAGES]


@pytest.mark.parametrize("damage, report, cheap", DAMAGES, ids=IDS)
def test_lookup_with_verify_detects_reports_and_removes(cache: Cache, messages: list[str], damage: Damage,
                                                        report: str, cheap: bool) -> None:
    key = make_key("entry")
    bystander = write_entry(cache, make_key("bystander"))
    damage(write_entry(cache, key))

    assert cache.lookup(key, stage="pruned", verify=True) is None

    assert len(messages) == 1
    assert messages[0].startswith(f"cache entry for stage 'pruned' (key {key[:12]}\u2026) is damaged: ")
    assert report in messages[0]
    assert messages[0].endswith("; removing it and recomputing")
    assert not os.path.lexists(cache.entry_dir(key))
    assert os.listdir(cache.entry_dir(key).parent) == []
    assert cache.lookup(bystander.key, stage="pruned", verify=True) == bystander
    assert write_entry(cache, key).key == key  # recomputing works
    assert cache.verify_all() == []


@pytest.mark.parametrize("damage, report, cheap", DAMAGES, ids=IDS)
def test_lookup_without_verify_checks_structure_only(cache: Cache, messages: list[str], damage: Damage,
                                                     report: str, cheap: bool) -> None:
    key = make_key("entry")
    damage(write_entry(cache, key))

    found = cache.lookup(key, stage="pruned")

    if cheap:
        assert found is None and report in messages[0]
        assert cache.status(key) == "miss"
    else:
        # Same size, different bytes: only a re-hash can tell.
        assert found is not None and messages == []
        assert cache.status(key) == "hit"


@pytest.mark.parametrize("damage, report, cheap", DAMAGES, ids=IDS)
def test_verify_all_finds_each_damage_and_removes_only_on_request(cache: Cache, messages: list[str],
                                                                  damage: Damage, report: str,
                                                                  cheap: bool) -> None:
    key, good = make_key("entry"), make_key("good")
    write_entry(cache, good)
    damage(write_entry(cache, key))
    stage = "?" if "manifest" in report or "not a directory" in report else "pruned"

    problems = cache.verify_all()

    assert [(p.key, p.stage) for p in problems] == [(key, stage)]
    assert report in problems[0].message
    assert os.path.lexists(cache.entry_dir(key)) and messages == []

    assert [p.key for p in cache.verify_all(remove=True)] == [key]
    assert not os.path.lexists(cache.entry_dir(key))
    assert report in messages[0] and messages[0].endswith("; removing it")
    assert cache.verify_all() == []
    assert cache.status(good) == "hit"


def test_an_entry_stored_under_the_wrong_prefix_is_reported(cache: Cache) -> None:
    key = make_key("misplaced")
    entry = write_entry(cache, key)
    wrong_shard = cache.root / "entries" / ("00" if key[:2] != "00" else "11")
    wrong_shard.mkdir()
    entry.path.rename(wrong_shard / key)

    problems = cache.verify_all(remove=True)

    assert len(problems) == 1 and "stored under" in problems[0].message
    assert not (wrong_shard / key).exists()


def test_several_problems_are_summarised(cache: Cache, messages: list[str]) -> None:
    key = make_key("many")
    entry = write_entry(cache, key)
    for index in range(5):
        (entry.path / f"extra{index}").write_text("x")

    assert cache.lookup(key, stage="pruned") is None
    assert "unexpected file extra0; unexpected file extra1; unexpected file extra2; and 2 more problems" \
        in messages[0]
