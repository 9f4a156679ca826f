"""Runners: where tasks execute. They differ only in their pool; the scheduling loop is shared.

* :class:`SequentialRunner` runs each task in this process (TensorFlow imported once).
* :class:`ProcessRunner` keeps ``jobs`` worker processes alive for the whole run, so each
  worker imports TensorFlow at most once, and runs independent branches at once.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

from compressflow.executor.task import StageTask, TaskOutcome, execute


class Runner:
    """Submit tasks, get futures of :class:`TaskOutcome`."""

    capacity = 1

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, *, cancel: bool = False) -> None:
        pass

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)


class SequentialRunner(Runner):
    """Run each task to completion, in this process, when it is submitted."""

    capacity = 1

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        future: Future[TaskOutcome] = Future()
        future.set_result(execute(task))
        return future


def _init_worker() -> None:
    # NOTE: set before any stage imports TensorFlow in this worker; tfmot needs Keras 2.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class ProcessRunner(Runner):
    """A pool of ``jobs`` long-lived worker processes (spawned, never forked after TensorFlow)."""

    def __init__(self, jobs: int):
        self.capacity = jobs
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker)

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        return self._pool.submit(execute, task)

    def close(self, *, cancel: bool = False) -> None:
        if cancel:
            # Workers hold no lock the OS would not release and never leave a half entry:
            # ending them is safe.
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=cancel)


def make_runner(jobs: int) -> Runner:
    return SequentialRunner() if jobs <= 1 else ProcessRunner(jobs)
