"""The paths an entry names in its ``artifact.json``: each must be one of the entry's own files.

A stage's ``artifact.json`` names its main file (``file``) and others (``sidecar``, ``table``,
``selection_table``), and every reader joins those names to the entry's folder: a stage loads
the model, an export publishes the file and its sidecar, a run record copies the table. A name
that is absolute, climbs out with ``..`` or is not a file or folder the manifest lists would make
a reader use a file outside the entry, so such an entry is damaged, like one whose files do not
match its manifest. Checked on every read, whatever the manifest's checksums say: a same-size
edit of ``artifact.json`` passes the cheap check, and a consistent manifest proves nothing about
who wrote it.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

ARTIFACT_NAME = "artifact.json"
PATH_FIELDS = ("file", "sidecar", "table", "selection_table")


def named_path_problems(data: bytes, manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the paths the ``artifact.json`` bytes ``data`` name, given the entry's manifest."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"{ARTIFACT_NAME} is damaged (not valid JSON: {exc})"]
    if not isinstance(doc, dict):
        return [f"{ARTIFACT_NAME} is damaged (not a JSON object)"]
    own = set(manifest["files"]) | set(manifest["dirs"])
    problems = []
    for field in PATH_FIELDS:
        name = doc.get(field)
        if name is None or (isinstance(name, str) and name in own):
            continue
        if not isinstance(name, str):
            problems.append(f"{ARTIFACT_NAME} is damaged ({field!r} is {type(name).__name__}, not a file name)")
        elif _leaves(name):
            problems.append(f"{ARTIFACT_NAME} names a path outside the entry ({field!r}: {name!r}); "
                            "an entry may only name its own files")
        else:
            problems.append(f"{ARTIFACT_NAME} names a file the entry does not hold ({field!r}: {name!r})")
    return problems


def _leaves(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return not name or pure.is_absolute() or ".." in pure.parts or name.startswith("~")


def artifact_bytes_listed(manifest: dict[str, Any]) -> bool:
    """Whether the entry has an ``artifact.json`` to check (entries made outside stages may not)."""
    return ARTIFACT_NAME in manifest["files"]
