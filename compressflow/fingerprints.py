"""sha256 of files and folders, remembered in a state database so unchanged files are not reread.

Like DVC's state: a file's hash is stored with its absolute path, size, mtime_ns, inode and
ctime_ns, and reused while all of them are unchanged. A folder's hash is built from each file's,
so a folder of images where one file changed rereads that one file only. The database is a small
SQLite file (WAL mode, safe for concurrent processes); the executor points it at its cache with
:func:`use_state`. Without one, or when it is damaged, locked or unwritable, files are hashed
every time: the state only saves work, it never decides a hash.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_SCHEMA = ("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
           "inode INTEGER, ctime_ns INTEGER, sha256 TEXT)")

HASH_STATE_NAME = "hashes.sqlite"  # the state's file name in the cache folder

_lock = threading.Lock()
_state_path: Path | None = None
_connection: sqlite3.Connection | None = None
_connection_pid = 0
_pending: dict[str, tuple[tuple[int, int, int, int], str]] = {}  # path -> (stat, sha256)
_bytes_hashed = 0


def use_state(path: Path | None) -> None:
    """Remember file hashes in the SQLite database at ``path`` from now on (None: remember nothing)."""
    global _state_path, _connection
    with _lock:
        if path is not None:
            path = Path(path).absolute()
        if path == _state_path:
            return
        if _connection is not None and _connection_pid == os.getpid():
            _connection.close()
        _pending.clear()
        _state_path, _connection = path, None


def bytes_hashed() -> int:
    """How many file bytes this process has read to hash them (what the state saves)."""
    return _bytes_hashed


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes; reused from the state while the file's stat is unchanged."""
    absolute = os.path.abspath(path)
    before = os.stat(absolute)
    known = _lookup(absolute, before)
    if known is not None:
        return known
    digest = _read_sha256(absolute, chunk)
    after = os.stat(absolute)
    # NOTE: a file written while it was read is not remembered: its hash may match neither version.
    if _signature(before) == _signature(after):
        _remember(absolute, after, digest)
    return digest


def tree_sha256(path: Path) -> str:
    """Hash of a file, or of every file below a directory (names and bytes)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(item.relative_to(path).as_posix()).encode() + b"\0")
        h.update(file_sha256(item).encode())
    return h.hexdigest()


def _read_sha256(path: str, chunk: int) -> str:
    global _bytes_hashed
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            _bytes_hashed += len(block)
    return h.hexdigest()


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def _lookup(path: str, st: os.stat_result) -> str | None:
    with _lock:
        db = _open()
        if db is None:
            return None
        try:
            row = db.execute("SELECT size, mtime_ns, inode, ctime_ns, sha256 FROM hashes WHERE path = ?",
                             (path,)).fetchone()
        except sqlite3.Error:
            _give_up()
            return None
    if row is None or tuple(row[:4]) != _signature(st) or not isinstance(row[4], str):
        return None
    return row[4]


def save_pending() -> None:
    """Store the hashes taken before the state's folder existed (a plan of a fresh cache creates it)."""
    with _lock:
        db = _open()
        if db is None or not _pending:
            return
        rows = [(path, *signature, digest) for path, (signature, digest) in _pending.items()]
        _pending.clear()
        _store(db, rows)


def release_state() -> None:
    """Close the state's connection; the next hash opens it again.

    NOTE: a plan hashes everything it needs; holding the database open after it would keep a file
    of the cache open for writing for the whole run (a file system could not be made read-only).
    """
    global _connection
    with _lock:
        if _connection is not None and _connection_pid == os.getpid():
            try:
                _connection.close()
            except sqlite3.Error:
                pass
        _connection = None


def _remember(path: str, st: os.stat_result, digest: str) -> None:
    with _lock:
        db = _open()
        if db is None:
            if _state_path is not None:
                _pending[path] = (_signature(st), digest)
            return
        _store(db, [(path, *_signature(st), digest)])


def _store(db: sqlite3.Connection, rows: list[tuple]) -> None:
    try:
        with db:
            db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)", rows)
    except sqlite3.Error:
        _give_up()


def _open() -> sqlite3.Connection | None:
    """The state's connection, opened on first use; None when there is no usable state."""
    global _connection, _connection_pid
    if _connection is not None and _connection_pid != os.getpid():
        _connection = None  # NOTE: a forked child never uses its parent's SQLite connection
    if _connection is not None or _state_path is None:
        return _connection
    if not _state_path.parent.is_dir():
        return None  # no cache yet: planning does not create one
    if _state_path.is_symlink():
        return None  # NOTE: like the cache it lives in, the state never follows a link
    try:
        db = sqlite3.connect(_state_path, timeout=5, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(_SCHEMA)
    except (OSError, sqlite3.Error):
        _give_up()
        return None
    db.isolation_level = ""  # transactions for writes (``with db:``) from here on
    _connection, _connection_pid = db, os.getpid()
    return db


def _give_up() -> None:
    """Hash without the state until :func:`use_state` names one again (it is damaged, locked or read-only)."""
    global _state_path, _connection
    _pending.clear()
    if _connection is not None:
        try:
            _connection.close()
        except sqlite3.Error:
            pass
    _state_path, _connection = None, None


@lru_cache(maxsize=None)
def distribution_version(name: str) -> str | None:
    """Installed version of a distribution, without importing it (None if absent)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None
