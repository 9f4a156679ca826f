"""Run a plan: the scheduling loop of :mod:`compressflow.executor.schedule_loop` with the search driver.

A ``search`` stage is driven by :func:`compressflow.executor.search_driver.submit_search`,
which runs its trials' stages through the same loop.
"""

from __future__ import annotations

from pathlib import Path

from compressflow.cache.backend import CacheBackend
from compressflow.executor import schedule_loop
from compressflow.executor.plan import Plan
from compressflow.executor.runners import Runner
from compressflow.executor.schedule_loop import (BLOCKED, NOT_RUN, SKIPPED, Reporter, RunReport, make_task,
                                                 tensorboard_dir)

__all__ = ["BLOCKED", "NOT_RUN", "SKIPPED", "Reporter", "RunReport", "make_task", "run_plan", "tensorboard_dir"]


def run_plan(plan: Plan, cache: CacheBackend, runner: Runner, reporter: Reporter, *,
             keep_going: bool = False, verify: bool = False, log_dir: Path | None = None,
             run_dir: Path | None = None) -> RunReport:
    """Execute ``plan`` on ``runner`` (see :func:`compressflow.executor.schedule_loop.run_plan`); searches included."""
    return schedule_loop.run_plan(plan, cache, runner, reporter, keep_going=keep_going, verify=verify,
                                  log_dir=log_dir, run_dir=run_dir, drive=_drive_search)


def _drive_search(plan: Plan, name: str, cache, runner: Runner, reporter: Reporter, **options):
    """The search driver, imported only by a run that has a search (it brings Optuna's helpers and networkx)."""
    from compressflow.executor.search_driver import submit_search

    return submit_search(plan, name, cache, runner, reporter, **options)
