"""What an export's sidecar says of the model's history: the search that chose it, the library versions.

Both come from the export's lineage (every stage upstream, with its cache key): the search record is
what the nearest ``search`` stage upstream committed (its settings, its trials and the chosen
trial's params and metrics), and the versions are those of every library in the keys of the
lineage's stages and of the chosen trial's stages, so a model quantized by LiteRT Quantizer lists
``litert-quantizer`` even when the export itself does not import it.
"""

from __future__ import annotations

from typing import Any

from compressflow.errors import StageFailed

SEARCH_TYPE = "search"
SEARCH_META = "search"  # where a search stage's output keeps its record


def search_record(ctx, source) -> dict[str, Any] | None:
    """The record of the search nearest the exported model (``source``) upstream, or None without one."""
    if SEARCH_META in source.meta:
        return source.meta[SEARCH_META]
    for item in reversed(ctx.lineage):
        if item.get("type") != SEARCH_TYPE:
            continue
        artifact = ctx.upstream(item["stage"], item["key"]) if ctx.upstream is not None else None
        if artifact is None:
            raise StageFailed(f"export stage {ctx.name!r}: search stage {item['stage']!r} upstream is no longer "
                              "in the cache; run again to recompute it")
        return artifact.meta.get(SEARCH_META)
    return None


def lineage_versions(ctx, search: dict[str, Any] | None) -> dict[str, str | None]:
    """The versions of every library in the keys of the export, its lineage and the search's chosen trial."""
    versions: dict[str, str | None] = {}
    for item in ctx.lineage:
        versions.update(item.get("versions") or {})
    if search is not None:
        versions.update(search.get("versions") or {})
    versions.update(ctx.versions)
    return dict(sorted(versions.items()))
