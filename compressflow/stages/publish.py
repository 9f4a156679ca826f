"""Copy an export from the cache to its target, atomically; no TensorFlow (runs on every run).

A reader of the target never sees a half-written file: a file is copied to a
temporary name beside the target and ``os.replace``d over it; a directory (a
SavedModel) is copied to a temporary directory and swapped in. What is copied comes from
a cache entry and must be regular files and folders: a symlink there is refused, never
followed (an export never publishes a file from outside its entry).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

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


def atomic_copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` (a regular file, not a symlink) to ``target`` through a temporary file and ``os.replace``."""
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
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_copy_tree(source: Path, target: Path) -> None:
    """Copy the directory ``source`` (no symlinks in it) to ``target``: copy beside it, then swap it in."""
    _refuse_links(source)
    if target.exists() and not target.is_dir():
        raise UsageError(f"cannot export a directory to {target}: it is a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_sibling(target, "tmp")
    retired = _temporary_sibling(target, "old")
    try:
        shutil.copytree(source, temporary, copy_function=shutil.copyfile)
        if target.exists():
            os.replace(target, retired)
        try:
            os.replace(temporary, target)
        except OSError:
            if retired.exists():
                os.replace(retired, target)  # put the previous export back
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def publish_export(export: Path, sidecar: Path, target: Path) -> list[Path]:
    """Write the exported file or directory and its sidecar; return the paths written."""
    if export.is_dir():
        atomic_copy_tree(export, target)
    else:
        atomic_copy_file(export, target)
    written_sidecar = sidecar_path(target)
    atomic_copy_file(sidecar, written_sidecar)
    return [target, written_sidecar]
