"""Run stages on a Dask cluster: a local one (``--workers N``) or a running scheduler (``--scheduler``).

:class:`DaskRunner` is a :class:`~compressflow.executor.runners.Runner`: the shared
scheduling loop submits each stage when its inputs are committed, and gets back a
``concurrent.futures.Future`` of its :class:`~compressflow.executor.task.TaskOutcome`.
Each stage runs :func:`~compressflow.executor.task.execute` on a worker, which opens the
shared cache itself, so nothing but the task description and its outcome travels through
Dask. A worker that dies mid-stage leaves no committed entry; the scheduler runs the task
again on another worker (up to ``distributed.scheduler.allowed-failures`` times), which
takes over the dead holder's lock and recomputes.

Log lines and progress events of stages on workers are sent to the client as Dask events
and written to the run's event files (or printed), as for stages run locally.

``distributed`` is imported lazily: it is an install extra (``compressflow[dask]``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from compressflow.errors import UsageError
from compressflow.executor.process_setup import configure_tensorflow_environment
from compressflow.executor.runners import Runner
from compressflow.executor.task import FAILED, StageTask, TaskOutcome, execute

EVENTS_TOPIC = "compressflow-events"
INSTALL_HINT = "install the [dask] extra: pip install 'compressflow[dask]'"
_EVENT_WAIT_SECONDS = 5.0


def import_distributed():
    """The ``distributed`` module, or a UsageError (exit 2) saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(f"--executor dask needs Dask's distributed scheduler; {INSTALL_HINT}") from None
    return distributed


def parse_resources(text: str | None) -> dict[str, float]:
    """``"GPU=1,CPU=2"`` -> ``{"GPU": 1.0, "CPU": 2.0}`` (UsageError on anything else)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, amount = part.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or value <= 0:
            raise UsageError(f"bad worker resource {part!r}: write NAME=AMOUNT, e.g. GPU=1,CPU=2")
        out[name.strip()] = value
    return out


def describe_resources(resources: dict[str, float]) -> str:
    return ", ".join(f"{name}={amount:g}" for name, amount in sorted(resources.items())) or "none"


# ---------------------------------------------------------------------------------- worker side


class _ForwardingSink:
    """An event sink (like :class:`~compressflow.executor.events.EventSink`) that sends to the client."""

    def __init__(self, stage: str, task_id: str, target: str | None):
        self.stage = stage
        self.task_id = task_id
        self.target = target
        self.sent = 0

    def __call__(self, event: dict[str, Any]) -> None:
        from distributed import get_worker

        record = {"event": "progress", **event, "stage": self.stage, "time": time.time()}
        line = json.dumps(record, default=_json_default)
        get_worker().log_event(EVENTS_TOPIC, {"task": self.task_id, "file": self.target, "line": line})
        self.sent += 1

    def log(self, text: str) -> None:
        for line in str(text).splitlines() or [""]:
            self({"event": "log", "text": line})

    def close(self) -> None:
        pass


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def run_on_worker(task: StageTask, task_id: str, forward: bool, events_target: str | None) -> tuple[TaskOutcome, int]:
    """Execute ``task`` on a Dask worker; return its outcome and how many events it forwarded."""
    # NOTE: before any stage imports TensorFlow in this worker; the task put the pipeline's folder on the
    # import path when it was unpickled, and execute imports the pipeline's `imports:` (see process_setup).
    configure_tensorflow_environment()
    sink = _ForwardingSink(task.name, task_id, events_target) if forward else None
    outcome = execute(task, events=sink)
    return outcome, sink.sent if sink else 0


# ---------------------------------------------------------------------------------- client side


class DaskRunner(Runner):
    """Submit stages to a Dask cluster.

    ``scheduler`` is the address of a running scheduler (``tcp://host:8786``); without it a
    ``distributed.LocalCluster`` of ``workers`` processes (one thread each) is started on
    127.0.0.1 with ``worker_resources`` on each worker. ``stage_resources`` maps stage names
    to the worker resources one run takes (see the stage field ``resources``).
    """

    def __init__(self, *, scheduler: str | None = None, workers: int = 2,
                 worker_resources: dict[str, float] | None = None,
                 stage_resources: dict[str, dict[str, float]] | None = None,
                 connect_timeout: float = 30.0):
        distributed = import_distributed()
        self.stage_resources = dict(stage_resources or {})
        self.is_local = scheduler is None
        self._cluster = None
        self._lock = threading.Lock()
        self._received: dict[str, int] = {}
        self._futures: list[Any] = []
        if self.is_local:
            self._cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                # NOTE: without a port of its own the scheduler's HTTP server takes 8787, which a
                # second cluster on the machine would find taken.
                dashboard_address="127.0.0.1:0", resources=worker_resources or None,
                env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
            self.client = distributed.Client(self._cluster)
            self.address = self._cluster.scheduler_address
        else:
            self.address = scheduler
            try:
                self.client = distributed.Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            try:
                self.client.wait_for_workers(1, timeout=connect_timeout)
            except TimeoutError:
                self.client.close()
                raise UsageError(f"the Dask scheduler at {scheduler} has no workers (waited "
                                 f"{connect_timeout:g}s); start some with: dask worker {scheduler}") from None
        self.client.subscribe_topic(EVENTS_TOPIC, self._on_event)
        self.capacity = max(1, sum(w["nthreads"] for w in self._workers().values()))

    # ------------------------------------------------------------------ resources

    def _workers(self) -> dict[str, dict[str, Any]]:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def resources_of(self, name: str) -> dict[str, float]:
        return dict(self.stage_resources.get(name) or {})

    def unmet_resources(self, names: list[str]) -> dict[str, str]:
        """For each of ``names`` that no worker can run now, why (empty when all can run)."""
        offered = [dict(w.get("resources") or {}) for w in self._workers().values()]
        problems = {}
        for name in names:
            wanted = self.resources_of(name)
            if not wanted or any(all(o.get(r, 0) >= a for r, a in wanted.items()) for o in offered):
                continue
            kinds = sorted({describe_resources(o) for o in offered}) or ["no workers"]
            problems[name] = (f"stage '{name}' needs worker resources {describe_resources(wanted)}, but no worker "
                              f"of the Dask cluster at {self.address} offers them (workers offer: "
                              f"{'; '.join(kinds)})")
        return problems

    def check_resources(self, names: list[str]) -> None:
        """UsageError naming every stage of ``names`` that no worker could run."""
        problems = self.unmet_resources(names)
        if problems:
            hint = ("start workers with them (dask worker ADDRESS --resources \"GPU=1\")" if not self.is_local
                    else "give the local workers resources with --worker-resources, e.g. GPU=1")
            raise UsageError("; ".join(problems.values()) + f"; {hint}")

    # ------------------------------------------------------------------ submitting

    def submit(self, task: StageTask) -> "Future[TaskOutcome]":
        result: Future[TaskOutcome] = Future()
        result.set_running_or_notify_cancel()
        unmet = self.unmet_resources([task.name]) if self.resources_of(task.name) else {}
        if unmet:
            result.set_result(TaskOutcome(task.name, FAILED, error=unmet[task.name]))
            return result
        forward = not self.is_local
        events_target = task.events_file
        if forward:
            # NOTE: paths of this machine mean nothing on a remote worker: its events come back as
            # Dask events, its native stderr stays in the worker's log, TensorBoard logs are skipped.
            task = dataclasses.replace(task, events_file=None, stderr_log=None, tensorboard_dir=None)
        task_id = f"compressflow-{task.name}-{task.key[:12]}-{uuid.uuid4().hex[:8]}"
        resources = self.resources_of(task.name)
        future = self.client.submit(run_on_worker, task, task_id, forward, events_target, key=task_id,
                                    pure=False, resources=resources or None)
        with self._lock:
            self._futures.append(future)
        future.add_done_callback(lambda done: self._settle(done, task, task_id, result))
        return result

    def _settle(self, done: Any, task: StageTask, task_id: str, result: "Future[TaskOutcome]") -> None:
        try:
            outcome, sent = done.result()
        except BaseException as exc:  # the task never returned: worker deaths, cancellation
            result.set_result(TaskOutcome(task.name, FAILED, error=_infrastructure_error(exc)))
            return
        finally:
            # NOTE: a result held by a worker that dies later would be recomputed while a future
            # refers to it; the outcome is all we need, so let Dask forget the task.
            with self._lock:
                if done in self._futures:
                    self._futures.remove(done)
            done.release()
        deadline = time.monotonic() + _EVENT_WAIT_SECONDS
        while self._received.get(task_id, 0) < sent and time.monotonic() < deadline:
            time.sleep(0.02)  # NOTE: let the stage's last log lines arrive before it is reported finished
        result.set_result(outcome)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _timestamp, message = event
        try:
            target, line = message.get("file"), message["line"]
            if target:
                path = Path(target)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
            else:
                record = json.loads(line)
                if record.get("event") == "log":
                    print(f"  [{record.get('stage')}] {record.get('text', '')}", flush=True)
        except Exception as exc:  # NOTE: a display problem must never stop the run
            print(f"warning: could not show an event from a Dask worker: {exc}", file=sys.stderr)
        finally:
            task_id = message.get("task") if isinstance(message, dict) else None
            if task_id:
                with self._lock:
                    self._received[task_id] = self._received.get(task_id, 0) + 1

    def close(self, *, cancel: bool = False) -> None:
        try:
            if cancel:
                with self._lock:
                    futures = list(self._futures)
                if futures:
                    self.client.cancel(futures, force=True)
            self.client.close()
        finally:
            if self._cluster is not None:
                # NOTE: a worker that used s3fs can take seconds to tear its interpreter down; the
                # nanny then kills it, which is harmless here (every stage has committed or failed).
                nanny_log = logging.getLogger("distributed.nanny")
                level = nanny_log.level
                nanny_log.setLevel(logging.ERROR)
                try:
                    self._cluster.close()
                finally:
                    nanny_log.setLevel(level)


def _infrastructure_error(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("the Dask workers running this stage kept dying (see the workers' logs; "
                "distributed.scheduler.allowed-failures sets how often it is retried)")
    if name == "CancelledError":
        return "cancelled"
    return f"{name}: {exc}"
