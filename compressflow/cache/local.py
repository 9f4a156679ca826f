"""Content-addressed cache of stage outputs.

Layout under the cache root::

    entries/<key[:2]>/<key>/          one committed entry: the stage's files, key.json, manifest.json
    entries/<key[:2]>/.tmp-<key>-...  an entry being written (never read as an entry)
    locks/<key>.lock                  one lock per key, recording its holder
    locks/runs.lock, locks/runs/      the run lock: shared by runs, exclusive for gc (see run_lock)
    refs/<scope>/<stage>.json         the last key used for a stage of a pipeline

Guarantees: an entry appears under its final name complete and flushed, or not at all
(it is written beside its final place, its manifest is written last, and the directory is
renamed into place). A reader checks an entry against its manifest, and the paths its
``artifact.json`` names against the entry's own files; a damaged entry is reported, removed
and treated as a miss, never trusted. Nothing follows a symbolic link out of the cache: a link
where one of the cache's folders belongs is reported and removed (the link, never what it
points to). :meth:`gc` never removes what a live run uses: a ``Cache`` holds the cache's run
lock shared from its first use of an entry until :meth:`close`, and gc holds it exclusively.
Typical use by the executor::

    with cache.lock(key, stage=name):
        entry = cache.lookup(key, stage=name)
        if entry is None:
            with cache.writer(key, stage=name, key_doc=doc) as out_dir:
                run_stage(out_dir)
            entry = cache.read_entry(key)
"""

from __future__ import annotations

import errno
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from compressflow.errors import CacheError
from compressflow.cache.base import BackendBase
from compressflow.cache.entries import (  # noqa: F401 - re-exported: the types of a cache's answers
    UNKNOWN_STAGE, CacheEntry, EntryInfo, EntryProblem, Status, read_listed_files)
from compressflow.cache.local_fs import LocalFS
from compressflow.cache.manifest import (
    KEY_DOC_NAME, MANIFEST_NAME, RESERVED_NAMES, EntryCheck, build_manifest, check_entry, encode_json)
from compressflow.cache.names import (
    check_key, doomed_entry_name, host_tag, is_key, short_key, temp_entry_name, temp_owner)
from compressflow.cache.refs import RefStore
from compressflow.cache.entry_paths import ARTIFACT_NAME, named_path_problems
from compressflow.cache.locks import KeyLock, process_is_alive
from compressflow.cache.run_lock import RUN_LOCK_NAME, RunLock

_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})
_TAKEN_ERRNOS = frozenset({errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR})
_HEX = frozenset("0123456789abcdef")

class Cache(BackendBase):
    """A content-addressed store of stage outputs under ``root`` (created on demand).

    ``log`` receives the messages users should see: damaged entries, lock takeovers, links
    removed, waits for ``cache gc``.
    """

    # Whether runs rehash every entry they read by default (`run --verify`): caches others write to do.
    verify_reads = False

    def __init__(self, root: Path | str, *, log: Callable[[str], None] | None = None):
        self.root = Path(root)
        self._log = log or logging.getLogger(__name__).warning
        self._fs = LocalFS()
        self._refs = RefStore(self.root / "refs", self._fs, self._log)
        self._run_lock = RunLock(self.root / "locks" / RUN_LOCK_NAME, log=self._log)
        self._using = False

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    @property
    def local_root(self) -> Path:
        """The cache's own folder: this machine's state (file hashes) lives there too."""
        return self.root

    # ------------------------------------------------------------------------------ the run lock

    def close(self) -> None:
        """Stop using the cache: release this object's share of the run lock (``cache gc`` waits for it)."""
        if self._using:
            self._using = False
            self._run_lock.release_shared()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown; the OS releases the lock anyway
            pass

    def exclusive(self, *, wait: bool = True, on_wait: Callable[[str], None] | None = None):
        """A context in which no other process uses the cache: what :meth:`gc` holds while it removes.

        While runs use the cache, waits (telling ``on_wait``, default ``log``, which) or, without
        ``wait``, raises :class:`~compressflow.cache.run_lock.CacheInUse` (exit status 2) naming them.
        Hold it around computing what to keep, too: a run started meanwhile waits.
        """
        self._fix_links_above(self.root / "locks" / RUN_LOCK_NAME, outcome="removing the link")
        return self._run_lock.exclusive(wait=wait, on_wait=on_wait)

    def use(self) -> None:
        """Take this object's share of the run lock now (once; creating the cache folder if need be).

        Done by the first call that names an entry; until :meth:`close`, ``cache gc`` waits.

        NOTE: even a plan of a fresh cache takes it: the run that follows writes entries that its
        later stages read, and gc must not slip in between.
        """
        if self._using:
            return
        self._fix_links_above(self.root / "locks" / RUN_LOCK_NAME, outcome="removing the link")
        self._run_lock.acquire_shared(on_wait=self._log)
        self._using = True

    # ------------------------------------------------------------------------------ links

    def _link_above(self, path: Path) -> Path | None:
        """The first symbolic link among the folders between the root and ``path`` (the root may be one)."""
        current = self.root
        for part in path.relative_to(self.root).parts[:-1]:
            current = current / part
            if self._fs.is_link(current):
                return current
            if not self._fs.exists(current):
                return None
        return None

    def _fix_links_above(self, path: Path, *, outcome: str) -> None:
        """Report and remove each link between the root and ``path`` (the link only, never its target)."""
        while (link := self._link_above(path)) is not None:
            self._report_link(link, outcome)
            self._unlink(link)

    def _report_link(self, link: Path, outcome: str) -> None:
        self._log(f"the cache folder {self._shown(link)} is a symbolic link (to {_link_target(link)}); the "
                  f"cache never follows links out of its folder: {outcome} (what it points to is left alone)")

    def _unlink(self, link: Path) -> None:
        try:
            if self._fs.is_link(link):
                os.unlink(link)  # NOTE: unlink never removes a directory, so a racing mkdir is safe
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _shown(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _foreign_links(self) -> list[Path]:
        """Links where the cache's own folders and files belong: its top folders and what they hold."""
        tops = [self._entries_root, self.root / "locks", self.root / "refs"]
        found = [top for top in tops if self._fs.is_link(top)]
        for top in tops:
            if self._fs.is_dir(top):
                found += [top / name for name in self._fs.list_names(top) if self._fs.is_link(top / name)]
        return found

    @property
    def _entries_root(self) -> Path:
        return self.root / "entries"

    # ------------------------------------------------------------------------------ reading

    def entry_dir(self, key: str) -> Path:
        """Where the entry of ``key`` lives: ``root/entries/<key[:2]>/<key>``. Rejects non-keys."""
        check_key(key)
        self.use()
        return self._entries_root / key[:2] / key

    def status(self, key: str) -> Status:
        """``hit``, ``miss`` or ``damaged``, without hashing and without changing any entry.

        A symbolic link on the way to the entry (``entries``, its shard) makes it ``damaged``.
        """
        path = self.entry_dir(key)
        if self._link_above(path) is not None:
            return "damaged"
        if not self._fs.exists(path):
            return "miss"
        if check_entry(self._fs, path, key, verify=False).ok:
            return "hit"
        return "damaged" if self._fs.exists(path) else "miss"

    def lookup(self, key: str, *, stage: str, verify: bool = False) -> CacheEntry | None:
        """The entry of ``key``, or None on a miss.

        The entry's files must be exactly those of its manifest, with their sizes; with
        ``verify`` their sha256 too. A damaged entry is reported through ``log`` (naming
        ``stage``), removed and treated as a miss: this never raises for one. Call it
        under :meth:`lock` when acting on the answer.
        """
        path = self.entry_dir(key)
        self._fix_links_above(path, outcome="removing the link and recomputing what it held")
        if not self._fs.exists(path):
            return None
        check = check_entry(self._fs, path, key, verify=verify)
        if check.ok:
            return _entry_from(key, path, check)
        if self._fs.exists(path):
            self._report_and_remove(key, path, check, stage=stage, outcome="removing it and recomputing")
        return None

    def read_entry(self, key: str) -> CacheEntry:
        """The entry of ``key`` (structure checked, no hashing); CacheError if absent or damaged."""
        path = self.entry_dir(key)
        self._fix_links_above(path, outcome="removing the link")
        if not self._fs.exists(path):
            raise CacheError(f"no cache entry for key {short_key(key)} under {self.root}")
        check = check_entry(self._fs, path, key, verify=False)
        if not check.ok:
            raise CacheError(f"cache entry {short_key(key)} is damaged: {check.summary()}")
        return _entry_from(key, path, check)

    def entry_metadata(self, key: str, names: Iterable[str]) -> dict[str, bytes]:
        """The bytes of the files ``names`` of the entry of ``key`` that it holds, and no other file.

        For records and listings: e.g. ``artifact.json`` and ``metrics.json`` without the model files.
        Each one read is checked against its manifest record; {} when there is no valid entry.
        """
        try:
            entry = self.read_entry(key)
        except CacheError:
            return {}
        return read_listed_files(entry.files, names, lambda relative: entry.file(relative).read_bytes())

    # ------------------------------------------------------------------------------ locking

    @contextmanager
    def lock(self, key: str, *, stage: str, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the lock of ``key`` (blocks while another process holds it).

        ``on_wait`` is told once, with a message naming the holder (pid, host, stage, since
        when), if we have to wait. A lock left by a process that died is taken over and the
        takeover reported through ``log``. Not re-entrant.
        """
        key_lock = self._key_lock(key, stage)
        key_lock.acquire(on_wait=on_wait)
        try:
            yield
        finally:
            key_lock.release()

    def _key_lock(self, key: str, stage: str) -> KeyLock:
        check_key(key)
        self.use()
        self._fix_links_above(self.root / "locks" / f"{key}.lock", outcome="removing the link")
        return KeyLock(self.root / "locks" / f"{key}.lock", stage=stage,
                       subject=f"stage '{stage}' (key {short_key(key)})", log=self._log)

    # ------------------------------------------------------------------------------ writing

    @contextmanager
    def writer(self, key: str, *, stage: str, key_doc: dict[str, Any], replace: bool = False) -> Iterator[Path]:
        """Yield an empty directory to write the entry's files into; commit them on normal exit.

        The directory is beside the entry's final place. On exit: ``key.json`` is written,
        every file hashed, made read-only and flushed, ``manifest.json`` written last, and the
        directory renamed into place. If a valid entry got there first, ours is discarded, unless
        ``replace`` (a forced recompute) says to put ours in its place.
        On any exception the directory is removed and the exception re-raised; a failure of
        the storage (disk full, permission denied, read-only file system) becomes a
        :class:`~compressflow.errors.CacheError` and leaves other entries untouched.
        """
        check_key(key)
        try:
            key_doc_bytes = encode_json(key_doc)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the key document of stage '{stage}' is not plain JSON: {exc}") from exc
        final = self.entry_dir(key)
        temp = self._make_temp_dir(key)
        committing = False
        try:
            yield temp
            committing = True
            self._commit(temp, final, key, stage, key_doc_bytes, replace)
        except OSError as exc:
            self._discard_quietly(temp)
            if committing or self._is_storage_failure(exc):
                raise self._write_error(exc) from exc
            raise
        except BaseException:
            self._discard_quietly(temp)
            raise

    def _make_temp_dir(self, key: str) -> Path:
        temp = self.entry_dir(key).parent / temp_entry_name(key)
        self._fix_links_above(temp, outcome="removing the link and writing the entry inside the cache")
        try:
            self._fs.make_dirs(temp.parent)
            self._clean_stale_temps(only_key=key)  # what a killed earlier attempt left behind
            self._fs.make_new_dir(temp)
        except OSError as exc:
            raise self._write_error(exc) from exc
        return temp

    def _commit(self, temp: Path, final: Path, key: str, stage: str, key_doc_bytes: bytes,
                replace: bool = False) -> None:
        for name in RESERVED_NAMES:
            if self._fs.exists(temp / name):
                raise CacheError(f"stage '{stage}' wrote '{name}' into its output directory; "
                                 "that name is reserved by the cache")
        self._fs.write_new_file(temp / KEY_DOC_NAME, key_doc_bytes)
        scan = self._fs.scan_tree(temp)
        if scan.others:
            raise CacheError(f"stage '{stage}' left a symlink or special file in its output "
                             f"({scan.others[0]}); the cache stores regular files and directories only")
        if ARTIFACT_NAME in scan.files:
            named = named_path_problems(self._fs.read_bytes(temp / ARTIFACT_NAME),
                                        {"files": scan.files, "dirs": scan.dirs})
            if named:
                raise CacheError(f"stage '{stage}' declared an output the cache cannot hold: {named[0]}")
        digests = {}
        for relative in sorted(scan.files):
            self._fs.make_read_only(temp / relative)
            digests[relative] = self._fs.hash_file(temp / relative, sync=True)
        for relative in sorted(scan.dirs, key=lambda path: path.count("/"), reverse=True):
            self._fs.sync_dir(temp / relative)
        manifest = build_manifest(key=key, stage=stage, created=time.time(), files=digests, dirs=scan.dirs)
        # The commit point: until manifest.json exists, the directory is not an entry.
        self._fs.atomic_write_bytes(temp / MANIFEST_NAME, encode_json(manifest), read_only=True)
        if replace:
            self._remove_entry(final, key)
        self._publish(temp, final, key, stage)

    def _publish(self, temp: Path, final: Path, key: str, stage: str) -> None:
        for _attempt in range(3):
            try:
                self._fs.rename_dir(temp, final)
            except OSError as exc:
                if exc.errno not in _TAKEN_ERRNOS:
                    raise
            else:
                self._flush_publication(final)
                return
            existing = check_entry(self._fs, final, key, verify=False)
            if existing.ok:
                self._fs.remove_tree(temp)  # another process committed the same key first
                return
            self._report_and_remove(key, final, existing, stage=stage, outcome="replacing it")
        raise CacheError(f"cannot commit the cache entry of stage '{stage}' at {final}: "
                         "something keeps putting another file there")

    def _flush_publication(self, final: Path) -> None:
        try:
            self._fs.sync_dir(final.parent)
            self._fs.sync_dir(final.parent.parent)
        except OSError as exc:
            # NOTE: the entry is complete and visible; only its survival of a power cut is in doubt,
            # and a lost rename leaves a plain miss, so this is not worth failing the stage over.
            self._log(f"could not flush the cache directory {final.parent}: {exc.strerror or exc}")

    def _is_storage_failure(self, exc: OSError) -> bool:
        """Whether an OSError raised while a stage wrote its output was the cache's storage failing."""
        names_a_path = isinstance(exc.filename, (str, os.PathLike))
        in_cache = names_a_path and _is_within(Path(exc.filename), self.root)
        if exc.errno in _PERMISSION_ERRNOS:
            return in_cache
        return exc.errno in _STORAGE_ERRNOS and (in_cache or not names_a_path)

    def _write_error(self, exc: OSError) -> CacheError:
        return self._storage_error("write", exc)

    def _discard_quietly(self, path: Path) -> None:
        try:
            self._fs.remove_tree(path)
        except OSError as exc:
            self._log(f"could not remove the unfinished cache entry {path}: {exc.strerror or exc}")

    # ------------------------------------------------------------------------------ maintenance

    def _stored_checks(self, *, verify: bool) -> Iterator[tuple[str, Path, EntryCheck]]:
        for key, path, misplaced in self._entry_dirs():
            check = self._check_stored(key, path, misplaced, verify=verify)
            if check.ok or self._fs.exists(path):  # NOTE: one removed meanwhile is no problem
                yield key, path, check

    def _entry_location(self, key: str, where: Path) -> Path:
        return where

    def _stored_size(self, where: Path, check: EntryCheck) -> int:
        return check.scan.total_size if check.scan else self._fs.tree_size(where)

    def _stored_time(self, where: Path) -> float:
        return self._fs.modified_time(where)

    def _remove_damaged(self, key: str, where: Path, check: EntryCheck) -> None:
        self._remove_entry(where, key)

    def _layout_problems(self, *, remove: bool) -> list[EntryProblem]:
        """A symbolic link where one of the cache's folders belongs (its ``key``: the link's path in the
        cache, e.g. ``entries/ab``); nothing behind it is read, and ``remove`` removes the link only."""
        problems = []
        for link in self._foreign_links():
            problems.append(EntryProblem(key=self._shown(link), stage=UNKNOWN_STAGE,
                                         message=f"a symbolic link (to {_link_target(link)}) where the cache's "
                                                 "own folder or file belongs; the cache never follows it"))
            if remove:
                self._report_link(link, "removing the link")
                self._unlink(link)
        return problems

    def _collect(self, keep: set[str]) -> tuple[int, int]:
        """Also stale temporary directories (their bytes counted), and links where the cache's folders
        belong (the links only, reported)."""
        removed = freed = 0
        for link in self._foreign_links():
            self._report_link(link, "removing the link")
            self._unlink(link)
        for key, path, misplaced in self._entry_dirs():
            if key in keep and not misplaced:
                continue
            key_lock = self._key_lock(key, "cache gc")
            if not key_lock.acquire(blocking=False):
                continue
            try:
                freed += self._remove_entry(path, key)
                removed += 1
            finally:
                key_lock.release(remove_file=not self._fs.exists(self.entry_dir(key)))
        freed += self._clean_stale_temps()[1]
        return removed, freed

    def clean_stale_tmp(self) -> int:
        """Remove temporary directories and files left by dead processes of this host; return how many.

        Those of live processes (including this one) are never touched.
        """
        return self._clean_stale_temps()[0]

    def _clean_stale_temps(self, *, only_key: str | None = None) -> tuple[int, int]:
        """Remove temporaries of dead processes of this host (of one key only, if given)."""
        if only_key is not None:
            parents = [self.entry_dir(only_key).parent]
        else:
            parents = [self._entries_root / shard for shard in self._real_names(self._entries_root)]
            parents += [self.root / "refs" / scope for scope in self._real_names(self.root / "refs")]
        count = freed = 0
        for parent in parents:
            if self._fs.is_link(parent) or self._link_above(parent / "-") is not None:
                continue  # NOTE: never clean up behind a link: what is there is not the cache's
            for name in self._fs.list_names(parent):
                owner = temp_owner(name)
                if owner is None or (only_key is not None and only_key not in name):
                    continue
                if owner[1] != host_tag() or process_is_alive(owner[0]):
                    continue
                size = self._fs.tree_size(parent / name)
                try:
                    self._fs.remove_tree(parent / name)
                except FileNotFoundError:
                    continue  # another cleaner got there first
                count += 1
                freed += size
        return count, freed

    def _real_names(self, folder: Path) -> list[str]:
        """Names in ``folder`` that are not symbolic links; none if ``folder`` is one."""
        if self._fs.is_link(folder):
            return []
        return [name for name in self._fs.list_names(folder) if not self._fs.is_link(folder / name)]

    def _entry_dirs(self) -> Iterator[tuple[str, Path, bool]]:
        """(key, path, stored under the wrong shard) for every entry-like directory (links not followed)."""
        for shard in self._real_names(self._entries_root):
            if len(shard) != 2 or not set(shard) <= _HEX:
                continue
            for name in self._fs.list_names(self._entries_root / shard):
                if is_key(name):
                    yield name, self._entries_root / shard / name, name[:2] != shard

    def _check_stored(self, key: str, path: Path, misplaced: bool, *, verify: bool) -> EntryCheck:
        check = check_entry(self._fs, path, key, verify=verify)
        if misplaced:
            check.problems.insert(0, f"the entry is stored under {path.parent.name}/ instead of {key[:2]}/")
        return check

    def _remove_entry(self, path: Path, key: str) -> int:
        """Remove an entry; return the bytes freed. Readers never see it half-removed."""
        if self._link_above(path) is not None:
            return 0  # NOTE: behind a link is not the cache's; the link is removed instead
        doomed = path.parent / doomed_entry_name(key)
        try:
            self._fs.rename_dir(path, doomed)
        except FileNotFoundError:
            return 0
        size = self._fs.tree_size(doomed)
        self._fs.remove_tree(doomed)
        return size

    # ------------------------------------------------------------------------------ refs

    def _prepare_ref_write(self, scope: str, stage: str, variant: str) -> None:
        self._fix_links_above(self._refs.path_for(scope, stage), outcome="removing the link")
        self._fix_links_above(self._refs.variant_path_for(scope, stage, variant), outcome="removing the link")

    def _ref_readable(self, scope: str, stage: str) -> bool:
        return self._link_above(self._refs.path_for(scope, stage)) is None  # NOTE: set_ref removes the link


def _entry_from(key: str, path: Path, check: EntryCheck) -> CacheEntry:
    manifest = check.manifest
    return CacheEntry(key=key, path=path, stage=manifest["stage"], manifest=manifest,
                      key_doc=check.key_doc, created=float(manifest["created"]))


def _link_target(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return "?"


def _is_within(path: Path, root: Path) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) == os.path.abspath(root)
    except ValueError:
        return False
