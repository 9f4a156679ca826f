"""Execute one stage: lock its key, reuse or compute its entry, commit it atomically.

:func:`execute` is self-contained and picklable, so the same code runs in the main
process, in a pool worker or on a remote worker.
"""

from __future__ import annotations

import pickle
import time
import traceback
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from compressflow.errors import CompressflowError, GateFailed
from compressflow.cache.open import CacheSpec, open_spec
from compressflow.executor.capture import stderr_to_file
from compressflow.executor.events import EventSink
from compressflow.executor.parent_watch import check_parent
from compressflow.executor.process_setup import prepare_for_stage
from compressflow.stages import model_trust
from compressflow.stages.base import Artifact, Environment, Stage, StageContext

InputRef = tuple[str, str]  # (stage name, key)

RAN = "ran"
CACHED = "cached"
FAILED = "failed"


@dataclass
class StageTask:
    """Everything needed to run one stage anywhere."""

    name: str
    stage: Stage
    key: str
    key_doc: dict[str, Any]
    inputs: dict[str, InputRef | list[InputRef]]
    cache: CacheSpec  # NOTE: the whole spec (storage options, local copy), so workers open the run's cache
    env: Environment
    seed: int
    lineage: list[dict[str, Any]] = field(default_factory=list)
    verify: bool = False
    force: bool = False  # recompute even if cached, and replace the entry
    stderr_log: str | None = None  # where native libraries' stderr goes while the stage runs
    # JSON-lines file the stage's log lines and progress events go to (see executor/events.py);
    # without it, log lines are printed and ``ctx.progress`` is None.
    events_file: str | None = None
    tensorboard_dir: str | None = None  # where a training stage asked to write TensorBoard logs

    def __reduce__(self):
        # NOTE: the stage or its datasets may be types of a plugin beside the pipeline: the process that
        # receives the task (a --jobs or Dask worker) puts the pipeline's folder on its import path first.
        state = {item.name: getattr(self, item.name) for item in fields(self)}
        return _restore_task, (str(self.env.pipeline_dir), pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def _restore_task(pipeline_dir: str, state: bytes) -> StageTask:
    """A pickled :class:`StageTask`, unpickled once this process imports from the pipeline's folder."""
    from compressflow.user_modules import use_pipeline_folder

    use_pipeline_folder(Path(pipeline_dir))
    return StageTask(**pickle.loads(state))


@dataclass
class TaskOutcome:
    """What happened to a task."""

    name: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    details: str | None = None  # traceback, for --verbose and the log file
    # A failed gate (GateFailed): the config fields holding the requirement. A rerun gives the same answer.
    gate_fields: tuple[str, ...] = ()


class InputMissing(CompressflowError):
    exit_code = 1


def execute(task: StageTask, log: Callable[[str], None] | None = None, events: EventSink | None = None) -> TaskOutcome:
    """Bring ``task``'s cache entry into existence (or find it) and say what happened.

    ``events`` replaces the sink of ``task.events_file`` (e.g. one that forwards events from
    a remote worker); it needs the methods of :class:`EventSink`.
    """
    if events is None and task.events_file:
        events = EventSink(task.events_file, task.name)
    log = log or (events.log if events else _stage_printer(task.name))
    cache = open_spec(task.cache, log=log)
    started = time.perf_counter()
    try:
        if not task.force and cache.lookup(task.key, stage=task.name, verify=task.verify) is not None:
            return TaskOutcome(task.name, CACHED)
        with cache.lock(task.key, stage=task.name, on_wait=log):
            if not task.force and cache.lookup(task.key, stage=task.name, verify=task.verify) is not None:
                return TaskOutcome(task.name, CACHED, time.perf_counter() - started)
            inputs = _read_inputs(cache, task)
            prepare_for_stage(task.stage, task.env)
            with cache.writer(task.key, stage=task.name, key_doc=task.key_doc, replace=task.force) as out_dir:
                env = replace(task.env, local_cache=Path(cache.local_root))
                ctx = StageContext(name=task.name, seed=task.seed, out_dir=Path(out_dir), env=env,
                                   inputs=inputs, log=log, lineage=task.lineage, progress=events,
                                   versions=dict(task.key_doc.get("versions", {})),
                                   upstream=lambda stage, key: _read_upstream(cache, stage, key),
                                   tensorboard_dir=Path(task.tensorboard_dir) if task.tensorboard_dir else None)
                with stderr_to_file(Path(task.stderr_log) if task.stderr_log else None), \
                        model_trust.declared_by(task.lineage):
                    task.stage.run(ctx)
                if not ctx._output_set:
                    raise RuntimeError(f"stage type {task.stage.kind!r} finished without declaring its output")
                check_parent(task.name)  # NOTE: an orphaned worker leaves the entry to a live run
        return TaskOutcome(task.name, RAN, time.perf_counter() - started)
    except CompressflowError as exc:
        return _failed(task, started, exc.render().removeprefix("error: "),
                       gate_fields=exc.fields if isinstance(exc, GateFailed) else ())
    except Exception as exc:  # a stage's own failure: reported, never a crash of the run
        return _failed(task, started, f"{type(exc).__name__}: {exc}")
    finally:
        if events is not None:
            events.close()


def _failed(task: StageTask, started: float, error: str, gate_fields: tuple[str, ...] = ()) -> TaskOutcome:
    details = traceback.format_exc()
    if task.stderr_log:
        details += f"\n(the stage's other output is in {task.stderr_log})"
    return TaskOutcome(task.name, FAILED, time.perf_counter() - started, error=error, details=details,
                       gate_fields=gate_fields)


def _read_upstream(cache, stage: str, key: str) -> Artifact | None:
    """A stage's committed output from the cache (for what a stage reads of its lineage)."""
    if cache.lookup(key, stage=stage) is None:
        return None
    return Artifact.read(stage, key, cache.entry_dir(key))


def _read_inputs(cache, task: StageTask) -> dict[str, Artifact | list[Artifact]]:
    def read(ref: InputRef) -> Artifact:
        stage, key = ref
        # NOTE: inputs are rehashed before use: a same-size corruption passes the cheap check of plan.
        entry = cache.lookup(key, stage=stage, verify=True)
        if entry is None:
            raise InputMissing(f"input {stage!r} is no longer in the cache (removed or damaged); "
                               "run again to recompute it")
        return Artifact.read(stage, key, cache.entry_dir(key))

    return {name: [read(r) for r in ref] if isinstance(ref, list) else read(ref)
            for name, ref in task.inputs.items()}


def _stage_printer(name: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        for line in str(message).splitlines() or [""]:
            print(f"  [{name}] {line}", flush=True)

    return log
