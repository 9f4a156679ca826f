"""What each CLI command does (argument parsing lives in :mod:`compressflow.cli`)."""

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

    return make_plan(pipeline, cache, _selection(args), allow_outside_paths=args.allow_outside_paths)


# --------------------------------------------------------------------------- run / plan


def cmd_run(args, argv: list[str]) -> int:
    from compressflow.api import open_cache, summaries
    from compressflow.cli import resume_command
    from compressflow.console import LineReporter
    from compressflow.executor.runners import make_runner
    from compressflow.executor.scheduler import run_plan

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    pipeline = _load(args)
    reporter = LineReporter(quiet=args.quiet, verbose=args.verbose)
    cache = open_cache(pipeline, args.cache, log=reporter.message)
    plan = _plan(args, pipeline, cache)
    cache.clean_stale_tmp()
    to_run = plan.to_run()
    cached = sum(1 for s in plan.stages.values() if s.action == "cached")
    reporter.message(f"pipeline {pipeline.name}: {len(to_run)} to run, {cached} cached")
    with make_runner(min(args.jobs, max(1, len(to_run)))) as runner:
        report = run_plan(plan, cache, runner, reporter, keep_going=args.keep_going, verify=args.verify,
                          log_dir=None if args.verbose else pipeline.root / ".compressflow" / "logs")
    for name, text in summaries(plan, cache):
        print(f"\n{name}:\n{text}")
    for name, paths in report.published.items():
        for path in paths:
            reporter.message(f"{name}: wrote {path}")
    ran, hits = report.count("ran"), report.count("cached")
    if report.ok:
        reporter.message(f"done in {report.seconds:.1f}s: {ran} ran, {hits} cached")
        return EXIT_OK
    failed = ", ".join(report.failed) or "none"
    print(f"\nrun failed (stage{'s' if len(report.failed) != 1 else ''}: {failed}); "
          f"{ran} ran, {hits} cached. Finished stages are cached: after fixing the cause, resume with:\n"
          f"  {resume_command(argv)}", file=sys.stderr)
    return EXIT_FAILED


def cmd_plan(args, argv: list[str]) -> int:
    from compressflow.api import open_cache

    pipeline = _load(args)
    plan = _plan(args, pipeline, open_cache(pipeline, args.cache))
    if args.json:
        print(json.dumps({name: {"action": s.action, "reasons": s.reasons, "key": s.key.key}
                          for name, s in plan.stages.items()}, indent=2))
        return EXIT_OK
    width = max(len(n) for n in plan.stages) if plan.stages else 0
    for name, item in plan.stages.items():
        print(f"{name:<{width}}  {item.describe}")
    print(f"\n{len(plan.to_run())} to run, "
          f"{sum(1 for s in plan.stages.values() if s.action == 'cached')} cached")
    return EXIT_OK


# --------------------------------------------------------------------------- inspection


def cmd_validate(args, argv: list[str]) -> int:
    pipeline = _load(args)
    print(f"{args.pipeline}: valid pipeline {pipeline.name!r} with {len(pipeline.stages)} stages "
          f"and {len(pipeline.datasets)} datasets")
    return EXIT_OK


def cmd_dag(args, argv: list[str]) -> int:
    from compressflow.executor.graph import build_graph, execution_order

    pipeline = _load(args)
    graph = build_graph(pipeline)
    for name in execution_order(graph):
        deps = list(graph.predecessors(name))
        kind = graph.nodes[name]["stage"].kind
        print(f"{name} ({kind})" + (f" <- {', '.join(deps)}" if deps else ""))
    return EXIT_OK


def cmd_schema(args, argv: list[str]) -> int:
    from compressflow.dsl import pipeline_json_schema

    print(json.dumps(pipeline_json_schema(), indent=2))
    return EXIT_OK


def cmd_stages(args, argv: list[str]) -> int:
    from compressflow.stages.describe import describe_stage, stage_table

    print(describe_stage(args.type) if args.type else stage_table())
    return EXIT_OK


def cmd_cache(args, argv: list[str]) -> int:
    from compressflow import cache_commands

    return cache_commands.run(args)
