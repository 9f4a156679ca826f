"""The scheduling loop shared by every runner, without the stages the executor drives itself.

Ready stages (all inputs committed) are submitted as long as the runner has room. A
failed stage blocks its dependents; without ``keep_going`` nothing new starts after a
failure, but stages already running finish and stay cached. A stage the executor drives
(a search) goes to the ``drive`` function the caller gives
(:mod:`compressflow.executor.scheduler` gives the search driver): this module reaches no
driver, and a driver runs its own stages through it.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Callable, Protocol

from compressflow.errors import CacheError
from compressflow.executor.plan import CACHED, RUN, Plan
from compressflow.executor.runners import Runner
from compressflow.executor.variants import variant_of
from compressflow.executor.task import FAILED, RAN, StageTask, TaskOutcome
from compressflow.cache.names import encode_name as safe_file_name
from compressflow.cache.open import CacheSpec
from compressflow.executor.events import events_file
from compressflow.stages.base import Artifact

BLOCKED = "blocked"      # an input failed
NOT_RUN = "not run"      # stopped after another stage failed
SKIPPED = "skipped"      # not selected


# (plan, stage name, cache, runner, reporter, verify=, log_dir=, run_dir=) -> a future of the stage's outcome
Driver = Callable[..., "Future[TaskOutcome]"]


class Reporter(Protocol):
    def stage_started(self, name: str) -> None: ...
    def stage_finished(self, name: str, outcome: TaskOutcome) -> None: ...
    def stage_blocked(self, name: str, reason: str) -> None: ...
    def message(self, text: str) -> None: ...


@dataclass
class RunReport:
    """Final status of every stage of a run."""

    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)
    seconds: float = 0.0
    published: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [n for n, o in self.outcomes.items() if o.status == FAILED]

    @property
    def ok(self) -> bool:
        return not any(o.status in (FAILED, BLOCKED, NOT_RUN) for o in self.outcomes.values())

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == status)


def make_task(plan: Plan, name: str, cache: CacheSpec | str, verify: bool, log_dir: Path | None = None,
              run_dir: Path | None = None) -> StageTask:
    planned = plan.stages[name]
    inputs = {}
    for field_name, ref in plan.inputs_of(name).items():
        inputs[field_name] = ([(t, plan.stages[t].key.key) for t in ref] if isinstance(ref, list)
                              else (ref, plan.stages[ref].key.key))
    return StageTask(name=name, stage=planned.stage, key=planned.key.key, key_doc=planned.key.doc,
                     inputs=inputs, cache=CacheSpec.of(cache), env=plan.env,
                     seed=planned.key.doc["seed"], lineage=plan.lineage_of(name), verify=verify,
                     force="forced" in planned.reasons,
                     stderr_log=str(log_dir / f"{safe_file_name(name)}.log") if log_dir else None,
                     events_file=str(events_file(run_dir, name)) if run_dir else None,
                     tensorboard_dir=str(tensorboard_dir(run_dir, name))
                     if run_dir and getattr(planned.stage, "tensorboard", False) else None)


def tensorboard_dir(run_dir: Path, name: str) -> Path:
    """Where a stage with ``tensorboard: true`` writes its TensorBoard logs in a run's folder."""
    return Path(run_dir) / "tensorboard" / safe_file_name(name)


def run_plan(plan: Plan, cache, runner: Runner, reporter: Reporter, *,
             keep_going: bool = False, verify: bool = False, log_dir: Path | None = None,
             run_dir: Path | None = None, drive: Driver | None = None) -> RunReport:
    """Execute ``plan`` on ``runner``; commit refs and publish outputs as stages finish.

    A stage the executor drives itself (``driven_by_executor``) is run by ``drive``; without
    one, such a stage fails.

    With ``log_dir``, what native libraries write to stderr during a stage goes to
    ``log_dir/<stage>.log`` instead of the terminal. With ``run_dir``, stages send their
    log lines and progress events to ``run_dir/events/<stage>.jsonl`` (followed by
    :class:`compressflow.executor.events.EventTailer`) and TensorBoard logs go below it.
    """
    started = time.perf_counter()
    report = RunReport()
    for name, item in plan.stages.items():
        if item.action == CACHED:
            report.outcomes[name] = TaskOutcome(name, CACHED)
            outcome = _after_success(plan, cache, name, report, reporter) or report.outcomes[name]
            reporter.stage_finished(name, outcome)
        elif item.action != RUN:
            report.outcomes[name] = TaskOutcome(name, SKIPPED)

    pending = [n for n in plan.stages if plan.stages[n].action == RUN]
    running: dict[Future, str] = {}
    stopping = False
    while pending or running:
        if not stopping:
            for name in list(pending):
                if len(running) >= runner.capacity:
                    break
                state = _readiness(plan, name, report)
                if state == "ready":
                    pending.remove(name)
                    reporter.stage_started(name)
                    if getattr(plan.stages[name].stage, "driven_by_executor", False):
                        running[_drive(drive, plan, name, cache, runner, reporter, verify, log_dir, run_dir)] = name
                        continue
                    task = make_task(plan, name, cache.spec(), verify, log_dir, run_dir)
                    running[runner.submit(task)] = name
                elif state == "blocked":
                    pending.remove(name)
                    report.outcomes[name] = TaskOutcome(name, BLOCKED, error="an input failed")
                    reporter.stage_blocked(name, "an input failed")
        if not running:
            break  # nothing can start: stopped after a failure, or every pending stage is blocked
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in done:
            name = running.pop(future)
            outcome = _outcome_of(future, name)
            report.outcomes[name] = outcome
            if outcome.status != FAILED:
                outcome = _after_success(plan, cache, name, report, reporter) or outcome
            reporter.stage_finished(name, outcome)
            if outcome.status == FAILED and not keep_going:
                stopping = True
    for name in pending:
        report.outcomes[name] = TaskOutcome(name, NOT_RUN)
    report.seconds = time.perf_counter() - started
    return report


def _drive(drive: Driver | None, plan: Plan, name: str, cache, runner: Runner, reporter: Reporter, verify: bool,
           log_dir: Path | None, run_dir: Path | None) -> Future:
    """A stage the executor runs itself (a search: its trials are stages of their own), as a future."""
    if drive is None:
        failed: Future = Future()
        failed.set_result(TaskOutcome(name, FAILED, error="this run cannot drive a stage of type "
                                      f"{plan.stages[name].stage.kind!r}"))
        return failed
    return drive(plan, name, cache, runner, reporter, verify=verify, log_dir=log_dir, run_dir=run_dir)


def _outcome_of(future: Future, name: str) -> TaskOutcome:
    """The future's outcome; a runner's own failure to run the task is that stage's failure, not a crash."""
    try:
        return future.result()
    except Exception as exc:
        return TaskOutcome(name, FAILED, error=f"could not run the stage: {type(exc).__name__}: {exc}",
                           details="".join(traceback.format_exception(exc)))


def _readiness(plan: Plan, name: str, report: RunReport) -> str:
    statuses = [report.outcomes.get(dep) for dep in plan.graph.predecessors(name)]
    if any(o is not None and o.status in (FAILED, BLOCKED, NOT_RUN) for o in statuses):
        return "blocked"
    if all(o is not None and o.status in (RAN, CACHED) for o in statuses):
        return "ready"
    return "waiting"


def _after_success(plan: Plan, cache, name: str, report: RunReport, reporter: Reporter) -> TaskOutcome | None:
    """Remember the key for ``plan`` explanations and publish outputs written on every run."""
    item = plan.stages[name]
    try:
        cache.set_ref(plan.pipeline.name, name, item.key.key, item.key.doc, variant_of(plan.pipeline))
    except CacheError as exc:  # a read-only shared cache still serves its entries
        reporter.message(f"{name}: not remembered for `compressflow plan` explanations: {exc}")
    if not item.stage.always_publish:
        return None
    try:
        artifact = Artifact.read(name, item.key.key, cache.entry_dir(item.key.key))
        paths = item.stage.publish(artifact, plan.env)
        report.published[name] = [str(p) for p in paths]
        return None
    except Exception as exc:
        outcome = TaskOutcome(name, FAILED, error=f"publishing failed: {exc}")
        report.outcomes[name] = outcome
        return outcome
