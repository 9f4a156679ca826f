"""Open the cache at a location: a local folder, or any fsspec URL.

* a path, or a ``file://`` URL: :class:`~compressflow.executor.cache.Cache` (``flock`` locks,
  atomic renames; also right for a shared file system mounted at the same path everywhere);
* any other URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``):
  :class:`~compressflow.executor.remote_cache.RemoteCache`, with a local read-through copy.

Both offer the same methods, so the executor does not care which one it has.
"""

from __future__ import annotations

import os
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
    :func:`~compressflow.executor.remote_cache.local_copy_dir`); ``storage_options`` go to fsspec.
    """
    if is_remote(location):
        from compressflow.executor.remote_cache import RemoteCache

        return RemoteCache(os.fspath(location), log=log, local_dir=local_dir, storage_options=storage_options)
    from compressflow.executor.cache import Cache

    return Cache(local_path(location), log=log)
