"""What a report shows, taken out of a run record: evaluations, selections, training curves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Evaluation:
    """One evaluate stage's results: models in the order the stage lists them."""

    stage: str
    baseline: str | None
    models: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    task: str = "classification"

    @property
    def primary(self) -> str:
        """The metric the task is judged by first (``accuracy``, ``mae``...): the table's metric column."""
        from compressflow.stages.tasks import PRIMARY_METRIC

        return PRIMARY_METRIC.get(self.task, "accuracy")

    def pareto(self) -> list[str]:
        """Models no other model beats on both accuracy and gzip size (smallest first)."""
        return pareto_front({name: (m.get("gzip_bytes"), m.get("accuracy")) for name, m in self.models.items()})


@dataclass
class Selection:
    """One select stage's result."""

    stage: str
    selection: dict[str, Any]
    table: str | None


@dataclass
class TrainingCurve:
    """The per-epoch history of a training stage (``loss``, ``val_accuracy``...)."""

    stage: str
    kind: str
    history: dict[str, list[float]]


def pareto_front(points: dict[str, tuple[float | None, float | None]]) -> list[str]:
    """Names of the points (size, accuracy) not dominated by another: no other is at most
    as large and at least as accurate, and strictly better in one. Smallest first."""
    valid = {name: p for name, p in points.items() if p[0] is not None and p[1] is not None}
    front = []
    for name, (size, acc) in valid.items():
        dominated = any(other_size <= size and other_acc >= acc and (other_size < size or other_acc > acc)
                        for other, (other_size, other_acc) in valid.items() if other != name)
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: (valid[n][0], -valid[n][1]))


def evaluations(record: dict[str, Any]) -> list[Evaluation]:
    """Every evaluate stage of the run that has metrics."""
    out = []
    for name, stage in record.get("stages", {}).items():
        metrics = stage.get("metrics")
        if not isinstance(metrics, dict) or not isinstance(metrics.get("models"), dict):
            continue
        listed = (stage.get("config") or {}).get("models") or []
        order = [m for m in listed if m in metrics["models"]] + [m for m in metrics["models"] if m not in listed]
        out.append(Evaluation(stage=name, baseline=metrics.get("baseline"),
                              models={m: metrics["models"][m] for m in order},
                              notes=list(metrics.get("notes") or []), data=dict(metrics.get("data") or {}),
                              status=stage.get("status", ""), task=metrics.get("task") or "classification"))
    return out


def selections(record: dict[str, Any]) -> list[Selection]:
    """Every select stage of the run that has a selection."""
    return [Selection(name, stage["selection"], stage.get("table"))
            for name, stage in record.get("stages", {}).items() if isinstance(stage.get("selection"), dict)]


def training_curves(record: dict[str, Any]) -> list[TrainingCurve]:
    """Training stages whose summary holds a per-epoch history of at least two epochs."""
    out = []
    for name, stage in record.get("stages", {}).items():
        history = (stage.get("summary") or {}).get("history")
        if isinstance(history, dict) and any(isinstance(v, list) and len(v) > 1 for v in history.values()):
            out.append(TrainingCurve(name, stage.get("type", ""), {k: v for k, v in history.items()
                                                                   if isinstance(v, list)}))
    return out


def selected_names(selection: dict[str, Any]) -> list[str]:
    """The model names a selection picked, whatever key it uses (``selected``, ``best``...)."""
    for key in ("selected", "best", "chosen", "winner", "model"):
        value = selection.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        if isinstance(value, dict) and isinstance(value.get("name") or value.get("model"), str):
            return [value.get("name") or value.get("model")]
    return []
