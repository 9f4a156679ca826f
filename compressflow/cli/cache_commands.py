"""``compressflow cache ls | verify | gc``."""

from __future__ import annotations

import os
import time
from pathlib import Path

from compressflow.errors import UsageError

EXIT_OK, EXIT_DAMAGED = 0, 1


def _cache_for(args, pipelines):
    from compressflow.api import CACHE_ENV, open_cache
    from compressflow.cache.open import open_cache_at

    if args.cache or not pipelines:
        root = args.cache or os.environ.get(CACHE_ENV) or _nearby_cache(args.cache_command)
        return open_cache_at(root, log=print)
    return open_cache(pipelines[0])


def _nearby_cache(command: str) -> str:
    """The cache of the pipelines here or one folder down (``.compressflow/cache`` beside them);
    a usage error listing them when there are several."""
    from compressflow.runs.lookup import PIPELINE_SUFFIXES, nearby_folders, shown_path

    found = [folder / ".compressflow" / "cache" for folder in nearby_folders()]
    found = [cache for cache in found if cache.is_dir()]
    if len(found) <= 1:
        return str(found[0]) if found else ".compressflow/cache"
    lines, files = [], []
    for cache in found:
        folder = cache.parent.parent
        beside = sorted(p for p in folder.iterdir() if p.suffix in PIPELINE_SUFFIXES and p.is_file())
        files += beside
        lines.append(f"  {shown_path(cache)}  (pipelines: {', '.join(p.name for p in beside) or 'none'})")
    example = shown_path(files[0]) if files else "PIPELINE"
    raise UsageError("\n".join([f"caches of {len(found)} pipeline folders here; pick one with a pipeline file "
                                f"(e.g. `compressflow cache {command} {example}`) or --cache DIR:", *lines]))


def _load_all(paths):
    from compressflow.dsl import load_pipeline

    return [load_pipeline(Path(p)) for p in paths]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run(args) -> int:
    pipelines = _load_all(args.pipelines)
    if args.cache_command == "gc":
        _check_gc_args(args, pipelines)
    cache = _cache_for(args, pipelines)
    if args.cache_command == "ls":
        return _ls(cache)
    if args.cache_command == "verify":
        return _verify(cache, args.remove)
    return _gc(cache, pipelines, args)


def _check_gc_args(args, pipelines) -> None:
    modes = [flag for flag, on in (("--scope", args.scope), ("--unreferenced", args.unreferenced),
                                   ("--only-given", args.only_given)) if on]
    if len(modes) > 1:
        raise UsageError(f"cache gc takes one of --scope, --unreferenced and --only-given, not {' and '.join(modes)}")
    if not pipelines and not args.unreferenced:
        raise UsageError("cache gc needs the pipeline files whose entries to keep, "
                         "e.g. compressflow cache gc pipelines/*.yaml (or --unreferenced --cache DIR "
                         "to remove only entries no run remembers)")


def _ls(cache) -> int:
    entries = cache.entries()
    for e in sorted(entries, key=lambda e: e.created):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created)) if e.created else "?"
        flag = "  DAMAGED" if e.damaged else ""
        print(f"{e.key[:12]}  {e.stage:<28} {_size(e.size):>10}  {when}{flag}")
    print(f"{len(entries)} entries in {cache.root}")
    return EXIT_OK


def _verify(cache, remove: bool) -> int:
    problems = cache.verify_all(remove=remove)
    for p in problems:
        print(f"DAMAGED {p.key[:12]} (stage {p.stage}): {p.message}" + (" - removed" if remove else ""))
    total = len(cache.entries()) + (len(problems) if remove else 0)
    print(f"verified {total} entries in {cache.root}: {len(problems)} damaged")
    return EXIT_DAMAGED if problems and not remove else EXIT_OK


def _gc(cache, pipelines, args) -> int:
    from compressflow.cli.gc_selection import select_keep

    def keep():
        return select_keep(cache, pipelines, scoped=args.scope or args.only_given,
                           plan_pipelines=not args.unreferenced, all_scopes=args.only_given)

    if args.dry_run:
        return _gc_dry_run(cache, keep())
    # NOTE: exclusive while deciding too: a run that starts now waits, so it cannot plan on an entry
    # that gc is about to remove; the message is flushed at once, as gc may wait for hours.
    with cache.exclusive(wait=not args.no_wait, on_wait=lambda message: print(message, flush=True)):
        selection = keep()
        removed, freed = cache.gc(selection.keep)
    print(f"removed {removed} entries ({_size(freed)}); kept {len(selection.keep)}: {_kept_text(selection, pipelines)}")
    return EXIT_OK


def _gc_dry_run(cache, selection) -> int:
    doomed = sorted((e for e in cache.entries() if e.key not in selection.keep), key=lambda e: (e.stage, e.key))
    for entry in doomed:
        print(f"would remove {entry.key[:12]}  {entry.stage:<28} {_size(entry.size):>10}")
    print(f"would remove {len(doomed)} entries ({_size(sum(e.size for e in doomed))}) from {cache.root}; "
          "nothing removed (--dry-run)")
    return EXIT_OK


def _kept_text(selection, pipelines) -> str:
    count = len(pipelines)
    parts = [f"{len(selection.planned)} used by {count} pipeline{'s' if count != 1 else ''}"] if pipelines else []
    if selection.all_scopes:
        parts.append("no other runs' (--only-given)")
    else:
        others = " of other pipelines" if selection.scopes else ""
        parts.append(f"{len(selection.remembered)} remembered by runs{others} (refs)")
    return ", ".join(parts)
