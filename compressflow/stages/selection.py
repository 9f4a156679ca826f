"""Choosing one model among candidates from an evaluation's metrics (what ``select`` decides).

Pure functions over the ``metrics.json`` of an ``evaluate`` stage: no TensorFlow, no files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compressflow.stages.gates import EPSILON, bound_problems
from compressflow.stages.report_table import delta_text, human_bytes, metric_text, readable

MINIMIZE, MAXIMIZE = "minimize", "maximize"


@dataclass(frozen=True)
class Metric:
    """A metric ``select`` can rank by: its key in evaluate's metrics and its natural goal."""

    key: str
    goal: str
    title: str
    unit: str = ""  # "bytes", "ratio", "share", "ms" or "" (a plain number)


#: Metric names a pipeline writes, and the evaluate metrics they read.
METRICS: dict[str, Metric] = {
    "gzip_size": Metric("gzip_bytes", MINIMIZE, "gzip size", "bytes"),
    "size": Metric("file_bytes", MINIMIZE, "file size", "bytes"),
    "latency_ms": Metric("latency_ms_median", MINIMIZE, "median latency (ms)", "ms"),
    "latency_ms_p90": Metric("latency_ms_p90", MINIMIZE, "p90 latency (ms)", "ms"),
    "accuracy": Metric("accuracy", MAXIMIZE, "accuracy", "share"),
    "params": Metric("params", MINIMIZE, "parameters"),
    "nonzero_params": Metric("nonzero_params", MINIMIZE, "non-zero parameters"),
    "sparsity": Metric("sparsity", MAXIMIZE, "sparsity", "share"),
    "compression": Metric("compression", MAXIMIZE, "compression (file size)", "ratio"),
    "gzip_compression": Metric("gzip_compression", MAXIMIZE, "compression (gzip size)", "ratio"),
    "speedup": Metric("speedup", MAXIMIZE, "speed-up", "ratio"),
}


@dataclass(frozen=True)
class Constraints:
    """Limits a candidate must meet, against the evaluation's baseline where they compare."""

    max_accuracy_drop: float | None = None
    min_compression: float | None = None
    max_latency_ms: float | None = None
    metrics: dict[str, Any] | None = None  # metric name -> gates.MetricBound

    def as_json(self) -> dict[str, Any]:
        """The constraints as plain data (for ``selection.json``)."""
        return {"max_accuracy_drop": self.max_accuracy_drop, "min_compression": self.min_compression,
                "max_latency_ms": self.max_latency_ms,
                "metrics": {name: bound.model_dump(exclude_none=True) for name, bound in (self.metrics or {}).items()}
                or None}

    def describe(self) -> str:
        parts = []
        if self.max_accuracy_drop is not None:
            points = self.max_accuracy_drop * 100
            parts.append(f"accuracy drop <= {points:g} point{'' if points == 1 else 's'}")
        if self.min_compression is not None:
            parts.append(f"gzip compression >= {self.min_compression:g}x")
        if self.max_latency_ms is not None:
            parts.append(f"median latency <= {self.max_latency_ms:g} ms")
        parts.extend(bound.describe(name) for name, bound in (self.metrics or {}).items())
        return ", ".join(parts) or "none"


@dataclass
class Candidate:
    """One candidate judged: its metrics, its value of the ranking metric, and why it failed."""

    name: str
    metrics: dict[str, Any]
    value: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons


# NOTE: accuracy is a ratio of sample counts; a drop of exactly the allowed points can come
# out a hair above it in floating point and must still pass.
_EPSILON = EPSILON


def judge(names: list[str], models: dict[str, dict[str, Any]], baseline: str | None, metric: Metric,
          constraints: Constraints) -> list[Candidate]:
    """Every candidate with its metric value and the constraints it breaks (in words and numbers)."""
    base = models.get(baseline) if baseline is not None else None
    judged = []
    for name in names:
        metrics = models[name]
        value = metrics.get(metric.key)
        candidate = Candidate(name, metrics, value)
        if value is None:
            candidate.reasons.append(f"no {metric.title} measured")
        if constraints.max_accuracy_drop is not None and base is not None:
            drop = base["accuracy"] - metrics["accuracy"]
            if drop > constraints.max_accuracy_drop + _EPSILON:
                candidate.reasons.append(f"accuracy {drop * 100:.2f} pt below baseline "
                                         f"(max {constraints.max_accuracy_drop * 100:g})")
        if constraints.min_compression is not None and base is not None:
            ratio = base["gzip_bytes"] / metrics["gzip_bytes"] if metrics.get("gzip_bytes") else None
            if ratio is None or ratio < constraints.min_compression:
                shown = "-" if ratio is None else f"{ratio:.2f}x"
                candidate.reasons.append(f"gzip compression {shown} (min {constraints.min_compression:g}x)")
        if constraints.max_latency_ms is not None:
            latency = metrics.get("latency_ms_median")
            if latency is None:
                candidate.reasons.append("no latency measured")
            elif latency > constraints.max_latency_ms:
                candidate.reasons.append(f"latency {latency:.3g} ms (max {constraints.max_latency_ms:g})")
        for metric_name, bound in (constraints.metrics or {}).items():
            prefix = f"model {name!r}: "
            candidate.reasons.extend(problem.removeprefix(prefix)
                                     for problem in bound_problems(name, metric_name, metrics, bound, base, baseline))
        judged.append(candidate)
    return judged


def choose(judged: list[Candidate], goal: str) -> Candidate | None:
    """The best candidate that passed; ties go to higher accuracy, then smaller gzip size, then list order."""
    passed = [(index, c) for index, c in enumerate(judged) if c.passed]
    if not passed:
        return None

    def rank(item: tuple[int, Candidate]) -> tuple:
        index, candidate = item
        value = candidate.value if goal == MINIMIZE else -candidate.value
        return (value, -candidate.metrics.get("accuracy", 0.0), candidate.metrics.get("gzip_bytes", 0), index)

    return min(passed, key=rank)[1]


def format_value(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return human_bytes(int(value))
    if unit == "share":
        return f"{value:.4f}"
    if unit == "ratio":
        return readable(value, "x")
    if unit == "ms":
        return readable(value)
    return f"{value:,}" if isinstance(value, int) else readable(value)


COLUMNS = ("candidate", "kind", "{primary}", "delta", "size", "gzip size", "latency ms", "{metric}", "passed",
           "why not")
_LEFT = {"candidate", "kind", "passed", "why not"}


def selection_table(judged: list[Candidate], chosen: Candidate | None, metric_name: str, goal: str,
                    baseline: str | None, base_metrics: dict[str, Any] | None, constraints: Constraints,
                    metric: Metric | None = None, primary: str = "accuracy") -> str:
    """A fixed-width table of every candidate, the chosen one marked ``*``, and how it was chosen.

    ``primary`` is the task's main metric (accuracy, mae...), shown with its delta against the baseline.
    """
    metric = metric or METRICS[metric_name]
    header = [metric_name if column == "{metric}" else primary if column == "{primary}" else column
              for column in COLUMNS]
    rows = [header]
    for candidate in judged:
        m = candidate.metrics
        base_value = None if base_metrics is None else base_metrics.get(primary)
        delta = None if base_value is None or m.get(primary) is None else m[primary] - base_value
        rows.append([
            candidate.name + (" *" if candidate is chosen else ""),
            m.get("label", m.get("kind", "")),
            metric_text(primary, m.get(primary)),
            delta_text(primary, delta, base_value),
            format_value(m.get("file_bytes"), "bytes"),
            format_value(m.get("gzip_bytes"), "bytes"),
            format_value(m.get("latency_ms_median"), "ms"),
            format_value(candidate.value, metric.unit),
            "yes" if candidate.passed else "no",
            "; ".join(candidate.reasons),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def render(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) if COLUMNS[i] in _LEFT else cell.rjust(width)
                         for i, (cell, width) in enumerate(zip(row, widths))).rstrip()

    lines = [render(rows[0]), render(["-" * w for w in widths])] + [render(row) for row in rows[1:]]
    passed = sum(1 for c in judged if c.passed)
    best = "smallest" if goal == MINIMIZE else "largest"
    if chosen is not None:
        lines += ["", f"* selected: {chosen.name}, the {best} {metric.title} of the {passed} of {len(judged)} "
                      f"candidates that passed."]
    else:
        lines += ["", f"no candidate passed ({len(judged)} judged)."]
    base_value = None if base_metrics is None else base_metrics.get(primary)
    lines.append(f"constraints: {constraints.describe()}"
                 + (f"; baseline: {baseline} ({primary} {metric_text(primary, base_value)})"
                    if baseline is not None and base_metrics is not None else ""))
    return "\n".join(lines) + "\n"
