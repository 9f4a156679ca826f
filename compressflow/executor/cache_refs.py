"""Refs: the last key used for each (pipeline scope, stage name), so `plan` can say what changed.

Stored as ``<refs>/<scope>/<stage>.json`` with both names passed through
:func:`~compressflow.executor.cache_names.encode_name`, so no name can leave ``<refs>``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from compressflow.executor.cache_fs import LocalFS
from compressflow.executor.cache_manifest import encode_json
from compressflow.executor.cache_names import check_key, encode_name


class RefStore:
    """Reads and atomically replaces ref records under one directory."""

    def __init__(self, root: Path, fs: LocalFS, log: Callable[[str], None]):
        self.root = root
        self._fs = fs
        self._log = log

    def path_for(self, scope: str, stage: str) -> Path:
        return self.root / encode_name(scope) / f"{encode_name(stage)}.json"

    def set(self, scope: str, stage: str, key: str, key_doc: dict[str, Any]) -> None:
        check_key(key)
        path = self.path_for(scope, stage)
        record = {"scope": scope, "stage": stage, "key": key, "key_doc": key_doc, "updated": time.time()}
        data = encode_json(record)
        self._fs.make_dirs(path.parent)
        self._fs.atomic_write_bytes(path, data)

    def get(self, scope: str, stage: str) -> dict[str, Any] | None:
        path = self.path_for(scope, stage)
        try:
            record = json.loads(self._fs.read_bytes(path).decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self._log(f"ignoring the unreadable record of the last run of stage '{stage}' ({path}): {exc}")
            return None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            self._log(f"ignoring the damaged record of the last run of stage '{stage}' ({path})")
            return None
        return record
