"""The loop of one worker process: receive a task, execute it, send back its outcome.

Started by :class:`compressflow.executor.worker_pool.WorkerPool` (spawned, never forked after
TensorFlow); it dies with the process that started it (:mod:`compressflow.executor.parent_watch`).
After each outcome it releases the stage's memory and sends what it still holds
(:func:`compressflow.executor.worker_memory.measure`), by which the pool decides to keep or replace it.
"""

from __future__ import annotations

import os
import signal

from compressflow.executor.parent_watch import ParentGone, die_with_parent
from compressflow.executor.process_setup import configure_tensorflow_environment
from compressflow.executor.stage_memory import release_stage_memory
from compressflow.executor.task import CACHED, execute
from compressflow.executor.worker_memory import measure


def serve(connection, parent_pid: int) -> None:
    """Execute the tasks that arrive on ``connection`` until ``None`` arrives or the pipe closes."""
    die_with_parent(parent_pid)
    # NOTE: before any stage imports TensorFlow in this worker; each task readies the process for its
    # pipeline when it is unpickled (import path) and before its stage runs (imports:), see process_setup.
    configure_tensorflow_environment()
    try:
        while True:
            try:
                task = connection.recv()
            except EOFError:
                return
            if task is None:
                return
            outcome = execute(task)
            connection.send(outcome)
            if outcome.status != CACHED:
                release_stage_memory()  # NOTE: after answering, so the run does not wait for it
            connection.send(measure())  # what this process keeps: the pool may replace it (worker_pool)
    except ParentGone:
        os._exit(1)  # the temp entry is already removed; nobody is left to tell
    except KeyboardInterrupt:
        # NOTE: Ctrl-C reaches the whole process group; end as the signal would, without a traceback,
        # so the run says the worker was interrupted.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except (BrokenPipeError, ConnectionResetError):
        return  # the run closed its end while this worker was busy
