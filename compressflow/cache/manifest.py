"""The manifest of a cache entry, and checking an entry against it.

An entry directory holds the stage's files, ``key.json`` (the document its key was computed
from) and ``manifest.json``, written last::

    {"format": 1, "key": "<64 hex>", "stage": "pruned", "created": 1714550000.0,
     "files": {"model.keras": {"sha256": "...", "size": 5678}, "key.json": {...}},
     "dirs": ["saved_model", "saved_model/assets"]}

Paths are relative POSIX paths. The manifest lists every file but itself and every
directory, so a missing, extra, truncated or altered file is detected. The paths an entry's
``artifact.json`` names must be among them (see :mod:`~compressflow.cache.entry_paths`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from compressflow.cache.local_fs import FileDigest, LocalFS, TreeScan
from compressflow.cache.names import KEY_PATTERN, short_key
from compressflow.cache.entry_paths import ARTIFACT_NAME, artifact_bytes_listed, named_path_problems

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
KEY_DOC_NAME = "key.json"
RESERVED_NAMES = (MANIFEST_NAME, KEY_DOC_NAME)

_SHA256_PATTERN = KEY_PATTERN
_MAX_PROBLEMS_SHOWN = 3


class ManifestError(ValueError):
    """A manifest that cannot be trusted; the message says why."""


def encode_json(doc: Any) -> bytes:
    """Canonical, human-readable JSON (sorted keys, no NaN)."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def build_manifest(*, key: str, stage: str, created: float, files: dict[str, FileDigest],
                   dirs: set[str]) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "key": key,
        "stage": stage,
        "created": created,
        "files": {path: {"sha256": d.sha256, "size": d.size} for path, d in sorted(files.items())},
        "dirs": sorted(dirs),
    }


def parse_manifest(data: bytes, key: str) -> dict[str, Any]:
    """The manifest in ``data``, checked for shape and for belonging to ``key``."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{MANIFEST_NAME} is damaged (not valid JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{MANIFEST_NAME} is damaged (not a JSON object)")
    if doc.get("format") != FORMAT_VERSION:
        raise ManifestError(f"{MANIFEST_NAME} has an unknown format {doc.get('format')!r}")
    if doc.get("key") != key:
        other = doc.get("key")
        shown = short_key(other) if isinstance(other, str) else repr(other)
        raise ManifestError(f"{MANIFEST_NAME} belongs to another key ({shown})")
    created = doc.get("created")
    if not isinstance(doc.get("stage"), str) or not isinstance(created, (int, float)) \
            or isinstance(created, bool) or not math.isfinite(created):
        raise ManifestError(f"{MANIFEST_NAME} is damaged (bad 'stage' or 'created')")
    files, dirs = doc.get("files"), doc.get("dirs")
    if not isinstance(files, dict) or not isinstance(dirs, list):
        raise ManifestError(f"{MANIFEST_NAME} is damaged (bad 'files' or 'dirs')")
    for path, record in files.items():
        if not _is_inner_path(path) or path == MANIFEST_NAME or not _is_file_record(record):
            raise ManifestError(f"{MANIFEST_NAME} is damaged (bad record for {path!r})")
    if not all(_is_inner_path(path) for path in dirs):
        raise ManifestError(f"{MANIFEST_NAME} is damaged (bad directory list)")
    return doc


def _is_inner_path(path: object) -> bool:
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        return False
    pure = PurePosixPath(path)
    return not pure.is_absolute() and str(pure) == path and ".." not in pure.parts


def _is_file_record(record: object) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("sha256"), str)
            and bool(_SHA256_PATTERN.fullmatch(record["sha256"]))
            and isinstance(record.get("size"), int) and not isinstance(record["size"], bool)
            and record["size"] >= 0)


def structure_problems(manifest: dict[str, Any], scan: TreeScan) -> list[str]:
    """Differences between what the manifest lists and what the directory holds (no hashing)."""
    problems: list[str] = []
    expected = manifest["files"]
    present = {path: size for path, size in scan.files.items() if path != MANIFEST_NAME}
    for path in sorted(expected):
        recorded = expected[path]["size"]
        if path not in present:
            problems.append(f"file {path} is missing")
        elif present[path] < recorded:
            problems.append(f"file {path} is truncated ({present[path]} of {recorded} bytes)")
        elif present[path] > recorded:
            problems.append(f"file {path} is larger than recorded ({present[path]} instead of {recorded} bytes)")
    problems += [f"unexpected file {path}" for path in sorted(set(present) - set(expected))]
    expected_dirs = set(manifest["dirs"])
    problems += [f"directory {path} is missing" for path in sorted(expected_dirs - scan.dirs)]
    problems += [f"unexpected directory {path}" for path in sorted(scan.dirs - expected_dirs)]
    problems += [f"unexpected symlink or special file {path}" for path in sorted(scan.others)]
    return problems


def checksum_problems(fs: LocalFS, entry_path: Path, manifest: dict[str, Any]) -> list[str]:
    """Files whose content no longer matches the manifest's sha256."""
    problems = []
    for path, record in sorted(manifest["files"].items()):
        try:
            digest = fs.hash_file(entry_path / path)
        except OSError as exc:
            problems.append(f"file {path} cannot be read ({exc.strerror or exc})")
            continue
        if digest.sha256 != record["sha256"]:
            problems.append(f"file {path} does not match its checksum")
    return problems


@dataclass
class EntryCheck:
    """The result of checking one entry directory."""

    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    key_doc: dict[str, Any] | None = None
    scan: TreeScan | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def stage(self) -> str | None:
        return self.manifest["stage"] if self.manifest else None

    def summary(self) -> str:
        shown = "; ".join(self.problems[:_MAX_PROBLEMS_SHOWN])
        more = len(self.problems) - _MAX_PROBLEMS_SHOWN
        return shown + (f"; and {more} more problem{'s' if more > 1 else ''}" if more > 0 else "")


def check_entry(fs: LocalFS, path: Path, key: str, *, verify: bool) -> EntryCheck:
    """Check the entry directory ``path`` of ``key``; with ``verify``, re-hash every file.

    The caller has established that something exists at ``path``.
    """
    check = EntryCheck()
    if not fs.is_dir(path):
        check.problems.append("the entry is not a directory")
        return check
    try:
        check.scan = fs.scan_tree(path)
        manifest_bytes = fs.read_bytes(path / MANIFEST_NAME)
    except FileNotFoundError:
        check.problems.append(f"{MANIFEST_NAME} is missing")
        return check
    except OSError as exc:
        check.problems.append(f"the entry cannot be read ({exc.strerror or exc})")
        return check
    try:
        check.manifest = parse_manifest(manifest_bytes, key)
    except ManifestError as exc:
        check.problems.append(str(exc))
        return check
    check.problems = structure_problems(check.manifest, check.scan)
    if not check.problems and verify:
        check.problems = checksum_problems(fs, path, check.manifest)
    if not check.problems and artifact_bytes_listed(check.manifest):
        check.problems = _artifact_problems(fs, path, check.manifest)
    if not check.problems:
        check.key_doc = read_key_doc(lambda: fs.read_bytes(path / KEY_DOC_NAME), check.problems,
                                     unreadable=(OSError,))
    return check


def _artifact_problems(fs: LocalFS, path: Path, manifest: dict[str, Any]) -> list[str]:
    try:
        data = fs.read_bytes(path / ARTIFACT_NAME)
    except OSError as exc:
        return [f"file {ARTIFACT_NAME} cannot be read ({exc.strerror or exc})"]
    return named_path_problems(data, manifest)


def read_key_doc(read: Callable[[], bytes], problems: list[str], *,
                 unreadable: tuple[type[BaseException], ...] = ()) -> dict[str, Any] | None:
    """An entry's key document, read by ``read``; what is wrong with it goes to ``problems``.

    Errors of ``unreadable`` count as a damaged document (a local disk's EIO); others propagate
    (a remote store's outage is not the entry's fault).
    """
    try:
        raw = read()
    except FileNotFoundError:
        problems.append(f"{KEY_DOC_NAME} is missing")
        return None
    except unreadable as exc:
        problems.append(f"{KEY_DOC_NAME} is damaged ({exc})")
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        problems.append(f"{KEY_DOC_NAME} is damaged ({exc})")
        return None
    if not isinstance(doc, dict):
        problems.append(f"{KEY_DOC_NAME} is damaged (not a JSON object)")
        return None
    return doc
