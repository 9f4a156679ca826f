"""What each CLI command does (argument parsing lives in :mod:`compressflow.cli.parser`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from compressflow.errors import UsageError

EXIT_OK, EXIT_FAILED = 0, 1


def dispatch(args, argv: list[str]) -> int:
    handler = {
        "run": cmd_run, "plan": cmd_plan, "validate": cmd_validate, "dag": cmd_dag,
        "schema": cmd_schema, "stages": cmd_stages, "cache": cmd_cache,
        "runs": cmd_runs, "show": cmd_show, "report": cmd_report, "init": cmd_init,
        "check": cmd_check,
    }[args.command]
    return handler(args, argv)


def _load(args):
    from compressflow.dsl import load_pipeline

    path = Path(args.pipeline)
    if not path.exists():
        raise UsageError(f"pipeline file {args.pipeline!r} does not exist")
    if path.is_dir():
        raise UsageError(f"{args.pipeline!r} is a folder; give a pipeline file")
    return load_pipeline(path, overrides=args.overrides or None, params_files=args.params_files or None,
                         allow_outside_paths=getattr(args, "allow_outside_paths", False))


def _selection(args):
    from compressflow.executor.graph import Selection

    return Selection(only=args.only, from_=args.from_, until=args.until, force=args.force)


def _plan(args, pipeline, cache):
    from compressflow.executor.plan import make_plan

    return make_plan(pipeline, cache, _selection(args), allow_outside_paths=args.allow_outside_paths,
                     verify=getattr(args, "verify", False))


# --------------------------------------------------------------------------- run / plan


def cmd_run(args, argv: list[str]) -> int:
    from compressflow import api
    from compressflow.cli.failure_hints import failure_hint
    from compressflow.cli.progress import make_reporter

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    pipeline = _load(args)
    reporter = make_reporter(getattr(args, "progress", "auto"), quiet=args.quiet, verbose=args.verbose)
    report = api.run(pipeline, cache_dir=args.cache, selection=_selection(args), jobs=args.jobs,
                     keep_going=args.keep_going, verify=args.verify, allow_outside_paths=args.allow_outside_paths,
                     reporter=reporter, executor=args.executor, scheduler=args.scheduler, workers=args.workers,
                     worker_resources=args.worker_resources, track=getattr(args, "track", None),
                     capture_logs=not args.verbose, argv=argv, check=not args.no_check,
                     max_worker_memory=getattr(args, "max_worker_memory", None))
    if report.ok:
        return EXIT_OK
    print("\n" + failure_hint(pipeline, report, argv), file=sys.stderr)
    return EXIT_FAILED


def cmd_plan(args, argv: list[str]) -> int:
    from compressflow.api import open_cache

    pipeline = _load(args)
    plan = _plan(args, pipeline, open_cache(pipeline, args.cache))
    if args.json:
        print(json.dumps({name: {"action": s.action, "reasons": s.reasons, "key": s.key.key,
                                 **({"machine": s.machine} if s.machine else {})}
                          for name, s in plan.stages.items()}, indent=2))
        return EXIT_OK
    width = max(len(n) for n in plan.stages) if plan.stages else 0
    for name, item in plan.stages.items():
        print(f"{name:<{width}}  {item.describe}")
    print(f"\n{len(plan.to_run())} to run, "
          f"{sum(1 for s in plan.stages.values() if s.action == 'cached')} cached")
    if plan.machine_note():
        print(plan.machine_note())
    return EXIT_OK


# --------------------------------------------------------------------------- inspection


def cmd_validate(args, argv: list[str]) -> int:
    pipeline = _load(args)
    print(f"{args.pipeline}: valid pipeline {pipeline.name!r} with {len(pipeline.stages)} stages "
          f"and {len(pipeline.datasets)} datasets")
    return EXIT_OK


def cmd_check(args, argv: list[str]) -> int:
    from compressflow.preflight.command import cmd_check as check

    return check(args, _load(args))


def cmd_dag(args, argv: list[str]) -> int:
    from compressflow.cli.dag_render import render_dag

    pipeline = _load(args)
    statuses = None if args.no_status else _dag_statuses(args, pipeline)
    print(render_dag(pipeline, args.format, statuses))
    return EXIT_OK


def _dag_statuses(args, pipeline) -> dict[str, str] | None:
    """Per stage, ``cached`` or ``stale: why``, from a plan (None, with a note, when there is none)."""
    from compressflow.api import open_cache
    from compressflow.errors import CompressflowError
    from compressflow.executor.plan import make_plan

    try:
        plan = make_plan(pipeline, open_cache(pipeline, args.cache, log=lambda text: None),
                         allow_outside_paths=args.allow_outside_paths)
    except CompressflowError as exc:
        print(f"note: no cached/stale marks: {exc.render().removeprefix('error: ')}", file=sys.stderr)
        return None
    return {name: "cached" if item.action == "cached" else "stale: " + "; ".join(item.reasons)
            for name, item in plan.stages.items()}


def cmd_runs(args, argv: list[str]) -> int:
    from compressflow.cli import record_commands

    return record_commands.list_runs(args)


def cmd_show(args, argv: list[str]) -> int:
    from compressflow.cli import record_commands

    return record_commands.show_run(args)


def cmd_report(args, argv: list[str]) -> int:
    from compressflow.report.command import write_report

    return write_report(args)


def cmd_init(args, argv: list[str]) -> int:
    from compressflow.cli.starter import write_starter

    return write_starter(args)


def cmd_schema(args, argv: list[str]) -> int:
    from compressflow.dsl import pipeline_json_schema

    print(json.dumps(pipeline_json_schema(), indent=2))
    return EXIT_OK


def cmd_stages(args, argv: list[str]) -> int:
    from compressflow.stages.describe import describe_stage, stage_table

    print(describe_stage(args.type) if args.type else stage_table())
    return EXIT_OK


def cmd_cache(args, argv: list[str]) -> int:
    from compressflow.cli import cache_commands

    return cache_commands.run(args)
