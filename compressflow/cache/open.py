"""Open the cache at a location: a local folder, or any fsspec URL.

* a path, or a ``file://`` URL: :class:`~compressflow.cache.local.Cache` (``flock`` locks,
  atomic renames; also right for a shared file system mounted at the same path everywhere);
* any other URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``):
  :class:`~compressflow.cache.remote.RemoteCache`, with a local read-through copy.

Both offer the same methods, so the executor does not care which one it has. :class:`CacheSpec`
(from ``cache.spec()``) is how a worker process or machine opens the same cache as the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a URL other than ``file://``."""
    text = os.fspath(location)
    if "://" not in text:
        return False
    return text.split("://", 1)[0].lower() not in ("file", "local")


def local_path(location: str | os.PathLike[str]) -> Path:
    """The folder a local location names (``file://`` stripped, ``~`` expanded, absolute)."""
    text = os.fspath(location)
    if "://" in text:
        text = text.split("://", 1)[1]
    return Path(text).expanduser().resolve()


def open_cache_at(location: str | os.PathLike[str], *, log: Callable[[str], None] | None = None,
                  local_dir: Path | None = None, storage_options: dict[str, Any] | None = None):
    """The cache at ``location`` (a folder or a URL).

    ``local_dir`` is the read-through copy of a remote cache (default: see
    :func:`~compressflow.cache.remote.local_copy_dir`); ``storage_options`` go to fsspec.
    """
    if is_remote(location):
        from compressflow.cache.remote import RemoteCache

        return RemoteCache(os.fspath(location), log=log, local_dir=local_dir, storage_options=storage_options)
    from compressflow.cache.local import Cache

    return Cache(local_path(location), log=log)


@dataclass(frozen=True)
class CacheSpec:
    """Everything needed to open a cache again elsewhere (picklable): what a stage's worker opens.

    ``storage_options`` go to fsspec; ``local_dir`` is the read-through copy a run asked for (None: each
    machine's default); ``verify_reads`` overrides the cache's own default when not None.
    """

    location: str
    storage_options: dict[str, Any] | None = None
    local_dir: str | None = None
    verify_reads: bool | None = None

    @classmethod
    def of(cls, where: "CacheSpec | str | os.PathLike[str]") -> "CacheSpec":
        """``where`` as a spec: a spec as it is, a folder or a URL with no options."""
        return where if isinstance(where, CacheSpec) else cls(os.fspath(where))

    def open(self, *, log: Callable[[str], None] | None = None):
        """The cache this spec names."""
        cache = open_cache_at(self.location, log=log, local_dir=Path(self.local_dir) if self.local_dir else None,
                              storage_options=self.storage_options)
        if self.verify_reads is not None:
            cache.verify_reads = self.verify_reads
        return cache
