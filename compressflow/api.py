"""The Python API: plan and run pipelines the way the CLI does.

Example::

    import compressflow
    report = compressflow.run("pipelines/digits.yaml", overrides=["params.sparsity=0.9"])
    assert report.ok
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from compressflow.executor.graph import Selection
from compressflow.executor.plan import Plan, make_plan
from compressflow.executor.scheduler import Reporter, RunReport, run_plan

CACHE_ENV = "COMPRESSFLOW_CACHE"


def default_cache_dir(pipeline) -> Path | str:
    """``$COMPRESSFLOW_CACHE`` (a folder or a URL), else ``.compressflow/cache`` beside the pipeline file."""
    from compressflow.executor.cache_open import is_remote

    env = os.environ.get(CACHE_ENV)
    if env:
        return env if is_remote(env) else Path(env).expanduser().resolve()
    return pipeline.root / ".compressflow" / "cache"


def open_cache(pipeline, cache_dir: str | os.PathLike[str] | None = None, *, log=None, local_dir=None):
    """The pipeline's cache: ``cache_dir`` (a folder, or an fsspec URL such as ``s3://bucket/prefix``)
    or the default. ``local_dir`` is the read-through copy of a remote cache."""
    from compressflow.executor.cache_open import open_cache_at

    location = cache_dir if cache_dir else default_cache_dir(pipeline)
    return open_cache_at(location, log=log or (lambda text: print(text, flush=True)), local_dir=local_dir)


def load(source, overrides=None, params_files=None, *, allow_outside_paths: bool = False):
    """Load and validate a pipeline (a file path or a dict); see :func:`compressflow.dsl.load_pipeline`."""
    from compressflow.dsl import load_pipeline

    return load_pipeline(source, overrides=overrides, params_files=params_files,
                         allow_outside_paths=allow_outside_paths)


def plan(source, *, overrides=None, params_files=None, cache_dir=None,
         selection: Selection | None = None, allow_outside_paths: bool = False) -> Plan:
    """What a run would do: for every stage, ``cached`` or ``run`` and why."""
    pipeline = (source if hasattr(source, "stages")
                else load(source, overrides, params_files, allow_outside_paths=allow_outside_paths))
    cache = open_cache(pipeline, cache_dir)
    return make_plan(pipeline, cache, selection, allow_outside_paths=allow_outside_paths)


def run(source, *, overrides=None, params_files=None, cache_dir=None, selection: Selection | None = None,
        jobs: int = 1, keep_going: bool = False, verify: bool = False, allow_outside_paths: bool = False,
        reporter: Reporter | None = None, executor: str = "local", scheduler: str | None = None,
        workers: int | None = None) -> RunReport:
    """Run a pipeline; returns the status of every stage (``report.ok`` tells success).

    ``executor="dask"`` runs the stages on a Dask cluster: the one at ``scheduler``, or a local
    one of ``workers`` processes (see docs/distributed.md); ``cache_dir`` may be a URL.
    """
    from types import SimpleNamespace

    from compressflow.console import LineReporter
    from compressflow.executor_options import build_runner

    pipeline = (source if hasattr(source, "stages")
                else load(source, overrides, params_files, allow_outside_paths=allow_outside_paths))
    cache = open_cache(pipeline, cache_dir)
    the_plan = make_plan(pipeline, cache, selection, allow_outside_paths=allow_outside_paths, verify=verify)
    reporter = reporter or LineReporter()
    options = SimpleNamespace(executor=executor, jobs=jobs, scheduler=scheduler, workers=workers,
                              worker_resources=None, cache=str(cache_dir) if cache_dir else None)
    with build_runner(options, cache, the_plan, the_plan.to_run()) as runner:
        return run_plan(the_plan, cache, runner, reporter, keep_going=keep_going, verify=verify)


def summaries(the_plan: Plan, cache) -> list[tuple[str, str]]:
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
