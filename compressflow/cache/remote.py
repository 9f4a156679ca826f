"""The cache on an object store or any fsspec URL, with a local read-through copy.

Layout under the URL (``s3://bucket/prefix``)::

    entries/<key[:2]>/<key>/manifest.json         the commit point; names the upload it covers
    entries/<key[:2]>/<key>/<upload>/...           the files of one upload: the stage's files and key.json
    locks/<key>.lease                               the lease of a key (see remote_locks)
    refs/<scope>/<stage>.json                       the last key used for a stage of a pipeline

Object stores cannot rename, so an entry is committed where it lives: its files are uploaded
under a fresh ``<upload>`` folder of its key, then its manifest (the same document as a local
entry's, plus ``"upload"``) is created only if none exists (``If-None-Match: *``). Until that
one request succeeds nothing points at the files, so a partial upload is never a hit. Two
writers of one key never touch each other's files; the first manifest wins and the loser's
upload is deleted. A manifest is only replaced (forced recompute, damaged entry) with
``If-Match`` on the version that was read. Uploads no manifest names are left by writers that
died; the next writer of the key (holding its lease) and ``cache gc`` delete them.

Reading checks the manifest and lists the upload: every file present with its size (always).
Files are downloaded into a local read-through copy, a plain local
:class:`~compressflow.cache.local.Cache` at ``$COMPRESSFLOW_LOCAL_CACHE/<hash of URL>``
(default ``~/.cache/compressflow/remote/<hash of URL>``), and hashed on the way: an entry is
consumed only after every sha256 matched, and after the paths its ``artifact.json`` names were
found among its own files. A damaged entry is reported, removed and recomputed.
Stages get local paths; each entry is downloaded once per machine.

Others write to a shared cache, so runs rehash every entry they read by default
(:attr:`RemoteCache.verify_reads`, what ``run --verify`` asks of a local cache).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator

from compressflow.errors import CacheError
from compressflow.cache.base import BackendBase, damage_message
from compressflow.cache.entries import UNKNOWN_STAGE, CacheEntry, Status, read_listed_files
from compressflow.cache.local import Cache
from compressflow.cache.local_fs import TreeScan
from compressflow.cache.manifest import (
    KEY_DOC_NAME, MANIFEST_NAME, EntryCheck, ManifestError, encode_json, parse_manifest, read_key_doc,
    structure_problems)
from compressflow.cache.names import check_key, is_key, short_key
from compressflow.cache.refs import RefStore
from compressflow.cache.entry_paths import ARTIFACT_NAME, artifact_bytes_listed, named_path_problems
from compressflow.cache.remote_locks import LeaseLock
from compressflow.cache.remote_store import ObjectStore, Tagged, open_store

LOCAL_CACHE_ENV = "COMPRESSFLOW_LOCAL_CACHE"
_UPLOAD_PATTERN = re.compile(r"[0-9a-f]{16}")
_HEX = frozenset("0123456789abcdef")


def local_cache_base() -> Path:
    """Where read-through copies live: ``$COMPRESSFLOW_LOCAL_CACHE``, else ``~/.cache/compressflow/remote``."""
    env = os.environ.get(LOCAL_CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "compressflow" / "remote"


def local_copy_dir(url: str, base: Path | None = None) -> Path:
    """The read-through copy of the cache at ``url``: ``<base>/<first 16 hex of sha256(url)>``."""
    digest = hashlib.sha256(url.rstrip("/").encode("utf-8")).hexdigest()[:16]
    return (base or local_cache_base()) / digest


@dataclass
class _RemoteCheck(EntryCheck):
    """What the store holds for one key, checked without hashing: an entry's check, plus whether
    there is a manifest at all and the version (``tag``) of the one read."""

    exists: bool = True
    tag: str | None = None

    @property
    def ok(self) -> bool:
        return self.exists and not self.problems


class _Damaged(Exception):
    """A downloaded file did not match its manifest."""


class _StoreFiles:
    """The file operations :class:`RefStore` needs, on an object store."""

    def __init__(self, store: ObjectStore):
        self._store = store

    def make_dirs(self, path: PurePosixPath) -> None:
        pass  # object stores have no directories

    def atomic_write_bytes(self, path: PurePosixPath, data: bytes) -> None:
        self._store.put(str(path), data)

    def read_bytes(self, path: PurePosixPath) -> bytes:
        return self._store.read(str(path))

    def list_files(self, path: PurePosixPath) -> list[str]:
        return list(self._store.list_files(str(path)))


class RemoteCache(BackendBase):
    """The cache at an fsspec URL; the same API as :class:`~compressflow.cache.local.Cache`.

    ``local_dir`` is the read-through copy (default :func:`local_copy_dir` of ``url``).
    ``entry_dir`` and ``CacheEntry.path`` are paths in the local copy; :meth:`entry_dir`
    downloads a committed entry that is not there yet. ``root`` is the URL.
    """

    # NOTE: a shared cache is written by others: runs rehash what they read unless told otherwise.
    verify_reads = True

    def __init__(self, url: str, *, log: Callable[[str], None] | None = None, local_dir: Path | None = None,
                 storage_options: dict[str, Any] | None = None):
        self._log = log or logging.getLogger(__name__).warning
        self.store = open_store(url, storage_options)
        self.root = self.store.url
        self._storage_options = dict(storage_options) if storage_options else None
        self._asked_local_dir = str(local_dir) if local_dir else None
        self.local_dir = Path(local_dir) if local_dir else local_copy_dir(self.root)
        self.local = Cache(self.local_dir, log=self._log)
        self._refs = RefStore(PurePosixPath("refs"), _StoreFiles(self.store), self._log)  # type: ignore[arg-type]
        self._held: set[str] = set()       # keys whose lease this object holds
        self._fetched: set[str] = set()    # keys whose local copy matched the store in this process

    def __repr__(self) -> str:
        return f"RemoteCache({self.root!r}, local_dir={str(self.local_dir)!r})"

    def _reopen_options(self) -> dict[str, Any]:
        # NOTE: the read-through copy only when the run asked for one: else each machine's own default
        return {"storage_options": self._storage_options, "local_dir": self._asked_local_dir}

    @property
    def local_root(self) -> Path:
        """The read-through copy's folder: this machine's state (file hashes) lives there too."""
        return self.local.root

    # ------------------------------------------------------------------------------ names

    @staticmethod
    def _key_prefix(key: str) -> str:
        return f"entries/{key[:2]}/{key}"

    def _manifest_rel(self, key: str) -> str:
        return f"{self._key_prefix(key)}/{MANIFEST_NAME}"

    def entry_url(self, key: str) -> str:
        """Where the entry of ``key`` lives on the store."""
        check_key(key)
        return self.store.url_of(self._key_prefix(key))

    # ------------------------------------------------------------------------------ reading

    def entry_dir(self, key: str) -> Path:
        """The local copy of the entry of ``key``, downloaded (and hashed) first if needed.

        When the store has no valid entry the path is returned as it is (possibly absent).
        """
        check_key(key)
        path = self.local.entry_dir(key)
        if key in self._fetched:
            return path
        check = self._check(key)
        if check.ok:
            self._fetch(key, check, stage=check.stage or UNKNOWN_STAGE)
        return path

    def status(self, key: str) -> Status:
        """``hit``, ``miss`` or ``damaged`` on the store, without hashing or downloading."""
        check = self._check(check_key(key))
        if not check.exists:
            return "miss"
        return "hit" if check.ok else "damaged"

    def lookup(self, key: str, *, stage: str, verify: bool = False) -> CacheEntry | None:
        """The entry of ``key``, or None on a miss.

        The manifest and the sizes of the uploaded files are always checked. With ``verify``
        the entry is also brought into the local copy, every file hashed against the
        manifest (and a local copy made earlier rehashed). A damaged entry is reported,
        removed and treated as a miss.
        """
        check = self._check(check_key(key))
        if not check.exists:
            return None
        if not check.ok:
            self._report_and_remove(key, None, check, stage=stage, outcome="removing it and recomputing")
            return None
        if verify:
            local = self._fetch(key, check, stage=stage, rehash=True)
            if local is None:
                return None
            return local
        key_doc = self._read_key_doc(key, check)
        if key_doc is None:
            self._report_and_remove(key, None, check, stage=stage, outcome="removing it and recomputing")
            return None
        manifest = check.manifest
        return CacheEntry(key=key, path=self.local.entry_dir(key), stage=manifest["stage"],
                          manifest=_local_manifest(manifest), key_doc=key_doc, created=float(manifest["created"]))

    def read_entry(self, key: str) -> CacheEntry:
        """The entry of ``key`` in the local copy (downloaded if needed); CacheError if absent or damaged."""
        check = self._check(check_key(key))
        if not check.exists:
            raise CacheError(f"no cache entry for key {short_key(key)} under {self.root}")
        if not check.ok:
            raise CacheError(f"cache entry {short_key(key)} is damaged: {check.summary()}")
        entry = self._fetch(key, check, stage=check.stage or UNKNOWN_STAGE)
        if entry is None:
            raise CacheError(f"cache entry {short_key(key)} under {self.root} is damaged")
        return entry

    def entry_metadata(self, key: str, names: Iterable[str]) -> dict[str, bytes]:
        """The bytes of the files ``names`` of the entry of ``key`` that it holds, and no other file.

        Read from the local copy when it holds the entry, else straight from the store (the entry is
        not downloaded): a record of a cached run reads manifests and metadata only. {} without a valid entry.
        """
        check_key(key)
        if key in self._fetched:
            return self.local.entry_metadata(key, names)
        check = self._check(key)
        if not check.ok:
            return {}
        upload_rel = f"{self._key_prefix(key)}/{check.manifest['upload']}"
        return read_listed_files(check.manifest["files"], names,
                                 lambda relative: self.store.read(f"{upload_rel}/{relative}"))

    def _check(self, key: str) -> _RemoteCheck:
        self.local.use()  # NOTE: so that a `cache gc` of this machine waits for this run
        tagged = self._read_tagged(self._manifest_rel(key))
        if tagged is None:
            return _RemoteCheck(exists=False)
        return self._check_tagged(key, tagged, self.store.list_files(self._key_prefix(key)))

    def _check_tagged(self, key: str, tagged: Tagged, listing: dict[str, int]) -> _RemoteCheck:
        """Check a manifest against the listing of its key's folder (no hashing)."""
        check = _RemoteCheck(exists=True, tag=tagged.tag)
        try:
            manifest = parse_manifest(tagged.data, key)
        except ManifestError as exc:
            check.problems.append(str(exc))
            return check
        upload = manifest.get("upload")
        if not isinstance(upload, str) or not _UPLOAD_PATTERN.fullmatch(upload):
            check.problems.append(f"{MANIFEST_NAME} is damaged (bad 'upload')")
            return check
        check.manifest = manifest
        files = {name[len(upload) + 1:]: size for name, size in listing.items() if name.startswith(upload + "/")}
        # NOTE: object stores have no directories; the manifest's are recreated in the local copy.
        scan = TreeScan(files=files, dirs=set(manifest["dirs"]))
        check.problems = structure_problems(manifest, scan)
        return check

    def _read_key_doc(self, key: str, check: _RemoteCheck) -> dict[str, Any] | None:
        rel = f"{self._key_prefix(key)}/{check.manifest['upload']}/{KEY_DOC_NAME}"
        return read_key_doc(lambda: self.store.read(rel), check.problems)

    def _read_tagged(self, rel: str) -> Tagged | None:
        try:
            return self.store.read_tagged(rel)
        except OSError as exc:
            raise self._storage_error("read", exc) from exc

    # ------------------------------------------------------------------------------ local copy

    def _fetch(self, key: str, check: _RemoteCheck, *, stage: str, rehash: bool = False) -> CacheEntry | None:
        """The entry in the local copy, downloaded if it is not there; None if it is damaged."""
        for _attempt in range(3):
            with self.local.lock(key, stage=stage):
                local = self.local.lookup(key, stage=stage, verify=rehash)
                if local is not None and local.files == check.manifest["files"]:
                    self._fetched.add(key)
                    return local
                try:
                    entry = self._download(key, check, stage)
                except _Damaged as exc:
                    check.problems.append(str(exc))
                    self._report_and_remove(key, None, check, stage=stage, outcome="removing it and recomputing")
                    return None
                except FileNotFoundError:
                    entry = None
            if entry is not None:
                self._fetched.add(key)
                return entry
            # A file vanished while we downloaded: the entry was replaced or removed meanwhile.
            newer = self._check(key)
            if newer.tag == check.tag:
                check.problems.append("a file disappeared while it was downloaded")
                self._report_and_remove(key, None, check, stage=stage, outcome="removing it and recomputing")
                return None
            if not newer.ok:
                return None
            check = newer
        return None

    def _download(self, key: str, check: _RemoteCheck, stage: str) -> CacheEntry:
        manifest = check.manifest
        upload_rel = f"{self._key_prefix(key)}/{manifest['upload']}"
        key_doc = self._read_key_doc(key, check)
        if key_doc is None:
            raise _Damaged(check.problems.pop())
        with self.local.writer(key, stage=stage, key_doc=key_doc, replace=True) as out:
            for directory in manifest["dirs"]:
                (out / directory).mkdir(parents=True, exist_ok=True)
            for relative, record in sorted(manifest["files"].items()):
                if relative == KEY_DOC_NAME:
                    continue
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = self.store.download(f"{upload_rel}/{relative}", target)
                if digest.sha256 != record["sha256"] or digest.size != record["size"]:
                    raise _Damaged(f"file {relative} does not match its checksum")
            if artifact_bytes_listed(manifest):
                named = named_path_problems((out / ARTIFACT_NAME).read_bytes(), manifest)
                if named:
                    raise _Damaged(named[0])
        entry = self.local.read_entry(key)
        if entry.files != manifest["files"]:
            self._discard_local(key)
            raise _Damaged(f"{KEY_DOC_NAME} does not match its checksum")
        return entry

    def _discard_local(self, key: str) -> None:
        path = self.local.entry_dir(key)
        if path.exists():
            self.local._remove_entry(path, key)
        self._fetched.discard(key)

    # ------------------------------------------------------------------------------ locking

    @contextmanager
    def lock(self, key: str, *, stage: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the lease of ``key`` (waits while another process, on any machine, holds it).

        ``on_wait`` is told once whom we wait for. A lease whose holder died (a process of
        this host that is gone, or no heartbeat for the lease's time-to-live) is taken over
        and the takeover reported through ``log``. Not re-entrant.
        """
        lease = self._lease(key, stage)
        try:
            lease.acquire(on_wait=on_wait)
        except OSError as exc:
            raise CacheError(f"cannot lock stage '{stage}' in the cache at {self.root}: {exc}") from exc
        self._held.add(key)
        try:
            yield
        finally:
            self._held.discard(key)
            lease.release()

    def _lease(self, key: str, stage: str) -> LeaseLock:
        check_key(key)
        return LeaseLock(self.store, f"locks/{key}.lease", stage=stage,
                         subject=f"stage '{stage}' (key {short_key(key)})", log=self._log)

    @contextmanager
    def _maybe_locked(self, key: str, stage: str) -> Iterator[bool]:
        """Hold the key's lease if it is free (or already ours); yield whether we hold it."""
        if key in self._held:
            yield True
            return
        lease = self._lease(key, stage)
        if not lease.acquire(blocking=False):
            yield False
            return
        self._held.add(key)
        try:
            yield True
        finally:
            self._held.discard(key)
            lease.release()

    # ------------------------------------------------------------------------------ writing

    @contextmanager
    def writer(self, key: str, *, stage: str, key_doc: dict[str, Any], replace: bool = False) -> Iterator[Path]:
        """Yield an empty local directory for the entry's files; commit them on normal exit.

        The files are committed to the local copy first (hashed, read-only), then uploaded
        under a fresh upload folder, and the manifest is created last. If a valid entry got
        there first, ours is discarded unless ``replace``. Call it under :meth:`lock`.
        A failure of the store becomes a :class:`~compressflow.errors.CacheError`.
        """
        check_key(key)
        with self.local.lock(key, stage=stage):
            with self.local.writer(key, stage=stage, key_doc=key_doc, replace=True) as out:
                yield out
            entry = self.local.read_entry(key)
        try:
            self._publish(entry, stage, replace)
        except OSError as exc:
            raise self._storage_error("write", exc) from exc
        self._fetched.add(key)

    def _publish(self, entry: CacheEntry, stage: str, replace: bool) -> None:
        key = entry.key
        prefix = self._key_prefix(key)
        self._remove_orphan_uploads(key)
        upload = secrets.token_hex(8)
        for relative in sorted(entry.files):
            self.store.upload(entry.file(relative), f"{prefix}/{upload}/{relative}")
        manifest_bytes = encode_json({**entry.manifest, "upload": upload})
        for _attempt in range(5):
            # The commit point: one conditional request.
            if self.store.create(self._manifest_rel(key), manifest_bytes) is not None:
                return
            existing = self._read_tagged(self._manifest_rel(key))
            if existing is None:
                continue
            check = self._check_tagged(key, existing, self.store.list_files(prefix))
            if check.ok and not replace:
                self.store.remove_prefix(f"{prefix}/{upload}")  # another writer committed first
                return
            if not check.ok:
                self._log(damage_message(key, stage, check.summary(), "replacing it"))
            if self.store.replace(self._manifest_rel(key), manifest_bytes, existing.tag) is not None:
                old = check.manifest.get("upload") if check.manifest else None
                if old and old != upload:
                    self.store.remove_prefix(f"{prefix}/{old}")
                return
        raise CacheError(f"cannot commit the cache entry of stage '{stage}' at {self.entry_url(key)}: "
                         "its manifest keeps changing")

    def _remove_orphan_uploads(self, key: str) -> int:
        """Delete uploads of ``key`` that no manifest names (left by writers that died). Under the lease."""
        prefix = self._key_prefix(key)
        listing = self.store.list_files(prefix)
        tagged = self._read_tagged(self._manifest_rel(key))
        current = None
        if tagged is not None:
            try:
                current = parse_manifest(tagged.data, key).get("upload")
            except ManifestError:
                current = None
        uploads = {name.split("/", 1)[0] for name in listing if "/" in name}
        freed = 0
        for upload in sorted(uploads - {current}):
            freed += self.store.remove_prefix(f"{prefix}/{upload}")
        return freed

    # ------------------------------------------------------------------------------ removal

    def _remove_damaged(self, key: str, where: Any, check: EntryCheck) -> None:
        self._discard_local(key)
        self._remove_remote(key, getattr(check, "tag", None), check.stage or UNKNOWN_STAGE)

    def _entry_location(self, key: str, where: Any) -> str:
        return self.entry_url(key)

    def _remove_remote(self, key: str, tag: str | None, stage: str) -> int:
        """Un-commit and delete the entry of ``key`` if its manifest is still version ``tag``.

        Done under the key's lease, taken without waiting: if another process holds it, that
        process is writing the key and will replace the entry itself. Returns the bytes freed.
        """
        with self._maybe_locked(key, stage) as locked:
            if not locked:
                return 0
            if tag is not None and not self.store.delete_if(self._manifest_rel(key), tag):
                return 0  # replaced meanwhile by a new, valid commit
            return self.store.remove_prefix(self._key_prefix(key))

    # ------------------------------------------------------------------------------ maintenance

    def _listing(self) -> dict[str, dict[str, int]]:
        """``{key: {path below the key's folder: size}}`` for every key folder on the store."""
        by_key: dict[str, dict[str, int]] = {}
        for name, size in self.store.list_files("entries").items():
            parts = name.split("/", 2)
            if len(parts) == 3 and len(parts[0]) == 2 and set(parts[0]) <= _HEX and is_key(parts[1]):
                by_key.setdefault(parts[1], {})[parts[2]] = size
        return by_key

    def _stored_checks(self, *, verify: bool) -> Iterator[tuple[str, dict[str, int], _RemoteCheck]]:
        """(key, listing, check) of every committed or damaged entry (folders with a manifest)."""
        for key, listing in sorted(self._listing().items()):
            if MANIFEST_NAME not in listing:
                continue  # an upload in progress or left by a writer that died: not an entry
            tagged = self._read_tagged(self._manifest_rel(key))
            if tagged is None:
                continue
            check = self._check_tagged(key, tagged, listing)
            if verify and check.ok:
                self._rehash_stored(key, check)
            yield key, listing, check

    def _rehash_stored(self, key: str, check: _RemoteCheck) -> None:
        """Hash every file of the entry on the store (streamed); what does not match goes to ``check``."""
        upload_rel = f"{self._key_prefix(key)}/{check.manifest['upload']}"
        for relative, record in sorted(check.manifest["files"].items()):
            try:
                digest = self.store.hash(f"{upload_rel}/{relative}")
            except FileNotFoundError:
                check.problems.append(f"file {relative} is missing")
                continue
            if digest.sha256 != record["sha256"]:
                check.problems.append(f"file {relative} does not match its checksum")
        if check.ok and artifact_bytes_listed(check.manifest):
            check.problems += named_path_problems(self.store.read(f"{upload_rel}/{ARTIFACT_NAME}"), check.manifest)

    def _stored_size(self, where: dict[str, int], check: EntryCheck) -> int:
        return sum(where.values())

    def exclusive(self, *, wait: bool = True, on_wait: Callable[[str], None] | None = None):
        """The run lock of the local copy, held exclusively: no run of this machine uses the cache meanwhile.

        NOTE: runs on other machines hold no lock here; gc leaves only the keys whose lease is held.
        """
        return self.local.exclusive(wait=wait, on_wait=on_wait)

    def close(self) -> None:
        """Stop using the cache (the local copy's run lock)."""
        self.local.close()

    def _collect(self, keep: set[str]) -> tuple[int, int]:
        """Also uploads no manifest names; the local copy is collected the same way.

        NOTE: runs on other machines hold no run lock here; only keys whose lease is held are left.
        """
        removed = freed = 0
        for key, listing in sorted(self._listing().items()):
            with self._maybe_locked(key, "cache gc") as locked:
                if not locked:
                    continue
                if key in keep:
                    freed += self._remove_orphan_uploads(key)
                    continue
                if MANIFEST_NAME in listing:
                    self.store.delete(self._manifest_rel(key))
                    removed += 1
                freed += self.store.remove_prefix(self._key_prefix(key))
        _local_removed, local_freed = self.local._collect(keep)
        self._fetched.clear()
        return removed, freed + local_freed

    def clean_stale_tmp(self) -> int:
        """Remove temporaries of dead processes from the local copy (uploads are cleaned by writers and gc)."""
        return self.local.clean_stale_tmp()

def _local_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """A remote manifest as the local copy records it (without the upload name)."""
    return {name: value for name, value in manifest.items() if name != "upload"}
