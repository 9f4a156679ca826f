"""What every cache backend hands out about its entries: the entry, a listing line, a problem found.

Shared by :class:`~compressflow.cache.local.Cache` and :class:`~compressflow.cache.remote.RemoteCache`
(see :class:`~compressflow.cache.backend.CacheBackend`), so callers see one set of types.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from compressflow.cache.names import short_key

UNKNOWN_STAGE = "?"

Status = Literal["hit", "miss", "damaged"]


@dataclass(frozen=True)
class CacheEntry:
    """A committed, checked cache entry."""

    key: str
    path: Path
    stage: str                  # the stage that wrote it
    manifest: dict[str, Any]
    key_doc: dict[str, Any]
    created: float              # seconds since the epoch

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """``{relative posix path: {"sha256", "size"}}`` of every file, key.json included."""
        return self.manifest["files"]

    @property
    def size(self) -> int:
        return sum(record["size"] for record in self.files.values())

    def file(self, relative: str) -> Path:
        """Path of one of the entry's files."""
        return self.path / relative


@dataclass(frozen=True)
class EntryInfo:
    """One line of ``compressflow cache ls``."""

    key: str
    path: Path | str            # a folder of a local cache, the URL of a remote entry
    stage: str                  # UNKNOWN_STAGE when the manifest cannot be read
    size: int                   # bytes stored for the entry (what removing it frees)
    created: float              # from the manifest, else when the backend saw it stored (0.0: unknown)
    damaged: bool
    problem: str | None = None


@dataclass(frozen=True)
class EntryProblem:
    """A damaged entry found by ``verify_all``."""

    key: str
    stage: str                  # UNKNOWN_STAGE when the manifest cannot be read
    message: str

    def __str__(self) -> str:
        return f"cache entry {short_key(self.key)} (stage '{self.stage}'): {self.message}"


def read_listed_files(files: dict[str, dict[str, Any]], names: Iterable[str],
                      read: Callable[[str], bytes]) -> dict[str, bytes]:
    """``{name: bytes}`` of the ``names`` a manifest's ``files`` lists, each read with ``read(name)``.

    A file that is absent or does not match its size and sha256 is left out, as if the entry had none.
    """
    out = {}
    for name in dict.fromkeys(names):
        record = files.get(name)
        if record is None:
            continue
        try:
            data = read(name)
        except OSError:
            continue
        if len(data) == record["size"] and hashlib.sha256(data).hexdigest() == record["sha256"]:
            out[name] = data
    return out
