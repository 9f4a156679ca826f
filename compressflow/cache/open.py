"""Open the cache at a location: a local folder, or any fsspec URL.

* a path, or a ``file://`` URL: :class:`~compressflow.cache.local.Cache` (``flock`` locks,
  atomic renames; also right for a shared file system mounted at the same path everywhere);
* any other URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``):
  :class:`~compressflow.cache.remote.RemoteCache`, with a local read-through copy.

Both implement :class:`~compressflow.cache.backend.CacheBackend`, so the executor does not care which
one it has; this is the only module that knows both. :func:`open_spec` opens a
:class:`~compressflow.cache.spec.CacheSpec` (from ``cache.spec()``): how a worker process or machine
opens the same cache as the run. A new backend (``gs://``, ``az://`` through fsspec) implements the
protocol and is chosen here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from compressflow.cache.backend import CacheBackend
from compressflow.cache.spec import CacheSpec

__all__ = ["CacheSpec", "is_remote", "local_path", "open_cache_at", "open_spec"]


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
                  local_dir: Path | None = None, storage_options: dict[str, Any] | None = None) -> CacheBackend:
    """The cache at ``location`` (a folder or a URL).

    ``local_dir`` is the read-through copy of a remote cache (default: see
    :func:`~compressflow.cache.remote.local_copy_dir`); ``storage_options`` go to fsspec.
    """
    if is_remote(location):
        from compressflow.cache.remote import RemoteCache

        return RemoteCache(os.fspath(location), log=log, local_dir=local_dir, storage_options=storage_options)
    from compressflow.cache.local import Cache

    return Cache(local_path(location), log=log)


def open_spec(spec: CacheSpec | str | os.PathLike[str], *, log: Callable[[str], None] | None = None) -> CacheBackend:
    """The cache ``spec`` names (a :class:`CacheSpec`, a folder or a URL), as the run that made it opened it."""
    spec = CacheSpec.of(spec)
    cache = open_cache_at(spec.location, log=log, local_dir=Path(spec.local_dir) if spec.local_dir else None,
                          storage_options=spec.storage_options)
    if spec.verify_reads is not None:
        cache.verify_reads = spec.verify_reads
    return cache
