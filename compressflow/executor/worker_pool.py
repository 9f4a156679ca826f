"""Up to ``size`` worker processes that run tasks one at a time each, replaced when they grow too much.

Each worker (:func:`compressflow.executor.worker_process.serve`) is spawned, imports TensorFlow at
most once, and has a pipe of its own, so the pool knows which process runs which stage: a worker
that dies mid-stage (killed, out of memory) becomes that stage's failure, naming its pid and the
signal, while the other workers carry on; the next task gets a fresh worker. Workers die with this
process (:mod:`compressflow.executor.parent_watch`).

After a task's outcome a worker releases the stage's memory and reports what it still holds
(:class:`~compressflow.executor.worker_memory.WorkerMemory`). The outcome is handed on at once;
the worker is only free again once its report is in, and then either goes back to the idle workers
or, when :class:`~compressflow.executor.worker_memory.RecyclePolicy` says it has grown too much, is
stopped (and waited for, so the old and the new worker never hold their memory at once) and a new
one is started for the next task. Each report is appended to the stage's events file as a
``worker`` event (pid, MB resident and peak, ``retired``), which is how a run can tell which
process ran which stage.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from compressflow.executor.events import EventSink
from compressflow.executor.task import FAILED, StageTask, TaskOutcome
from compressflow.executor.worker_memory import RecyclePolicy, WorkerMemory
from compressflow.executor.worker_process import serve

_STOP_SECONDS = 10.0  # how long a stopped worker may take to exit before it is killed


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.Process
    connection: object  # this process's end of the worker's pipe
    baseline: int | None = None  # see RecyclePolicy


class WorkerPool:
    """Start, reuse, replace and stop up to ``size`` worker processes; :meth:`submit` one task to one."""

    def __init__(self, size: int, policy: RecyclePolicy | None = None):
        self.size = size
        self.policy = policy or RecyclePolicy()
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._workers: list[_Worker] = []  # started and not yet gone: idle, busy or releasing memory
        self._free = threading.Condition()

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        """Run ``task`` in an idle worker, or a new one; the future holds its outcome."""
        future: Future[TaskOutcome] = Future()
        future.set_running_or_notify_cancel()
        worker = self._take_worker()
        threading.Thread(target=self._serve, args=(worker, task, future), daemon=True,
                         name=f"compressflow-stage-{task.name}").start()
        return future

    def close(self, *, cancel: bool = False) -> None:
        """Stop every worker: at once with ``cancel``, otherwise once it has finished its task."""
        with self._free:
            workers, self._workers, self._idle = self._workers, [], []
            self._free.notify_all()
        for worker in workers:
            if cancel:
                worker.process.terminate()
            else:
                _tell_to_stop(worker)
        for worker in workers:
            _join(worker, None if not cancel else _STOP_SECONDS)

    def _take_worker(self) -> _Worker:
        with self._free:
            # NOTE: a worker whose outcome is in may still be releasing its stage's memory; wait for it
            # (a moment) rather than start one more process than the pool may have.
            while not self._idle and len(self._workers) >= self.size:
                self._free.wait()
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                self._forget(worker)  # died between tasks: nothing was lost
                worker.connection.close()
        return self._start_worker()

    def _start_worker(self) -> _Worker:
        # NOTE: started from the thread that runs the schedule, which outlives every worker: Linux's
        # parent-death signal fires when the thread that started a process ends, not only the process.
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=serve, args=(theirs, os.getpid()), name="compressflow-worker")
        process.start()
        theirs.close()  # NOTE: only the worker may hold its end, or its death would not end our recv()
        worker = _Worker(process, mine)
        with self._free:
            self._workers.append(worker)
        return worker

    def _serve(self, worker: _Worker, task: StageTask, future: "Future[TaskOutcome]") -> None:
        started = time.perf_counter()
        try:
            worker.connection.send(task)
            outcome = worker.connection.recv()
        except (EOFError, OSError):
            self._drop(worker)
            future.set_result(worker_death(task, worker.process.pid, _exit_status(worker.process),
                                           time.perf_counter() - started))
            return
        except BaseException as exc:  # e.g. a task that cannot be pickled: the future says so
            self._make_idle(worker)
            future.set_exception(exc)
            return
        future.set_result(outcome)
        try:
            memory = worker.connection.recv()
        except (EOFError, OSError):  # gone while releasing memory, or the pool was closed: not this stage's
            self._drop(worker)
            return
        self._after_task(worker, task, memory)

    def _after_task(self, worker: _Worker, task: StageTask, memory: WorkerMemory) -> None:
        retire, worker.baseline = self.policy.retire(memory, worker.baseline)
        if task.events_file:
            sink = EventSink(task.events_file, task.name)
            try:
                sink({**memory.event(), "retired": retire})
            except OSError:
                pass  # NOTE: a record of where the stage ran, never a reason to fail the run
            finally:
                sink.close()
        if not retire:
            self._make_idle(worker)
            return
        _tell_to_stop(worker)
        _join(worker, _STOP_SECONDS)
        self._drop(worker)

    def _make_idle(self, worker: _Worker) -> None:
        with self._free:
            if worker in self._workers:  # not closed meanwhile
                self._idle.append(worker)
            self._free.notify_all()

    def _drop(self, worker: _Worker) -> None:
        """``worker`` is gone (or going): forget it, close our end, and let a waiting submit start another."""
        with self._free:
            self._forget(worker)
            self._free.notify_all()
        try:
            worker.connection.close()
        except OSError:
            pass

    def _forget(self, worker: _Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)


def _tell_to_stop(worker: _Worker) -> None:
    try:
        worker.connection.send(None)
    except OSError:
        pass  # already gone


def _join(worker: _Worker, timeout: float | None) -> None:
    worker.process.join(timeout)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join()
    try:
        worker.connection.close()
    except OSError:
        pass


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
