"""What the cache backends share, so that each keeps only what its storage does differently.

:class:`BackendBase` holds the logic of the :class:`~compressflow.cache.backend.CacheBackend`
contract that does not depend on where entries are stored: how damage is reported and the
damaged entry removed, ``verify_all`` and ``entries`` over the stored entries, ``gc`` under the
exclusive run lock, refs and their errors, and how the cache is reopened elsewhere (``spec``).
A backend gives the storage-specific operations below (the ``_``-methods that raise here).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator

from compressflow.errors import CacheError
from compressflow.cache.entries import UNKNOWN_STAGE, EntryInfo, EntryProblem
from compressflow.cache.manifest import EntryCheck
from compressflow.cache.names import short_key
from compressflow.cache.refs import RefRecord, RefStore
from compressflow.cache.spec import CacheSpec


def damage_message(key: str, stage: str | None, summary: str, outcome: str) -> str:
    """``cache entry for stage 'x' (key abc…) is damaged: <what>; <outcome>``."""
    who = f"stage '{stage}'" if stage and stage != UNKNOWN_STAGE else "an unknown stage"
    return f"cache entry for {who} (key {short_key(key)}) is damaged: {summary}; {outcome}"


class BackendBase:
    """The shared half of a cache backend (see the module's docstring)."""

    root: Any
    verify_reads = False
    _log: Callable[[str], None]
    _refs: RefStore

    # ------------------------------------------------------------------ storage-specific operations

    def _stored_checks(self, *, verify: bool) -> Iterator[tuple[str, Any, EntryCheck]]:
        """(key, where it is stored, its check) of every committed or damaged entry; ``verify`` rehashes."""
        raise NotImplementedError

    def _layout_problems(self, *, remove: bool) -> list[EntryProblem]:
        """What is wrong with the cache's own folders (not an entry's); with ``remove``, fixed."""
        return []

    def _remove_damaged(self, key: str, where: Any, check: EntryCheck) -> None:
        """Remove the damaged entry of ``key`` stored at ``where`` (OSError if the storage refuses)."""
        raise NotImplementedError

    def _entry_location(self, key: str, where: Any) -> Any:
        """Where the entry of ``key`` is, for messages and ``cache ls`` (a folder, a URL)."""
        raise NotImplementedError

    def _stored_size(self, where: Any, check: EntryCheck) -> int:
        """Bytes stored for the entry at ``where``: what removing it frees."""
        raise NotImplementedError

    def _stored_time(self, where: Any) -> float:
        """When the entry at ``where`` was stored, if its manifest cannot say (0.0: unknown)."""
        return 0.0

    def _collect(self, keep: set[str]) -> tuple[int, int]:
        """Remove what ``gc`` removes, the run lock held exclusively; (entries removed, bytes freed)."""
        raise NotImplementedError

    def _reopen_options(self) -> dict[str, Any]:
        """What :class:`CacheSpec` needs besides the location to open this cache again."""
        return {}

    def _ref_readable(self, scope: str, stage: str) -> bool:
        """Whether the ref of ``stage`` may be read (a local cache never reads through a link)."""
        return True

    def _prepare_ref_write(self, scope: str, stage: str, variant: str) -> None:
        """Make the places of the refs of ``stage`` writable (a local cache removes links there)."""

    def exclusive(self, *, wait: bool = True, on_wait: Callable[[str], None] | None = None):
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    def spec(self) -> CacheSpec:
        """How another process or machine opens this cache (a picklable :class:`CacheSpec`)."""
        return CacheSpec(str(self.root), verify_reads=self.verify_reads, **self._reopen_options())

    def _storage_error(self, verb: str, exc: OSError) -> CacheError:
        """``cannot <verb> the cache at <root>: <reason>`` for a failure of the storage."""
        if exc.strerror:
            reason = exc.strerror
        else:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return CacheError(f"cannot {verb} the cache at {self.root}: {reason}")

    def _report_and_remove(self, key: str, where: Any, check: EntryCheck, *, stage: str | None,
                           outcome: str) -> None:
        """Log what is wrong with an entry and remove it; a removal the storage refuses is logged too."""
        self._log(damage_message(key, stage, check.summary(), outcome))
        try:
            self._remove_damaged(key, where, check)
        except OSError as exc:
            self._log(f"could not remove the damaged cache entry {self._entry_location(key, where)}: "
                      f"{exc.strerror or exc}")

    def entries(self) -> list[EntryInfo]:
        """Every entry with its stage, size, creation time and whether it is damaged (no hashing)."""
        infos = []
        for key, where, check in self._stored_checks(verify=False):
            manifest = check.manifest
            infos.append(EntryInfo(key=key, path=self._entry_location(key, where), stage=check.stage or UNKNOWN_STAGE,
                                   size=self._stored_size(where, check),
                                   created=float(manifest["created"]) if manifest else self._stored_time(where),
                                   damaged=not check.ok, problem=check.summary() or None))
        return infos

    def verify_all(self, remove: bool = False) -> list[EntryProblem]:
        """Re-hash every entry; return what is wrong. With ``remove``, remove the damaged ones (reported)."""
        problems = self._layout_problems(remove=remove)
        for key, where, check in self._stored_checks(verify=True):
            if check.ok:
                continue
            problems.append(EntryProblem(key=key, stage=check.stage or UNKNOWN_STAGE, message=check.summary()))
            if remove:
                self._report_and_remove(key, where, check, stage=check.stage, outcome="removing it")
        return problems

    def gc(self, keep: Iterable[str], *, wait: bool = True,
           on_wait: Callable[[str], None] | None = None) -> tuple[int, int]:
        """Remove every entry whose key is not in ``keep`` and what unfinished writes left behind.

        Holds the run lock exclusively (see ``exclusive``: waits for live runs, or raises
        :class:`~compressflow.cache.run_lock.CacheInUse` without ``wait``); entries whose lock
        another process holds are left alone. Returns (entries removed, bytes freed).
        """
        with self.exclusive(wait=wait, on_wait=on_wait):
            return self._collect(set(keep))

    # ------------------------------------------------------------------ refs

    def set_ref(self, scope: str, stage: str, key: str, key_doc: dict[str, Any], variant: str = "") -> None:
        """Remember ``key`` (and its key document) as the last one used for ``stage`` of ``scope``,
        and as the one of its ``variant`` (the run's overrides, ``""`` for none)."""
        try:
            self._prepare_ref_write(scope, stage, variant)
            self._refs.set(scope, stage, key, key_doc, variant)
        except OSError as exc:
            raise self._storage_error("write", exc) from exc

    def remembered_refs(self) -> list[RefRecord]:
        """Every remembered key (last ones and each variant's), for ``cache gc`` to keep."""
        try:
            return self._refs.remembered()
        except OSError as exc:
            raise self._storage_error("read", exc) from exc

    def get_ref(self, scope: str, stage: str) -> dict[str, Any] | None:
        """The record set by :meth:`set_ref` (``key``, ``key_doc``, ``updated``...), or None."""
        if not self._ref_readable(scope, stage):
            return None
        try:
            return self._refs.get(scope, stage)
        except OSError as exc:
            raise self._storage_error("read", exc) from exc
