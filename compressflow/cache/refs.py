"""Refs: the last key used for each (pipeline scope, stage name), so `plan` can say what changed,
and for each variant of the pipeline (its ``--set`` overrides), so `cache gc` keeps what each uses.

Stored as ``<refs>/<scope>/<stage>.json`` and ``<refs>/<scope>/variants/<variant id>/<stage>.json``
with the names passed through :func:`~compressflow.cache.names.encode_name`, so no name
can leave ``<refs>``; the variant id is ``base`` for the pipeline as written, else a hash of its overrides.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from compressflow.cache.local_fs import LocalFS
from compressflow.cache.manifest import encode_json
from compressflow.cache.names import check_key, encode_name


VARIANTS_FOLDER = "variants"


@dataclass(frozen=True)
class RefRecord:
    """A remembered key: of stage ``stage`` of pipeline ``scope`` run with overrides ``variant``."""

    scope: str
    stage: str
    key: str
    variant: str


def _is_record_name(rel: str) -> bool:
    name = str(rel).rsplit("/", 1)[-1]
    return name.endswith(".json") and not name.startswith(".")  # NOTE: ".tmp-..." are writes in progress


class RefStore:
    """Reads and atomically replaces ref records under one directory."""

    def __init__(self, root: Path, fs: LocalFS, log: Callable[[str], None]):
        self.root = root
        self._fs = fs
        self._log = log

    def path_for(self, scope: str, stage: str) -> Path:
        return self.root / encode_name(scope) / f"{encode_name(stage)}.json"

    def variant_path_for(self, scope: str, stage: str, variant: str) -> Path:
        variant_id = hashlib.sha256(variant.encode()).hexdigest()[:16] if variant else "base"
        return self.root / encode_name(scope) / VARIANTS_FOLDER / variant_id / f"{encode_name(stage)}.json"

    def set(self, scope: str, stage: str, key: str, key_doc: dict[str, Any], variant: str = "") -> None:
        check_key(key)
        now = time.time()
        path = self.path_for(scope, stage)
        record = {"scope": scope, "stage": stage, "key": key, "key_doc": key_doc, "updated": now,
                  "variant": variant}
        self._fs.make_dirs(path.parent)
        self._fs.atomic_write_bytes(path, encode_json(record))
        path = self.variant_path_for(scope, stage, variant)
        self._fs.make_dirs(path.parent)
        self._fs.atomic_write_bytes(path, encode_json({"scope": scope, "stage": stage, "key": key,
                                                       "updated": now, "variant": variant}))

    def remembered(self) -> list[RefRecord]:
        """Every record (last keys and each variant's), skipping unreadable ones (they name no key)."""
        found = []
        for path in self._record_paths():
            try:
                record = json.loads(self._fs.read_bytes(path).decode("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            if isinstance(record, dict) and all(isinstance(record.get(f), str) for f in ("scope", "stage", "key")):
                found.append(RefRecord(record["scope"], record["stage"], record["key"],
                                       record.get("variant") if isinstance(record.get("variant"), str) else ""))
        return found

    def _record_paths(self) -> Iterator[Path]:
        list_files = getattr(self._fs, "list_files", None)
        if list_files is not None:  # an object store: no folders, no links
            yield from (self.root / rel for rel in sorted(list_files(self.root)) if _is_record_name(rel))
            return
        folders = [self.root]
        while folders:
            folder = folders.pop()
            if self._fs.is_link(folder):
                continue  # NOTE: never read through a link; runs and gc report and remove it
            for name in self._fs.list_names(folder):
                path = folder / name
                if self._fs.is_dir(path) and not self._fs.is_link(path):
                    folders.append(path)
                elif _is_record_name(name) and not self._fs.is_link(path):
                    yield path

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
