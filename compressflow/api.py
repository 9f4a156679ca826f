"""The Python API: load, plan and run pipelines; ``compressflow run`` is :func:`run` too.

Example::

    import compressflow
    result = compressflow.run("pipelines/digits.yaml", overrides=["params.sparsity=0.9"])
    assert result.ok, result.failed
    result.run_id     # recorded like a CLI run: `compressflow runs|show|report pipelines/digits.yaml`
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from compressflow.cache.backend import CacheBackend
from compressflow.errors import UsageError
from compressflow.executor.graph import Selection
from compressflow.executor.plan import Plan, make_plan
from compressflow.executor.scheduler import Reporter, RunReport, run_plan

CACHE_ENV = "COMPRESSFLOW_CACHE"


@dataclass
class RunResult(RunReport):
    """What :func:`run` did: every stage's outcome (``ok``, ``failed``, ``count(status)``, ``published``)
    and the run's record (``run_id``, ``run_dir``, ``record``: the ``run.json`` it wrote).

    ``summaries`` holds the texts stages show at the end of a run, as ``(stage, text)``: the
    table of an evaluate stage, the choice of a select stage.
    """

    run_id: str = ""
    run_dir: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)
    summaries: list[tuple[str, str]] = field(default_factory=list)


def default_cache_dir(pipeline) -> Path | str:
    """``$COMPRESSFLOW_CACHE`` (a folder or a URL), else ``.compressflow/cache`` beside the pipeline file."""
    from compressflow.cache.open import is_remote

    env = os.environ.get(CACHE_ENV)
    if env:
        return env if is_remote(env) else Path(env).expanduser().resolve()
    return pipeline.root / ".compressflow" / "cache"


def open_cache(pipeline, cache_dir: str | os.PathLike[str] | None = None, *, log=None, local_dir=None):
    """The pipeline's cache: ``cache_dir`` (a folder, or an fsspec URL such as ``s3://bucket/prefix``)
    or the default. ``local_dir`` is the read-through copy of a remote cache."""
    from compressflow.cache.open import open_cache_at

    location = cache_dir if cache_dir else default_cache_dir(pipeline)
    return open_cache_at(location, log=log or (lambda text: print(text, flush=True)), local_dir=local_dir)


def load(source, overrides=None, params_files=None, *, allow_outside_paths: bool = False):
    """Load and validate a pipeline: a file path or a dict; returns a :class:`compressflow.Pipeline`.

    ``overrides`` are ``"dotted.path=value"`` strings (or a mapping), ``params_files`` YAML files of
    params; invalid input raises :class:`compressflow.errors.PipelineError` listing every problem.
    See :func:`compressflow.dsl.load_pipeline`.
    """
    from compressflow.dsl import load_pipeline

    return load_pipeline(source, overrides=overrides, params_files=params_files,
                         allow_outside_paths=allow_outside_paths)


def _pipeline(source, overrides, params_files, allow_outside_paths: bool):
    if hasattr(source, "stages"):  # already a Pipeline
        return source
    return load(source, overrides, params_files, allow_outside_paths=allow_outside_paths)


def plan(source, *, overrides=None, params_files=None, cache_dir=None,
         selection: Selection | None = None, allow_outside_paths: bool = False) -> Plan:
    """What a run would do: for every stage, ``cached`` or ``run`` and why (``plan.stages[name].describe``).

    ``source`` is a pipeline file, a dict or a loaded :class:`compressflow.Pipeline`.
    """
    pipeline = _pipeline(source, overrides, params_files, allow_outside_paths)
    cache = open_cache(pipeline, cache_dir)
    return make_plan(pipeline, cache, selection, allow_outside_paths=allow_outside_paths)


def run(source, *, overrides=None, params_files=None, cache_dir=None, selection: Selection | None = None,
        jobs: int = 1, keep_going: bool = False, verify: bool = False, allow_outside_paths: bool = False,
        reporter: Reporter | None = None, executor: str = "local", scheduler: str | None = None,
        workers: int | None = None, worker_resources: str | None = None, track: str | None = None,
        capture_logs: bool = True, echo: Callable[[str], Any] | None = print,
        argv: list[str] | None = None, check: bool = True, max_worker_memory: str | int | None = None) -> RunResult:
    """Run a pipeline and record the run; returns a :class:`RunResult` (``result.ok`` tells success).

    ``source`` is a pipeline file, a dict or a loaded :class:`compressflow.Pipeline`. The run is
    what ``compressflow run`` does, with the same record in ``.compressflow/runs/`` beside the
    pipeline, so ``compressflow runs``, ``show`` and ``report`` know it:

    * ``selection``: which stages (``Selection(only=..., from_=..., until=..., force=...)``);
    * ``jobs``: independent stages at once in worker processes; ``keep_going``: after a failure,
      finish independent branches; ``verify``: rehash every cache entry read;
    * ``max_worker_memory`` (bytes, or a size such as ``"2G"``): replace the worker process that runs
      TensorFlow stages once it holds more after a stage (see docs/architecture.md, memory across stages);
    * ``executor="dask"`` runs the stages on a Dask cluster: the one at ``scheduler``, or a local
      one of ``workers`` processes with ``worker_resources`` (see docs/distributed.md);
      ``cache_dir`` may be a URL;
    * ``reporter`` gets the progress (default: one line per event on standard output);
      ``track="mlflow"`` logs the finished run to MLflow;
    * ``capture_logs``: keep the stages' native output (TensorFlow's) in ``.compressflow/logs/``;
    * ``echo`` gets the stages' end-of-run texts (evaluate's table; None: only in ``result.summaries``);
    * ``check``: before anything runs, check that no stage to run after another would fail (layers
      prune / cluster / QAT refuse, a conversion that fails, data that does not fit the model; see
      ``compressflow check``) and raise :class:`compressflow.preflight.command.PreflightFailed` if one would;
    * ``argv``: the command line to record (the CLI's own); by default the equivalent
      ``compressflow run`` command, and the record says the run came from Python.
    """
    from compressflow.runs.console import LineReporter
    from compressflow.runs.session import RunSession
    from compressflow.tracking import open_tracker
    from compressflow.user_modules import use_pipeline_folder

    if jobs < 1:
        raise UsageError("jobs must be at least 1")
    pipeline = _pipeline(source, overrides, params_files, allow_outside_paths)
    # NOTE: the user's modules beside the pipeline import in this process (stages of --jobs 1, summaries),
    # as in every worker; no PYTHONPATH needed. See compressflow.executor.process_setup.
    use_pipeline_folder(pipeline.root)
    tracker = open_tracker(track, pipeline)
    reporter = reporter or LineReporter()
    cache, the_plan = _prepare(pipeline, cache_dir, selection, reporter, allow_outside_paths, verify)
    if check:
        from compressflow.preflight.command import check_before_run

        check_before_run(the_plan, str(pipeline.path) if pipeline.path else "PIPELINE")
    options = SimpleNamespace(executor=executor, jobs=jobs, scheduler=scheduler, workers=workers,
                              worker_resources=worker_resources, cache=str(cache_dir) if cache_dir else None,
                              max_worker_memory=max_worker_memory)
    origin = "cli" if argv is not None else "python"
    if argv is None:
        argv = _equivalent_argv(source, pipeline, overrides, params_files, selection, options,
                                keep_going=keep_going, verify=verify, allow_outside_paths=allow_outside_paths,
                                track=track)
    session = RunSession(pipeline, the_plan, cache, argv, reporter, origin=origin)
    log_dir = pipeline.root / ".compressflow" / "logs" if capture_logs else None
    report = _run_recorded(session, options, keep_going=keep_going, verify=verify, log_dir=log_dir)
    record = session.finish(report)
    result = RunResult(**vars(report), run_id=session.id, run_dir=session.dir, record=record,
                       summaries=summaries(the_plan, cache))
    _show_end(result, reporter, echo)
    if tracker is not None:
        _track(tracker, record, session)
    if result.ok:
        reporter.message(f"done in {result.seconds:.1f}s: {result.count('ran')} ran, "
                         f"{result.count('cached')} cached (run {session.id})")
    return result


def _prepare(pipeline, cache_dir, selection, reporter, allow_outside_paths: bool, verify: bool):
    """(cache, plan) of a run, checked before anything runs; says how much there is to do."""
    from compressflow.tracking import check_tensorboard

    cache = open_cache(pipeline, cache_dir, log=reporter.message)
    the_plan = _checked_plan(pipeline, cache, selection, allow_outside_paths, verify)
    check_tensorboard(the_plan)
    cache.clean_stale_tmp()
    cached = sum(1 for s in the_plan.stages.values() if s.action == "cached")
    reporter.message(f"pipeline {pipeline.name}: {len(the_plan.to_run())} to run, {cached} cached")
    return cache, the_plan


def _checked_plan(pipeline, cache: CacheBackend, selection, allow_outside_paths: bool, verify: bool) -> Plan:
    """The run's plan. ``verify`` rehashes every cached entry; a cache others write to (``verify_reads``)
    rehashes only the cached entries the run reads (inputs of stages that run, outputs published on
    every run), so that a fully cached run transfers no entry's files."""
    the_plan = make_plan(pipeline, cache, selection, allow_outside_paths=allow_outside_paths, verify=verify)
    if verify or not cache.verify_reads:
        return the_plan
    read = [name for name, item in the_plan.stages.items() if item.action == "cached" and (
        item.stage.always_publish or any(the_plan.stages[child].action == "run"
                                         for child in the_plan.graph.successors(name)))]
    if all(cache.lookup(the_plan.stages[name].key.key, stage=name, verify=True) is not None for name in read):
        return the_plan
    # NOTE: one was damaged (reported, removed): rehash them all, so that every damaged one is planned to run
    return make_plan(pipeline, cache, selection, allow_outside_paths=allow_outside_paths, verify=True)


def _run_recorded(session, options, *, keep_going: bool, verify: bool, log_dir: Path | None) -> RunReport:
    """Run the session's plan on the runner ``options`` ask for; an interruption is recorded as such."""
    from compressflow.runs.options import build_runner

    the_plan, cache = session.plan, session.cache
    started = False
    try:
        # NOTE: the runner is built (its options checked) before the run is recorded, so a usage
        # error leaves no record; an interruption is recorded once the workers are stopped.
        with build_runner(options, cache, the_plan, the_plan.to_run()) as runner:
            session.start()
            started = True
            return run_plan(the_plan, cache, runner, session.reporter, keep_going=keep_going,
                            verify=verify, run_dir=session.dir, log_dir=log_dir)
    except BaseException:
        if started:
            try:
                session.finish(interrupted=True)
            except Exception:  # NOTE: never hide the interruption behind a record problem
                pass
        raise


def _show_end(result: RunResult, reporter, echo) -> None:
    """The stages' end-of-run texts, then where they published files."""
    if echo is not None:
        for name, text in result.summaries:
            echo(f"\n{name}:\n{text}")
    for name, paths in result.published.items():
        for path in paths:
            reporter.message(f"{name}: wrote {path}")


def _track(tracker, record, session) -> None:
    """Log the run to the tracker; a tracking problem is reported but does not fail the run."""
    try:
        session.add_tracking(tracker.log_run(record))
    except Exception as exc:  # NOTE: the run itself succeeded and is cached; say so and go on
        print(f"warning: {tracker.name} tracking failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def _equivalent_argv(source, pipeline, overrides, params_files, selection: Selection | None, options, *,
                     keep_going: bool, verify: bool, allow_outside_paths: bool, track: str | None) -> list[str]:
    """The ``compressflow run`` arguments that do what a Python call did (for its record)."""
    if isinstance(source, (str, os.PathLike)):
        where = str(source)
    else:
        where = str(pipeline.path) if pipeline.path else "<dict>"
    argv = ["run", where]
    if not hasattr(source, "stages"):  # a loaded Pipeline has its overrides applied already
        texts = ([f"{key}={_yaml_value(value)}" for key, value in overrides.items()]
                 if isinstance(overrides, dict) else list(overrides or []))
        for text in texts:
            argv += ["--set", text]
        for path in params_files or []:
            argv += ["--params", str(path)]
    if options.cache:
        argv += ["--cache", options.cache]
    if selection is not None:
        for flag, names in (("--only", selection.only), ("--from", selection.from_), ("--until", selection.until)):
            for name in names:
                argv += [flag, name]
        if selection.force is not None:
            argv += ["--force", *selection.force]
    flags = {"--keep-going": keep_going, "--verify": verify, "--allow-outside-paths": allow_outside_paths}
    argv += [flag for flag, on in flags.items() if on]
    if options.jobs != 1:
        argv += ["--jobs", str(options.jobs)]
    if options.executor != "local":
        argv += ["--executor", options.executor]
    for flag, value in (("--scheduler", options.scheduler), ("--workers", options.workers),
                        ("--worker-resources", options.worker_resources), ("--track", track),
                        ("--max-worker-memory", options.max_worker_memory)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def _yaml_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def summaries(the_plan: Plan, cache: CacheBackend) -> list[tuple[str, str]]:
    """Texts that stages want shown at the end of a run (e.g. evaluate's table)."""
    from compressflow.stages.base import Artifact, Stage

    out: list[tuple[str, Any]] = []
    for name, item in the_plan.stages.items():
        if not item.requested or item.action == "skip":
            continue
        if type(item.stage).summary is Stage.summary:
            continue  # NOTE: no summary to show; spares a remote cache downloading the entry
        entry = cache.entry_dir(item.key.key)
        if not (entry / "artifact.json").exists():
            continue
        text = item.stage.summary(Artifact.read(name, item.key.key, entry))
        if text:
            out.append((name, text))
    return out
