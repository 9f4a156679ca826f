"""Runners: where tasks execute. They differ only in their pool; the scheduling loop is shared.

* :class:`SequentialRunner` runs each task in this process (TensorFlow imported once).
* :class:`ProcessRunner` keeps up to ``jobs`` worker processes alive for the whole run, so each
  worker imports TensorFlow at most once, and runs independent branches at once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from compressflow.executor.stage_memory import release_stage_memory
from compressflow.executor.task import CACHED, FAILED, StageTask, TaskOutcome, execute
from compressflow.executor.worker_process import serve

_STOP_SECONDS = 10.0  # how long a stopped worker may take to exit before it is killed


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
    """Run each task to completion, in this process, when it is submitted.

    After a stage that ran, TensorFlow's and Keras' state is released
    (:func:`~compressflow.executor.stage_memory.release_stage_memory`), so the next stage starts
    as in a fresh process and a long run's memory does not grow stage by stage.
    """

    capacity = 1

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        future: Future[TaskOutcome] = Future()
        outcome = execute(task)
        if outcome.status != CACHED:
            release_stage_memory()
        future.set_result(outcome)
        return future


@dataclass
class _Worker:
    process: multiprocessing.Process
    connection: object  # this process's end of the worker's pipe


class ProcessRunner(Runner):
    """Up to ``jobs`` long-lived worker processes, each running one task at a time.

    Each worker has a pipe of its own, so the runner knows which process runs which stage: a
    worker that dies mid-stage (killed, out of memory) becomes that stage's failure, naming its
    pid and the signal, while the other workers carry on. The next task gets a fresh worker.
    Workers die with this process (see :mod:`compressflow.executor.parent_watch`).
    """

    def __init__(self, jobs: int):
        self.capacity = jobs
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        future: Future[TaskOutcome] = Future()
        future.set_running_or_notify_cancel()
        worker = self._take_idle_worker() or self._start_worker()
        threading.Thread(target=self._serve, args=(worker, task, future), daemon=True,
                         name=f"compressflow-stage-{task.name}").start()
        return future

    def close(self, *, cancel: bool = False) -> None:
        with self._lock:
            workers, self._workers, self._idle = self._workers, [], []
        for worker in workers:
            if cancel:
                worker.process.terminate()
            else:
                try:
                    worker.connection.send(None)
                except OSError:
                    pass  # already gone
        for worker in workers:
            worker.process.join(None if not cancel else _STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()

    def _take_idle_worker(self) -> _Worker | None:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                self._forget(worker)  # died between tasks: nothing was lost
                worker.connection.close()
        return None

    def _start_worker(self) -> _Worker:
        # NOTE: started from the thread that runs the schedule, which outlives every worker: Linux's
        # parent-death signal fires when the thread that started a process ends, not only the process.
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=serve, args=(theirs, os.getpid()),
                                        name="compressflow-worker")
        process.start()
        theirs.close()  # NOTE: only the worker may hold its end, or its death would not end our recv()
        worker = _Worker(process, mine)
        with self._lock:
            self._workers.append(worker)
        return worker

    def _serve(self, worker: _Worker, task: StageTask, future: "Future[TaskOutcome]") -> None:
        started = time.perf_counter()
        try:
            worker.connection.send(task)
            outcome = worker.connection.recv()
        except (EOFError, OSError):
            with self._lock:
                self._forget(worker)
            worker.connection.close()
            future.set_result(worker_death(task, worker.process.pid, _exit_status(worker.process),
                                           time.perf_counter() - started))
            return
        except BaseException as exc:  # e.g. a task that cannot be pickled: the future says so
            self._release(worker)
            future.set_exception(exc)
            return
        self._release(worker)  # NOTE: before the result, so the next submit finds this worker idle
        future.set_result(outcome)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:  # not closed meanwhile
                self._idle.append(worker)

    def _forget(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)


def _exit_status(process: multiprocessing.Process) -> int | None:
    process.join()
    # NOTE: a poll in another thread (Process.start() polls every child) may have reaped the process
    # a moment ago without having stored its status yet.
    for _ in range(200):
        if process.exitcode is not None:
            break
        time.sleep(0.01)
    return process.exitcode


def worker_death(task: StageTask, pid: int | None, exitcode: int | None, seconds: float) -> TaskOutcome:
    """The failure of ``task`` whose worker process ``pid`` ended with ``exitcode`` before answering."""
    if exitcode is not None and exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with status {exitcode}"
    error = f"worker process {pid} {how} while running '{task.name}'"
    if exitcode == -signal.SIGKILL:
        error += " (if nothing else killed it, the system may have run out of memory: try fewer --jobs)"
    details = error + (f"\n(the stage's other output is in {task.stderr_log})" if task.stderr_log else "")
    return TaskOutcome(task.name, FAILED, seconds, error=error, details=details)


def make_runner(jobs: int) -> Runner:
    return SequentialRunner() if jobs <= 1 else ProcessRunner(jobs)
