"""How a cache is opened again elsewhere: :class:`CacheSpec`, plain picklable data.

Each backend says how it is reopened (``cache.spec()``); :func:`compressflow.cache.open.open_spec`
opens one. Kept apart from both so that no backend imports the module that chooses between them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


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
