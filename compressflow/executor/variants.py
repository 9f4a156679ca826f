"""Which variant of a pipeline a run is: the values its ``--set`` overrides gave, as one stable text.

Refs remember the last key of every stage per variant, so ``cache gc`` keeps what a ``--set`` rerun
uses while the pipeline as written is rerun too (and forgets what an edit of the file replaced).
"""

from __future__ import annotations

import functools
import json

from compressflow.dsl.located import LocatedDict, LocatedList

_OVERRIDE_FILE = "<--set "


@functools.lru_cache(maxsize=8)  # NOTE: asked once per finished stage; a document may be large
def variant_of(pipeline) -> str:
    """``""`` for the pipeline as written; else ``KEY=VALUE`` of each override, sorted, one per line."""
    found: dict[str, str] = {}
    _collect(getattr(pipeline, "document", None), found)
    return "\n".join(f"{key}={value}" for key, value in sorted(found.items()))


def _collect(container, found: dict[str, str]) -> None:
    if isinstance(container, LocatedDict):
        children = [(container[key], container.value_location(key)) for key in container]
    elif isinstance(container, LocatedList):
        children = [(item, container.item_location(index)) for index, item in enumerate(container)]
    else:
        return
    for value, location in children:
        file = str(getattr(location, "file", ""))
        if file.startswith(_OVERRIDE_FILE):
            key = file[len(_OVERRIDE_FILE):-1]
            found.setdefault(key, json.dumps(value, sort_keys=True, default=str))
        else:
            _collect(value, found)
