"""What ``cache gc`` keeps: the keys remembered by refs and the keys the given pipelines plan.

By default every remembered ref is kept, whichever pipeline, project or ``--set`` variant wrote it:
a cache shared by several projects loses only what nothing remembers any more (entries an edit or
a newer run replaced). A *scope* narrows that: the refs of the scoped pipelines are dropped and only
their current plans are kept, so their old ``--set`` variants go while other pipelines' stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GcSelection:
    """The keys to keep, and why: planned by a given pipeline or remembered by another ref."""

    keep: set[str] = field(default_factory=set)
    planned: set[str] = field(default_factory=set)
    remembered: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=set)
    all_scopes: bool = False


def select_keep(cache, pipelines, *, scoped: bool, plan_pipelines: bool = True,
                all_scopes: bool = False) -> GcSelection:
    """The keys ``cache gc`` keeps on ``cache``.

    ``pipelines`` (loaded) are planned unless ``plan_pipelines`` is false; their current keys are
    kept. With ``scoped``, refs of those pipelines' scopes are not kept (only their plans are);
    with ``all_scopes`` no ref is kept at all.
    """
    from compressflow.executor.plan import make_plan

    selection = GcSelection(scopes={p.name for p in pipelines} if scoped else set(), all_scopes=all_scopes)
    if plan_pipelines:
        for pipeline in pipelines:
            selection.planned |= {s.key.key for s in make_plan(pipeline, cache).stages.values()}
    if not all_scopes:
        selection.remembered = {ref.key for ref in cache.remembered_refs() if ref.scope not in selection.scopes}
    selection.keep = selection.planned | selection.remembered
    return selection
