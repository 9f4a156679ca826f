"""Runners: where tasks execute. They differ only in their pool; the scheduling loop is shared.

* :class:`SequentialRunner` (``--jobs 1``) runs one task at a time: TensorFlow stages in one worker
  process that is replaced when it has grown too much, other stages in this process.
* :class:`ProcessRunner` (``--jobs N``) keeps up to ``jobs`` worker processes, replaced the same
  way, so a worker imports TensorFlow once for many stages, and runs independent branches at once.

Both pools are :class:`~compressflow.executor.worker_pool.WorkerPool`; see that module and
:mod:`~compressflow.executor.worker_memory` for when a worker is replaced.
"""

from __future__ import annotations

from concurrent.futures import Future

from compressflow.executor.stage_memory import release_stage_memory
from compressflow.executor.task import CACHED, StageTask, TaskOutcome, execute
from compressflow.executor.worker_memory import RecyclePolicy
from compressflow.executor.worker_pool import WorkerPool, worker_death

__all__ = ["ProcessRunner", "Runner", "SequentialRunner", "make_runner", "runs_tensorflow", "worker_death"]

TENSORFLOW = "tensorflow"  # the distribution a stage type lists in ``libraries`` when it runs TensorFlow


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
    """One task at a time: TensorFlow stages in one worker process, replaced when it grows; others here.

    A stage whose type runs TensorFlow (:func:`runs_tensorflow`) goes to a pool of one worker, started
    when the first such stage runs (so a run whose stages are all cached starts none) and replaced
    after a stage once it has grown too much (:mod:`compressflow.executor.worker_memory`): TensorFlow
    keeps memory that clearing its session does not give back, which would otherwise add up over a
    long pipeline in one process. Any other stage runs in this process, then TensorFlow's and Keras'
    state is released (:func:`~compressflow.executor.stage_memory.release_stage_memory`) in case it
    used them anyway.
    """

    capacity = 1

    def __init__(self, policy: RecyclePolicy | None = None):
        self._policy = policy
        self._pool: WorkerPool | None = None

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        if runs_tensorflow(task.stage):
            if self._pool is None:
                self._pool = WorkerPool(1, self._policy)
            return self._pool.submit(task)
        future: Future[TaskOutcome] = Future()
        outcome = execute(task)
        if outcome.status != CACHED:
            release_stage_memory()
        future.set_result(outcome)
        return future

    def close(self, *, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.close(cancel=cancel)


class ProcessRunner(Runner):
    """Up to ``jobs`` worker processes (a :class:`~compressflow.executor.worker_pool.WorkerPool`) run every task.

    A worker is replaced after a task once it has grown too much (``policy``); a worker that dies
    mid-stage is that stage's failure and the next task gets a fresh one.
    """

    def __init__(self, jobs: int, policy: RecyclePolicy | None = None):
        self.capacity = jobs
        self._pool = WorkerPool(jobs, policy)

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        return self._pool.submit(task)

    def close(self, *, cancel: bool = False) -> None:
        self._pool.close(cancel=cancel)


def runs_tensorflow(stage) -> bool:
    """Whether ``stage``'s type declares TensorFlow among its libraries (so runs it, and grows a process)."""
    return TENSORFLOW in stage.libraries


def make_runner(jobs: int, max_worker_memory: int | None = None) -> Runner:
    """The local runner of ``--jobs``; a worker that holds more than ``max_worker_memory`` bytes after a
    stage is replaced (as is one that has grown too much, see :class:`RecyclePolicy`)."""
    policy = RecyclePolicy(limit=max_worker_memory)
    return SequentialRunner(policy) if jobs <= 1 else ProcessRunner(jobs, policy)
