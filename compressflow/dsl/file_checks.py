"""Paths a stage or dataset reads that lead nowhere, told before anything runs.

A missing model or data file used to surface as a ``FileNotFoundError`` in the middle of a
run, after earlier stages had trained. Here it is a problem of the pipeline: it names the
absolute path that was looked for and, where the folder holds a close name (``model.kears``
for ``model.keras``, ``modles/`` for ``models/``), suggests it.
"""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path

from compressflow.dsl.yaml_source import file_kind

#: Entries of a folder named when nothing in it is close to what was asked for.
MAX_ENTRIES_SHOWN = 8


def missing_path(raw: str, resolved: Path, root: Path, what: str) -> tuple[str, str | None] | None:
    """``(message, hint)`` when nothing usable is at ``resolved`` (``raw`` as written), else None.

    ``root`` is the pipeline's folder: suggestions are written relative to it when ``raw`` is.
    A FIFO, a device or a socket is no file to read (opening a FIFO would wait forever).
    """
    try:
        mode = resolved.stat().st_mode
    except (OSError, ValueError):
        mode = None
    if mode is not None:
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            return None
        return f"{what} {raw!r} is {file_kind(mode)}, not a regular file: {resolved}", None
    message = f"{what} {raw!r} does not exist: nothing at {resolved}"
    return message, _hint(raw, resolved, root)


def _hint(raw: str, resolved: Path, root: Path) -> str | None:
    existing = _existing_ancestor(resolved)
    corrected = _corrected(resolved, existing)
    if corrected is not None:
        return f"did you mean {_as_written(corrected, raw, root)!r}?"
    if existing != resolved.parent:
        missing_folder = existing / resolved.relative_to(existing).parts[0]
        if missing_folder.exists():
            return f"{missing_folder} is a file, not a folder"
        return f"there is no folder {missing_folder}"
    return _contents(existing)


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.is_dir():
            return parent
    return Path(path.anchor)


def _corrected(resolved: Path, existing: Path) -> Path | None:
    """``resolved`` with each missing part replaced by the closest entry there, if that exists."""
    current = existing
    for part in resolved.relative_to(existing).parts:
        if not current.is_dir():
            return None
        close = difflib.get_close_matches(part, _entries(current, part), n=1, cutoff=0.6)
        if not close:
            return None
        current = current / close[0]
    return current if current.exists() else None


def _entries(folder: Path, asked: str) -> list[str]:
    """Names in ``folder``; hidden ones only when ``asked`` is hidden too."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if asked.startswith(".") or not n.startswith("."))


def _as_written(path: Path, raw: str, root: Path) -> str:
    """``path`` in the form ``raw`` was written in: relative to the pipeline's folder, or absolute."""
    if Path(os.path.expanduser(raw)).is_absolute():
        return str(path)
    return Path(os.path.relpath(path, root.resolve())).as_posix()


def _contents(folder: Path) -> str:
    names = _entries(folder, "")
    if not names:
        return f"the folder {folder} is empty"
    shown = ", ".join(names[:MAX_ENTRIES_SHOWN]) + (", ..." if len(names) > MAX_ENTRIES_SHOWN else "")
    return f"{folder} holds: {shown}"
