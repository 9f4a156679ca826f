"""Log a run to MLflow: one parent run for the pipeline run, one nested run per stage.

* Tracking URI: ``$MLFLOW_TRACKING_URI``, else a SQLite store beside the pipeline,
  ``.compressflow/mlflow.db`` (artifacts in ``.compressflow/mlartifacts``); browse it with
  ``mlflow ui --backend-store-uri sqlite:///.compressflow/mlflow.db``.
* Experiment: ``$MLFLOW_EXPERIMENT_NAME``, else the pipeline's name.
* Parent run: the pipeline's params, the run's status and counts, the metrics of every
  evaluate stage (``<stage>.<model>.<metric>``) and the run record as an artifact.
* Stage runs (stages that ran or were cached, or failed): the resolved config flattened
  into params (``schedule.final_sparsity``), tags with the stage type, status and cache
  key; metrics: evaluate's per model (``<model>.accuracy``, ``<model>.gzip_compression``...),
  a training stage's final figures and its per-epoch history (``epoch_loss`` at step =
  epoch), select's numbers; artifacts: evaluate's and select's files, exported files,
  TensorBoard logs.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_\-. /]")
_STATUS = {"ran": "FINISHED", "cached": "FINISHED", "failed": "FAILED"}
_MAX_PARAM = 6000


def default_tracking_uri(pipeline_root: Path) -> str:
    """``sqlite:///<pipeline folder>/.compressflow/mlflow.db``."""
    return f"sqlite:///{(Path(pipeline_root) / '.compressflow' / 'mlflow.db').resolve()}"


class MlflowTracker:
    """Logs finished runs of ``pipeline`` to MLflow (see the module docstring)."""

    name = "mlflow"

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(pipeline.root)
        self.experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or pipeline.name

    def log_run(self, record: dict[str, Any]) -> dict[str, Any]:
        """Log a finished run's record; returns where it went (kept in the record)."""
        from mlflow.tracking import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=self.tracking_uri)
        experiment_id = self._experiment(client)
        parent = client.create_run(experiment_id, run_name=f"{record['pipeline']['name']} {record['id']}",
                                   start_time=_ms(record["started_at"]),
                                   tags={"compressflow.run_id": record["id"],
                                         "compressflow.pipeline": str(record["pipeline"].get("path")),
                                         "compressflow.argv": " ".join(record.get("argv", [])),
                                         "compressflow.status": record["status"]})
        parent_id = parent.info.run_id
        params = dict(flatten(record["pipeline"].get("params") or {}, "params"))
        params["seed"] = record["pipeline"].get("seed")
        metrics = {f"stages.{status}": count for status, count in record.get("counts", {}).items()}
        for name, stage in record["stages"].items():
            if stage.get("status") not in _STATUS:
                continue
            self._log_stage(client, experiment_id, parent_id, name, stage, record)
            if "metrics" in stage:
                metrics.update({f"{name}.{key}": value for key, value in evaluate_metrics(stage["metrics"]).items()})
        _log_batch(client, parent_id, params=params, metrics=metrics, step=0)
        client.log_dict(parent_id, record, "run.json")
        client.set_terminated(parent_id, status="FINISHED" if record["status"] == "ok" else "FAILED",
                              end_time=_ms(record.get("ended_at") or record["started_at"]))
        return {"mlflow": {"tracking_uri": self.tracking_uri, "experiment_id": experiment_id, "run_id": parent_id}}

    def _experiment(self, client) -> str:
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if self.tracking_uri.startswith("sqlite:///") and "MLFLOW_TRACKING_URI" not in os.environ:
            location = (Path(self.pipeline.root) / ".compressflow" / "mlartifacts").resolve().as_uri()
        return client.create_experiment(self.experiment_name, artifact_location=location)

    def _log_stage(self, client, experiment_id: str, parent_id: str, name: str, stage: dict[str, Any],
                   record: dict[str, Any]) -> None:
        started = stage.get("started_at") or record["started_at"]
        run = client.create_run(experiment_id, run_name=name, start_time=_ms(started), tags={
            "mlflow.parentRunId": parent_id, "compressflow.run_id": record["id"],
            "compressflow.stage": name, "compressflow.type": stage["type"],
            "compressflow.status": stage["status"], "compressflow.key": stage["key"],
            **({"compressflow.error": stage["error"][:5000]} if stage.get("error") else {})})
        run_id = run.info.run_id
        config = {k: v for k, v in (stage.get("config") or {}).items() if k not in ("type", "description")}
        metrics = {"seconds": stage.get("seconds") or 0.0}
        history: dict[str, list[float]] = {}
        if "metrics" in stage:
            metrics.update(evaluate_metrics(stage["metrics"]))
        if "summary" in stage:
            summary = stage["summary"]
            metrics.update({k: v for k, v in summary.items() if _is_number(v)})
            metrics.update({f"sparsity.{layer}": v for layer, v in (summary.get("layers") or {}).items()
                            if _is_number(v)})
            history = {k: v for k, v in (summary.get("history") or {}).items() if isinstance(v, list)}
        if "selection" in stage and isinstance(stage["selection"], dict):
            metrics.update(dict(_numbers(flatten(stage["selection"]))))
        _log_batch(client, run_id, params=dict(flatten(config)), metrics=metrics, step=0)
        for key, values in history.items():
            series = [(step, value) for step, value in enumerate(values, start=1) if _is_number(value)]
            _log_series(client, run_id, f"epoch_{key}", series)
        if "metrics" in stage:
            client.log_dict(run_id, stage["metrics"], "metrics.json")
        if "selection" in stage:
            client.log_dict(run_id, stage["selection"], "selection.json")
        if stage.get("table"):
            client.log_text(run_id, stage["table"], "table.txt")
        for path, folder in _artifacts(stage):
            if path.is_dir():
                client.log_artifacts(run_id, str(path), folder)
            elif path.is_file():
                client.log_artifact(run_id, str(path), folder)
        client.set_terminated(run_id, status=_STATUS[stage["status"]],
                              end_time=_ms(stage.get("ended_at") or started))


# --------------------------------------------------------------------------- values


def flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``{"schedule": {"final_sparsity": 0.9}}`` -> ``("schedule.final_sparsity", 0.9)``;
    lists stay whole (as JSON text when they hold more than numbers and text)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def evaluate_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Every number an evaluate stage measured, as ``<model>.<metric>``."""
    out = {}
    for model, values in (metrics.get("models") or {}).items():
        for key, value in values.items():
            if _is_number(value):
                out[f"{model}.{key}"] = value
    return out


def _numbers(pairs: Iterable[tuple[str, Any]]) -> Iterable[tuple[str, float]]:
    return ((key, value) for key, value in pairs if _is_number(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _key(name: str) -> str:
    return _NOT_ALLOWED.sub("_", name)[:250]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM]


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _log_batch(client, run_id: str, *, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric, Param

    now = _ms(time.time())
    param_list = [Param(_key(k), _param_value(v)) for k, v in params.items()]
    metric_list = [Metric(_key(k), float(v), now, step) for k, v in metrics.items() if _is_number(v)]
    # NOTE: MLflow takes at most 100 params and 1000 metrics per batch call.
    for start in range(0, max(len(param_list), 1), 100):
        chunk = param_list[start:start + 100]
        if chunk:
            client.log_batch(run_id, params=chunk)
    for start in range(0, len(metric_list), 1000):
        client.log_batch(run_id, metrics=metric_list[start:start + 1000])


def _log_series(client, run_id: str, key: str, series: list[tuple[int, float]]) -> None:
    from mlflow.entities import Metric

    now = _ms(time.time())
    metrics = [Metric(_key(key), float(value), now, step) for step, value in series]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])


def _artifacts(stage: dict[str, Any]) -> list[tuple[Path, str | None]]:
    out: list[tuple[Path, str | None]] = [(Path(p), "published") for p in stage.get("published", [])]
    if stage.get("tensorboard_dir"):
        out.append((Path(stage["tensorboard_dir"]), "tensorboard"))
    return out
