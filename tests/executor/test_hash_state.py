"""File hashes are remembered by (path, size, mtime, inode, ctime) and reused while those stay the same."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from compressflow import fingerprints
from compressflow.fingerprints import HASH_STATE_NAME, bytes_hashed, tree_sha256, use_state
from helpers import cli, write

MB = 1 << 20


@pytest.fixture
def state(tmp_path: Path):
    path = tmp_path / "cache" / HASH_STATE_NAME
    path.parent.mkdir()
    use_state(path)
    yield path
    use_state(None)


def big_file(path: Path, size: int, byte: bytes = b"a") -> Path:
    with open(path, "wb") as fh:
        for _ in range(size // MB):
            fh.write(byte * MB)
    return path


def hashed_while(action) -> tuple[object, int]:
    before = bytes_hashed()
    result = action()
    return result, bytes_hashed() - before


def test_an_unchanged_file_is_hashed_once(state, tmp_path):
    model = big_file(tmp_path / "model.bin", 200 * MB)
    first, read = hashed_while(lambda: tree_sha256(model))
    assert read == 200 * MB
    second, read = hashed_while(lambda: tree_sha256(model))
    assert read == 0, "an unchanged file was read again"
    assert second == first


def test_same_size_new_content_and_mtime_is_rehashed(state, tmp_path):
    model = big_file(tmp_path / "model.bin", 4 * MB)
    first = tree_sha256(model)
    stat = model.stat()
    big_file(model, 4 * MB, b"b")
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second, read = hashed_while(lambda: tree_sha256(model))
    assert read == 4 * MB
    assert second != first


def test_a_folder_rereads_only_its_changed_file(state, tmp_path):
    folder = tmp_path / "images"
    for name in ("cat", "dog"):
        (folder / name).mkdir(parents=True)
        big_file(folder / name / "1.png", MB, name[0].encode())
    first = tree_sha256(folder)
    (folder / "dog" / "1.png").write_bytes(b"d" * 100)
    second, read = hashed_while(lambda: tree_sha256(folder))
    assert read == 100
    assert second != first


def test_a_corrupt_state_falls_back_to_hashing(state, tmp_path):
    state.write_bytes(b"this is not a SQLite database" * 100)
    model = big_file(tmp_path / "model.bin", MB)
    expected = tree_sha256(model)
    use_state(None)
    assert tree_sha256(model) == expected
    _, read = hashed_while(lambda: tree_sha256(model))
    assert read == MB


def test_an_unwritable_state_falls_back_to_hashing(tmp_path):
    folder = tmp_path / "cache"
    (folder / HASH_STATE_NAME).mkdir(parents=True)  # NOTE: what cannot be opened even by root
    model = big_file(tmp_path / "model.bin", MB)
    use_state(folder / HASH_STATE_NAME)
    try:
        first, read = hashed_while(lambda: tree_sha256(model))
        assert read == MB
        second, read = hashed_while(lambda: tree_sha256(model))
        assert read == MB and second == first
    finally:
        use_state(None)


def test_the_state_is_shared_by_processes(state, tmp_path):
    model = big_file(tmp_path / "model.bin", 2 * MB)
    digest = tree_sha256(model)
    code = ("import sys; from pathlib import Path; from compressflow import fingerprints as f; "
            "f.use_state(Path(sys.argv[1])); d = f.tree_sha256(Path(sys.argv[2])); print(d, f.bytes_hashed())")
    out = subprocess.run([sys.executable, "-c", code, str(state), str(model)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [digest, "0"]
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_hash_lookup_is_keyed_by_the_absolute_path(state, tmp_path, monkeypatch):
    model = big_file(tmp_path / "model.bin", MB)
    tree_sha256(model)
    monkeypatch.chdir(tmp_path)
    _, read = hashed_while(lambda: fingerprints.file_sha256(Path("model.bin")))
    assert read == 0


PIPELINE = """
version: 1
name: hashed
stages:
  size:
    type: toy_file
    path: model.bin
"""

# Runs `compressflow ARGS` and prints how many bytes the process read (rchar, every read call).
_READS = ("import atexit, runpy, sys\n"
          "def show():\n"
          "    rchar = [line for line in open('/proc/self/io') if line.startswith('rchar')][0]\n"
          "    sys.stderr.write('READ ' + rchar.split()[1] + '\\n')\n"
          "atexit.register(show)\n"
          "sys.argv = ['compressflow', *sys.argv[1:]]\n"
          "runpy.run_module('compressflow', run_name='__main__')\n")


def bytes_read_by(*args: str, cwd: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", _READS, *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(proc.stderr.rsplit("READ ", 1)[1])


def test_a_second_plan_does_not_reread_an_unchanged_200_mb_file(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESSFLOW_CACHE", raising=False)
    pipeline = write(tmp_path / "hashed.yaml", PIPELINE)
    big_file(tmp_path / "model.bin", 200 * MB)
    assert bytes_read_by("plan", str(pipeline), cwd=tmp_path) > 200 * MB
    assert (tmp_path / ".compressflow" / "cache" / HASH_STATE_NAME).is_file()
    assert bytes_read_by("plan", str(pipeline), cwd=tmp_path) < 50 * MB
    assert cli("run", pipeline).code == 0
    assert bytes_read_by("plan", str(pipeline), cwd=tmp_path) < 50 * MB
    big_file(tmp_path / "model.bin", 200 * MB, b"z")
    assert bytes_read_by("plan", str(pipeline), cwd=tmp_path) > 200 * MB
