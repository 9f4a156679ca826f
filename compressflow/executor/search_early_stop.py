"""Early stopping of a ``search`` trial: is the model of the watched recipe stage already too far off?

The watched stage's model is measured as the trial's output will be (the search's ``measure``
stage type, on its ``data``, against its ``baseline``). The trial stops when that model misses the
constraint of ``early_stop.metric`` by more than ``early_stop.margin``. The decision depends only on
the trial's own measurement, never on other trials, so the same params stop the same way with
``--jobs 1`` or ``--jobs 2``, resumed or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# NOTE: accuracy is a ratio of sample counts; a miss of exactly the margin must not stop a trial.
_EPSILON = 1e-9


@dataclass
class Verdict:
    """What the intermediate measurement says of one trial."""

    value: float | None  # the watched metric of the intermediate model (reported to Optuna)
    violation: float | None  # how far past its constraint it is (at most 0 where met); None: not measured
    stop: bool
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)  # the intermediate model's
    base: dict[str, Any] = field(default_factory=dict)  # the baseline's, in the same measurement

    def as_record(self, early_stop) -> dict[str, Any]:
        """The verdict as a trial keeps it (``trials.json``)."""
        return {"after": early_stop.after, "metric": early_stop.metric, "margin": early_stop.margin,
                "value": self.value, "violation": self.violation, "stopped": self.stop,
                "metrics": self.metrics}


def judge_intermediate(stage, metrics: dict[str, Any], base: dict[str, Any]) -> Verdict:
    """The verdict of search stage ``stage``'s ``early_stop`` on an intermediate model's ``metrics``."""
    early, limits = stage.early_stop, stage.constraints
    value, violation, text = None, None, ""
    if early.metric == "accuracy":
        value = metrics.get("accuracy")
        if value is not None and base.get("accuracy") is not None:
            drop = base["accuracy"] - value
            violation = drop - limits.max_accuracy_drop
            text = (f"accuracy {drop * 100:.2f} pt below baseline (max {limits.max_accuracy_drop * 100:g} "
                    f"+ margin {early.margin * 100:g})")
    elif early.metric == "gzip_compression":
        if metrics.get("gzip_bytes") and base.get("gzip_bytes"):
            value = base["gzip_bytes"] / metrics["gzip_bytes"]
            violation = limits.min_compression - value
            text = f"gzip compression {value:.2f}x (min {limits.min_compression:g}x - margin {early.margin:g})"
    else:
        value = metrics.get("latency_ms_median")
        if value is not None:
            violation = value - limits.max_latency_ms
            text = f"latency {value:.3g} ms (max {limits.max_latency_ms:g} + margin {early.margin:g} ms)"
    stop = violation is not None and violation > early.margin + _EPSILON
    reason = f"stopped after {early.after}: {text}" if stop else ""
    return Verdict(value, violation, stop, reason, metrics, base)
