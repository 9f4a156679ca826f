"""The one cache contract: what the executor, run records, reports and commands may ask of a cache.

:class:`CacheBackend` lists every method and attribute that code outside ``compressflow/cache``
uses. :class:`~compressflow.cache.local.Cache` (a local folder) and
:class:`~compressflow.cache.remote.RemoteCache` (an fsspec URL with a local read-through copy)
implement it, with the same signatures (``tests/cache/test_backend_contract.py`` checks), sharing
what does not depend on the storage through :class:`~compressflow.cache.base.BackendBase`. A
new backend (a ``gs://`` or ``az://`` prefix, say) implements this protocol and is chosen in
:mod:`compressflow.cache.open`; nothing else changes.

Entries are named by their key (64 lowercase hex characters; anything else raises ValueError).
A damaged entry is never handed out: it is reported through the cache's log, removed and
treated as a miss.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from compressflow.cache.entries import CacheEntry, EntryInfo, EntryProblem, Status
from compressflow.cache.refs import RefRecord
from compressflow.cache.spec import CacheSpec


class CacheBackend(Protocol):
    """A content-addressed store of stage outputs (see the module's docstring)."""

    #: Where the cache is: a folder (:class:`~pathlib.Path`) or a URL (``str``), for messages and records.
    root: Any
    #: Whether runs rehash every entry they read by default (``run --verify``): caches others write to do.
    verify_reads: bool

    @property
    def local_root(self) -> Path:
        """A folder of this machine that the cache owns: its files, or its read-through copy.

        Machine-local state kept beside the cache (remembered file hashes) goes there.
        """

    def spec(self) -> CacheSpec:
        """How another process or machine opens this same cache (picklable; see ``open_spec``)."""

    def close(self) -> None:
        """Stop using the cache: release this object's share of the run lock (``cache gc`` waits for it)."""

    # ------------------------------------------------------------------ reading

    def status(self, key: str) -> Status:
        """``hit``, ``miss`` or ``damaged``, without hashing, downloading or changing anything."""

    def lookup(self, key: str, *, stage: str, verify: bool = False) -> CacheEntry | None:
        """The entry of ``key``, or None on a miss; a damaged entry is reported, removed and a miss.

        The entry's files must be those of its manifest, with their sizes; with ``verify`` their
        sha256 too (a remote entry is then brought into the local copy). Call it under :meth:`lock`
        when acting on the answer.
        """

    def entry_dir(self, key: str) -> Path:
        """The local folder of the entry of ``key``, whose files a stage reads.

        A remote backend downloads (and hashes) a committed entry first; with no valid entry the
        path is returned as it is, possibly absent.
        """

    def entry_metadata(self, key: str, names: Iterable[str]) -> dict[str, bytes]:
        """The bytes of the small files ``names`` (``artifact.json``, ``metrics.json``...) the entry holds.

        Each checked against its manifest record, none of the entry's other files read or
        downloaded; {} without a valid entry.
        """

    # ------------------------------------------------------------------ writing

    def lock(self, key: str, *, stage: str,
             on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[None]:
        """A context holding the lock of ``key`` against every other process (of any machine sharing it).

        ``on_wait`` is told once, naming the holder, if it has to wait; a lock whose holder died is
        taken over and the takeover logged. Not re-entrant.
        """

    def writer(self, key: str, *, stage: str, key_doc: dict[str, Any],
               replace: bool = False) -> AbstractContextManager[Path]:
        """A context yielding an empty local folder for the entry's files, committed on normal exit.

        The entry appears complete or not at all; if a valid entry got there first, ours is
        discarded unless ``replace``. On an exception nothing is committed; a failure of the
        storage becomes a :class:`~compressflow.errors.CacheError`. Call it under :meth:`lock`.
        """

    # ------------------------------------------------------------------ refs

    def set_ref(self, scope: str, stage: str, key: str, key_doc: dict[str, Any], variant: str = "") -> None:
        """Remember ``key`` and its key document as the last of ``stage`` in pipeline ``scope``, and of
        its ``variant`` (the run's overrides); CacheError if the storage refuses."""

    def get_ref(self, scope: str, stage: str) -> dict[str, Any] | None:
        """The record :meth:`set_ref` wrote last (``key``, ``key_doc``, ``updated``...), or None."""

    def remembered_refs(self) -> list[RefRecord]:
        """Every remembered key (last ones and each variant's): what ``cache gc`` keeps by default."""

    # ------------------------------------------------------------------ maintenance

    def entries(self) -> list[EntryInfo]:
        """Every stored entry with its stage, stored size, creation time and whether it is damaged (no hashing)."""

    def verify_all(self, remove: bool = False) -> list[EntryProblem]:
        """Rehash every entry; what is wrong. With ``remove``, the damaged ones are removed (and logged)."""

    def exclusive(self, *, wait: bool = True,
                  on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[Any]:
        """A context in which no run of this machine uses the cache (what :meth:`gc` holds).

        While runs use it, waits (telling ``on_wait``) or, without ``wait``, raises
        :class:`~compressflow.cache.run_lock.CacheInUse` naming them.
        """

    def gc(self, keep: Iterable[str], *, wait: bool = True,
           on_wait: Callable[[str], None] | None = None) -> tuple[int, int]:
        """Remove every entry not in ``keep`` (and leftovers of unfinished writes); (entries removed, bytes freed).

        Entries whose lock another process holds are left alone; runs of this machine are waited for.
        """

    def clean_stale_tmp(self) -> int:
        """Remove what writers of this host that died left behind (never a live process's); how many."""
