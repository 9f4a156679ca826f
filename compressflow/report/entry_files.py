"""Small files of a recorded stage's cache entry (``numerics.json``, ``trials.json``) for the report.

The run record keeps only what every report needs; larger tables stay in the stage's cache entry
(``record["cache"]``, the stage's ``key``). They are read through the cache, checked against the
entry's manifest, and never the entry's models. A stage whose entry is gone (``cache gc``) or
unreadable gives nothing: the report leaves that section out.
"""

from __future__ import annotations

import json
from typing import Any

DONE = ("ran", "cached")


class EntryFiles:
    """Reads files of the cache entries of a run record's stages; opens the cache on first use."""

    def __init__(self, record: dict[str, Any]):
        self._location = record.get("cache")
        self._stages = record.get("stages", {})
        self._cache = None
        self._unavailable = not self._location

    def json(self, stage: str, name: str) -> Any:
        """The parsed JSON file ``name`` of ``stage``'s entry, or None when it has none (or cannot be read)."""
        data = self.read(stage, name)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, ValueError):
            return None

    def read(self, stage: str, name: str) -> bytes | None:
        """The bytes of the file ``name`` of ``stage``'s entry, or None."""
        entry = self._stages.get(stage) or {}
        key = entry.get("key")
        if entry.get("status") not in DONE or not isinstance(key, str):
            return None
        cache = self._open()
        if cache is None:
            return None
        try:
            return cache.entry_metadata(key, [name]).get(name)
        except (OSError, ValueError, RuntimeError):
            return None

    def _open(self):
        if self._cache is not None or self._unavailable:
            return self._cache
        from compressflow.cache.open import is_remote, local_path, open_cache_at

        # NOTE: a local cache that is not there any more is not created again just to find it empty.
        if not is_remote(self._location) and not (local_path(self._location) / "entries").is_dir():
            self._unavailable = True
            return None
        try:
            self._cache = open_cache_at(self._location, log=lambda _text: None)
        except Exception:  # noqa: BLE001 - any cache a report cannot open only leaves its sections out
            self._unavailable = True
        return self._cache

    def close(self) -> None:
        """Let go of the cache (its share of the run lock)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
