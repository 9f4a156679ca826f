"""``compressflow run --executor local|dask``: the options and the runner they choose."""

from __future__ import annotations

import argparse
import os

from compressflow.errors import UsageError


def add_executor_args(run: argparse.ArgumentParser) -> None:
    """Add ``--executor``, ``--max-worker-memory``, ``--scheduler``, ``--workers`` and ``--worker-resources``."""
    run.add_argument("--executor", choices=("local", "dask"), default="local",
                     help="where stages run: this machine (--jobs N processes) or a Dask cluster")
    run.add_argument("--max-worker-memory", metavar="SIZE",
                     help="with --executor local: replace a worker process (which runs the TensorFlow stages) "
                          "when it holds more than SIZE after a stage, e.g. 2G (it is also replaced when it "
                          "has grown by 15%% of its peak since its first stage)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="with --executor dask: a running Dask scheduler, e.g. tcp://host:8786 "
                          "(otherwise a local cluster is started)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="with --executor dask and no --scheduler: worker processes of the local cluster "
                          "(default: the number of cores)")
    run.add_argument("--worker-resources", metavar="SPEC",
                     help="with --executor dask and no --scheduler: resources of each local worker, "
                          "e.g. GPU=1,CPU=2 (matched against the stages' `resources:`)")


def stage_resources(plan, names: list[str]) -> dict[str, dict[str, float]]:
    """The worker resources each stage of ``names`` asks for (its ``resources:`` field)."""
    out = {}
    for name in names:
        wanted = getattr(plan.stages[name].stage, "resources", None)
        if wanted:
            out[name] = dict(wanted)
    return out


def build_runner(args, cache, plan, to_run: list[str]):
    """The runner ``args`` ask for, checked against the cache and the stages to run."""
    executor = getattr(args, "executor", "local")
    if executor != "dask":
        for option, value in (("--scheduler", getattr(args, "scheduler", None)),
                              ("--workers", getattr(args, "workers", None)),
                              ("--worker-resources", getattr(args, "worker_resources", None))):
            if value is not None:
                raise UsageError(f"{option} applies to --executor dask")
    max_worker_memory = getattr(args, "max_worker_memory", None)
    if max_worker_memory is not None and executor == "dask":
        raise UsageError("--max-worker-memory applies to --executor local")
    if executor != "dask" or not to_run:
        from compressflow.executor.runners import make_runner
        from compressflow.executor.worker_memory import parse_size

        limit = parse_size(max_worker_memory) if max_worker_memory is not None else None
        return make_runner(min(args.jobs, max(1, len(to_run))), limit)
    return _dask_runner(args, cache, plan, to_run)


def _dask_runner(args, cache, plan, to_run: list[str]):
    from compressflow.cache.open import is_remote
    from compressflow.executor.dask_runner import DaskRunner, import_distributed, parse_resources

    if args.jobs != 1:
        raise UsageError("--jobs applies to --executor local; with --executor dask use --workers N")
    if args.scheduler and (args.workers is not None or args.worker_resources):
        raise UsageError("--workers and --worker-resources start a local cluster; "
                         "they cannot be combined with --scheduler")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    location = str(args.cache or os.environ.get("COMPRESSFLOW_CACHE") or "")
    if args.scheduler and not (is_remote(location) or location.startswith("file://")):
        raise UsageError(
            f"the cache {cache.root} is a folder on this machine, which the workers of the Dask cluster at "
            f"{args.scheduler} cannot reach; give --cache s3://BUCKET/PREFIX (or file:///PATH for a shared "
            "file system mounted at the same path on every worker)")
    worker_resources = parse_resources(args.worker_resources)
    import_distributed()
    workers = args.workers or min(os.cpu_count() or 1, max(1, len(to_run)))
    runner = DaskRunner(scheduler=args.scheduler, workers=workers, worker_resources=worker_resources,
                        stage_resources=stage_resources(plan, to_run))
    try:
        runner.check_resources(to_run)
    except BaseException:
        runner.close()
        raise
    return runner
