"""Copy an export from the cache to its target, atomically; no TensorFlow (runs on every run).

A reader of the target never sees a half-written file: a file is copied to a
temporary name beside the target and ``os.replace``d over it; a directory (a
SavedModel) is copied to a temporary directory and swapped in. What is copied comes from
a cache entry and must be regular files and folders: a symlink there is refused, never
followed (an export never publishes a file from outside its entry).

The export and its sidecar are published as one unit: both are copied beside the target first,
then replaced while holding an exclusive ``flock`` on ``<target>.lock`` (a file left beside the
target), so two runs exporting to the same path at once leave the pair of one of them. A reader
that holds the same lock shared (:func:`read_published`) sees a consistent pair; one that takes no
lock can check the pair itself: the sidecar's ``sha256`` is that of the file (or folder) beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from compressflow.errors import UsageError
from compressflow.stages.base import Environment


def resolve_target(raw: str, env: Environment, *, allow_outside: bool, stage: str) -> Path:
    """The export target, relative to the pipeline's folder; outside it only with ``allow_outside``."""
    if allow_outside:
        path = Path(os.path.expanduser(raw))
        return (path if path.is_absolute() else env.pipeline_dir / path).resolve()
    try:
        return env.resolve_path(raw, what=f"export target of stage {stage!r}")
    except UsageError as exc:
        raise UsageError(f"{exc}, or set `allow_outside: true` on stage {stage!r}") from exc


def sidecar_path(target: Path) -> Path:
    """Where the sidecar JSON of an export goes: ``<target>.json`` beside it."""
    return target.with_name(target.name + ".json")


def _temporary_sibling(target: Path, tag: str) -> Path:
    return target.with_name(f".{target.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _refuse_links(source: Path) -> None:
    """A CacheError if ``source`` is, or (a folder) holds, a symlink or anything but files and folders."""
    from compressflow.errors import CacheError

    found = [source] if source.is_symlink() else []
    if not found and source.is_dir():
        for parent, dirs, files in os.walk(source, followlinks=False):
            found += [Path(parent, name) for name in dirs + files
                      if Path(parent, name).is_symlink() or not (Path(parent, name).is_dir()
                                                                 or Path(parent, name).is_file())]
    if found:
        raise CacheError(f"refusing to export {found[0]}: a symbolic link or special file in a cache entry "
                         "(an export copies the entry's own files only)")


def lock_path(target: Path) -> Path:
    """The lock file of an export target: ``<target>.lock`` beside it."""
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def target_lock(target: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold the ``flock`` on ``<target>.lock``: exclusive while publishing, shared to read a consistent pair."""
    path = lock_path(target)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except PermissionError:
        if not shared:
            raise
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # NOTE: a reader without write access can still lock
    try:
        # NOTE: no timeout: a publisher holds the lock only for two renames, never while copying.
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def content_sha256(path: Path) -> str:
    """The sha256 an export's sidecar names: of a file's bytes, or of a folder's names and files' hashes.

    The same value as :func:`compressflow.fingerprints.tree_sha256`, read afresh (never from the
    hash state, which must not remember temporary copies).
    """
    if not path.is_dir():
        return _bytes_sha256(path)
    h = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(item.relative_to(path).as_posix()).encode() + b"\0")
        h.update(_bytes_sha256(item).encode())
    return h.hexdigest()


def _bytes_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _stage_file(source: Path, target: Path) -> Path:
    """A flushed copy of the file ``source`` beside ``target``, under a temporary name."""
    _refuse_links(source)
    if target.is_dir():
        raise UsageError(f"cannot export to {target}: it is a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target, "tmp")
    try:
        # NOTE: copyfile, not copy2: cache files are read-only and the export should not be.
        shutil.copyfile(source, temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _stage_tree(source: Path, target: Path) -> Path:
    """A copy of the directory ``source`` beside ``target``, under a temporary name."""
    _refuse_links(source)
    if target.exists() and not target.is_dir():
        raise UsageError(f"cannot export a directory to {target}: it is a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target, "tmp")
    try:
        shutil.copytree(source, temporary, copy_function=shutil.copyfile)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return temporary


def _swap_in(staged: Path, target: Path) -> Path | None:
    """Put ``staged`` in place of ``target``; returns what it replaced, kept aside (None: nothing, or unkept)."""
    previous = _temporary_sibling(target, "old")
    if staged.is_dir():
        if target.exists():
            os.replace(target, previous)
        try:
            os.replace(staged, target)
        except OSError:
            if previous.exists():
                os.replace(previous, target)  # put the previous export back
            raise
        return previous if previous.exists() else None
    try:
        os.link(target, previous)  # NOTE: a second name for the previous file, to put it back if need be
    except OSError:
        previous = None
    try:
        os.replace(staged, target)
    except OSError:
        _discard(previous)
        raise
    return previous


def _discard(path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def atomic_copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` (a regular file, not a symlink) to ``target`` through a temporary file and ``os.replace``."""
    staged = _stage_file(source, target)
    try:
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)


def atomic_copy_tree(source: Path, target: Path) -> None:
    """Copy the directory ``source`` (no symlinks in it) to ``target``: copy beside it, then swap it in."""
    staged = _stage_tree(source, target)
    try:
        _discard(_swap_in(staged, target))
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _sidecar_for(sidecar: Path, sha256: str, export: Path) -> bytes:
    """The sidecar's bytes, checked against (or, if it names none, given) the sha256 of the export."""
    from compressflow.errors import CacheError

    data = sidecar.read_bytes()
    try:
        content: Any = json.loads(data)
    except ValueError as exc:
        raise CacheError(f"the sidecar {sidecar} of export {export} is not JSON ({exc}): the cache entry is "
                         "damaged; run `compressflow cache verify --remove` and run again") from None
    if not isinstance(content, dict):
        raise CacheError(f"the sidecar {sidecar} of export {export} is not a JSON object: the cache entry is "
                         "damaged; run `compressflow cache verify --remove` and run again")
    named = content.get("sha256")
    if named is None:
        return (json.dumps({**content, "sha256": sha256}, indent=2) + "\n").encode()
    if named != sha256:
        raise CacheError(f"export {export} does not match its sidecar {sidecar} (sha256 {sha256[:12]}, the sidecar "
                         f"names {str(named)[:12]}): the cache entry is damaged; run `compressflow cache verify "
                         "--remove` and run again")
    return data


def publish_export(export: Path, sidecar: Path, target: Path) -> list[Path]:
    """Write the exported file or directory and its sidecar as one unit; return the paths written.

    Both are copied beside their targets first; then, holding ``<target>.lock`` exclusively, the
    export and the sidecar are replaced (the previous export is put back if the sidecar cannot be).
    The published sidecar names the sha256 of the published export.
    """
    sidecar_target = sidecar_path(target)
    staged = _stage_tree(export, target) if export.is_dir() else _stage_file(export, target)
    staged_sidecar = None
    try:
        sidecar_bytes = _sidecar_for(sidecar, content_sha256(staged), export)
        staged_sidecar = _temporary_sibling(sidecar_target, "tmp")
        with open(staged_sidecar, "wb") as handle:
            handle.write(sidecar_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        with target_lock(target):
            previous = _swap_in(staged, target)
            try:
                os.replace(staged_sidecar, sidecar_target)
            except BaseException:
                if previous is not None:  # put the previous export back: the previous pair stays whole
                    if previous.is_dir():
                        shutil.rmtree(target, ignore_errors=True)
                    os.replace(previous, target)
                    previous = None
                raise
            finally:
                _discard(previous)
    finally:
        _discard(staged if staged.exists() else None)
        if staged_sidecar is not None:
            staged_sidecar.unlink(missing_ok=True)
    return [target, sidecar_target]


@dataclass(frozen=True)
class PublishedExport:
    """What a reader found at an export target: the sha256 of the export and its sidecar."""

    sha256: str
    sidecar: dict[str, Any]

    @property
    def consistent(self) -> bool:
        """Whether the sidecar describes the export beside it."""
        return self.sidecar.get("sha256") == self.sha256


def read_published(target: Path) -> PublishedExport:
    """Hash the export at ``target`` and read its sidecar while holding ``<target>.lock`` shared."""
    with target_lock(target, shared=True):
        return PublishedExport(content_sha256(target), json.loads(sidecar_path(target).read_text()))
