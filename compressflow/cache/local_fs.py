"""The file-system operations the cache is built from, for a local disk.

:class:`~compressflow.cache.local.Cache` touches storage only through a
:class:`LocalFS`. A remote backend (fsspec, S3) would provide the same small set of
operations with its own meaning of "atomic": there, publishing an entry is uploading its
files and then its manifest, and ``rename_dir`` becomes a conditional put of the manifest.

Nothing here follows a symbolic link: trees are scanned without following links, files are
opened with ``O_NOFOLLOW``, and removing a link removes the link only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from compressflow.cache.names import temp_file_name

_CHUNK = 1 << 20
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class FileDigest:
    """Checksum and size of one file."""

    sha256: str
    size: int


@dataclass
class TreeScan:
    """What a directory holds, without following symlinks (relative POSIX paths)."""

    files: dict[str, int] = field(default_factory=dict)   # path -> size in bytes
    dirs: set[str] = field(default_factory=set)
    others: list[str] = field(default_factory=list)        # symlinks, sockets, fifos, devices

    @property
    def total_size(self) -> int:
        return sum(self.files.values())


class LocalFS:
    """Durable, atomic operations on the local file system."""

    def make_dirs(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def make_new_dir(self, path: Path) -> None:
        """Create ``path``; fail if it exists."""
        path.mkdir()

    def list_names(self, path: Path) -> list[str]:
        """Names in directory ``path``; empty if it does not exist."""
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_dir(self, path: Path) -> bool:
        return path.is_dir() and not path.is_symlink()

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)

    def is_link(self, path: Path) -> bool:
        return os.path.islink(path)

    def read_bytes(self, path: Path) -> bytes:
        """The bytes of the regular file ``path``; a symlink there raises OSError (ELOOP)."""
        with open(os.open(path, _READ_FLAGS), "rb") as handle:
            return handle.read()

    def write_new_file(self, path: Path, data: bytes) -> None:
        """Create ``path`` (it must not exist) holding ``data``; not flushed."""
        with open(path, "xb") as handle:
            handle.write(data)

    def atomic_write_bytes(self, path: Path, data: bytes, *, read_only: bool = False) -> None:
        """Replace ``path`` by ``data`` so that readers see the old or the new bytes, never a mix.

        Temporary file beside it, flushed, ``os.replace``d, parent directory flushed.
        """
        temp = path.with_name(temp_file_name(path.name))
        try:
            with open(temp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if read_only:
                self.make_read_only(temp)
            os.replace(temp, path)
        except BaseException:
            self.remove_tree(temp)
            raise
        self.sync_dir(path.parent)

    def scan_tree(self, path: Path) -> TreeScan:
        """Every file and directory under ``path`` (which must be a directory)."""
        scan = TreeScan()
        pending = [(path, "")]
        while pending:
            directory, prefix = pending.pop()
            with os.scandir(directory) as items:
                for item in items:
                    rel = f"{prefix}{item.name}"
                    if item.is_dir(follow_symlinks=False):
                        scan.dirs.add(rel)
                        pending.append((Path(item.path), rel + "/"))
                    elif item.is_file(follow_symlinks=False):
                        scan.files[rel] = item.stat(follow_symlinks=False).st_size
                    else:
                        scan.others.append(rel)
        return scan

    def hash_file(self, path: Path, *, sync: bool = False) -> FileDigest:
        """sha256 and size of ``path``; with ``sync``, also flush it to disk."""
        digest = hashlib.sha256()
        size = 0
        with open(os.open(path, _READ_FLAGS), "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            if sync:
                os.fsync(handle.fileno())
        return FileDigest(digest.hexdigest(), size)

    def sync_dir(self, path: Path) -> None:
        """Flush a directory's entries (new names, renames) to disk."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename_dir(self, source: Path, target: Path) -> None:
        """Rename ``source`` to ``target``; fails if ``target`` is a non-empty directory or a file."""
        os.rename(source, target)

    def make_read_only(self, path: Path) -> None:
        mode = os.stat(path, follow_symlinks=False).st_mode
        os.chmod(path, stat.S_IMODE(mode) & ~_WRITE_BITS)

    def remove_tree(self, path: Path) -> None:
        """Remove a file or a directory tree, even one holding read-only files. Missing is fine."""
        if not os.path.lexists(path):
            return
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
            return

        try:
            shutil.rmtree(path)
        except PermissionError:
            # NOTE: deleting needs writable, searchable *directories*; entries only make files
            # read-only, but a user or another tool may have locked a directory down too.
            _make_dirs_writable(path)
            shutil.rmtree(path)

    def modified_time(self, path: Path) -> float:
        """Modification time of ``path`` (0.0 if it is gone)."""
        try:
            return os.stat(path, follow_symlinks=False).st_mtime
        except OSError:
            return 0.0

    def tree_size(self, path: Path) -> int:
        """Bytes held by the files under ``path`` (0 if it is gone)."""
        try:
            if not self.is_dir(path):
                return os.stat(path, follow_symlinks=False).st_size
            return self.scan_tree(path).total_size
        except OSError:
            return 0


def _make_dirs_writable(path: Path) -> None:
    os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IRWXU)
    for parent, dirs, _files in os.walk(path):
        for name in dirs:
            child = os.path.join(parent, name)
            if not os.path.islink(child):
                os.chmod(child, stat.S_IMODE(os.stat(child).st_mode) | stat.S_IRWXU)
