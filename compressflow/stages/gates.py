"""``require:`` gates of ``evaluate`` (and ``select``'s constraints): which models miss which requirement.

Besides the fixed gates (``max_accuracy_drop``, ``min_compression``, ``max_latency_ms``), any measured
metric can be bounded (:class:`MetricBound`): against the baseline (``max_increase`` for a metric where
lower is better, ``max_drop`` where higher is better, absolute or ``relative`` to the baseline's value)
or absolutely (``max``, ``min``). No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressflow.errors import GateFailed
from compressflow.stages.keras_names import MAXIMIZE, MINIMIZE

# NOTE: metrics are ratios of sample counts or sums of floats; a value exactly at the bound can come
# out a hair beyond it in floating point and must still pass.
EPSILON = 1e-9


class MetricBound(BaseModel):
    """Bounds on one measured metric: against the baseline (`max_increase`, `max_drop`) or absolute (`max`, `min`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_increase: float | None = Field(
        None, ge=0.0, description="Largest rise above the baseline's value, for a metric where lower is better "
                                  "(`mae: {max_increase: 0.05, relative: true}`: at most 5% above).")
    max_drop: float | None = Field(
        None, ge=0.0, description="Largest fall below the baseline's value, for a metric where higher is better.")
    relative: bool = Field(False, description="`max_increase` / `max_drop` are shares of the baseline's value "
                                              "(0.05 = 5%) instead of amounts.")
    max: float | None = Field(None, description="Largest value allowed.")
    min: float | None = Field(None, description="Smallest value allowed.")

    @model_validator(mode="after")
    def _something_bounded(self):
        if all(value is None for value in (self.max_increase, self.max_drop, self.max, self.min)):
            raise ValueError("give at least one of max_increase, max_drop, max or min")
        if self.relative and not self.compares:
            raise ValueError("'relative' goes with max_increase or max_drop")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    @property
    def compares(self) -> bool:
        """Whether the bound is against the baseline."""
        return self.max_increase is not None or self.max_drop is not None

    def direction_problem(self, name: str, goal: str | None) -> str | None:
        """Why a bound goes the wrong way for a metric whose better direction is ``goal`` (None when it does not)."""
        if goal == MINIMIZE and self.max_drop is not None:
            return f"{name} is better when lower: bound its rise with max_increase, not max_drop"
        if goal == MAXIMIZE and self.max_increase is not None:
            return f"{name} is better when higher: bound its fall with max_drop, not max_increase"
        return None

    def describe(self, name: str) -> str:
        """``mae rise <= 5%`` style text of the bounds."""
        parts = []
        for word, amount in (("rise", self.max_increase), ("drop", self.max_drop)):
            if amount is not None:
                parts.append(f"{name} {word} <= {amount * 100:g}%" if self.relative else f"{name} {word} <= {amount:g}")
        if self.max is not None:
            parts.append(f"{name} <= {self.max:g}")
        if self.min is not None:
            parts.append(f"{name} >= {self.min:g}")
        return ", ".join(parts)


def bound_problems(model: str, name: str, metrics: dict[str, Any], bound: MetricBound,
                   base: dict[str, Any] | None, baseline: str | None) -> list[str]:
    """One message per bound on metric ``name`` that ``model`` (with ``metrics``) misses."""
    value = metrics.get(name)
    if value is None:
        return [f"model {model!r}: no {name} measured"]
    problems = []
    base_value = base.get(name) if base is not None else None
    if bound.compares and base is not None:
        if base_value is None:
            problems.append(f"model {model!r}: baseline {baseline!r} has no {name} to compare with")
        else:
            problems.extend(_against_baseline(model, name, value, base_value, bound, baseline))
    if bound.max is not None and value > bound.max + EPSILON:
        problems.append(f"model {model!r}: {name} {value:.4g} is above max {bound.max:g}")
    if bound.min is not None and value < bound.min - EPSILON:
        problems.append(f"model {model!r}: {name} {value:.4g} is below min {bound.min:g}")
    return problems


def _against_baseline(model: str, name: str, value: float, base_value: float, bound: MetricBound,
                      baseline: str | None) -> list[str]:
    problems = []
    for word, allowed, change in (("above", bound.max_increase, value - base_value),
                                  ("below", bound.max_drop, base_value - value)):
        if allowed is None:
            continue
        if bound.relative:
            share = change / abs(base_value) if base_value else (float("inf") if change > 0 else 0.0)
            if share > allowed + EPSILON:
                key = "max_increase" if word == "above" else "max_drop"
                problems.append(f"model {model!r}: {name} {value:.4g} is {share * 100:.2f}% {word} baseline "
                                f"{baseline!r} ({base_value:.4g}); {key} allows {allowed * 100:g}%")
        elif change > allowed + EPSILON:
            key = "max_increase" if word == "above" else "max_drop"
            problems.append(f"model {model!r}: {name} {value:.4g} is {change:.4g} {word} baseline {baseline!r} "
                            f"({base_value:.4g}); {key} allows {allowed:g}")
    return problems


def unmet_requirements(require, models: dict[str, dict[str, Any]], baseline: str | None) -> list[str]:
    """One message per (model, requirement) that is not met.

    The models checked are ``require.models``, or every model but the baseline; the name
    of a swept stage there stands for all its variants.
    """
    problems = []
    base = models.get(baseline) if baseline is not None else None
    gated = require.models if require.models is not None else [name for name in models if name != baseline]
    for name, metrics in models.items():
        if not is_named(name, gated):
            continue
        if require.max_accuracy_drop is not None and base is not None:
            drop = base["accuracy"] - metrics["accuracy"]
            if drop > require.max_accuracy_drop + EPSILON:
                problems.append(
                    f"model {name!r}: accuracy {metrics['accuracy']:.4f} is {drop * 100:.2f} points below "
                    f"baseline {baseline!r} ({base['accuracy']:.4f}); max_accuracy_drop allows "
                    f"{require.max_accuracy_drop * 100:.2f} points")
        if require.min_compression is not None and base is not None:
            ratio = metrics.get("gzip_compression")
            if ratio is None or ratio < require.min_compression:
                problems.append(
                    f"model {name!r}: gzip size {metrics['gzip_bytes']:,} B against baseline {baseline!r}'s "
                    f"{base['gzip_bytes']:,} B is a compression of {_times(ratio)}; min_compression asks for "
                    f"at least {require.min_compression:g}x")
        if require.max_latency_ms is not None:
            latency = metrics.get("latency_ms_median")
            if latency is not None and latency > require.max_latency_ms:
                problems.append(
                    f"model {name!r}: median latency {latency:.3f} ms per sample is above "
                    f"max_latency_ms {require.max_latency_ms:g} ms")
        for metric, bound in (getattr(require, "metrics", None) or {}).items():
            problems.extend(bound_problems(name, metric, metrics, bound, base, baseline))
    return problems


def requirement_problems(require, measured: dict[str, str | None], what: str) -> list[str]:
    """Why ``require`` cannot be judged on the metrics in ``measured`` (name -> which way is better).

    ``what`` says who measures them, e.g. ``"evaluate stage 'check' on a regression"``.
    """
    from compressflow.errors import did_you_mean

    problems = []
    if require.max_accuracy_drop is not None and "accuracy" not in measured:
        problems.append(f"'max_accuracy_drop' needs accuracy, which {what} does not measure; "
                        "bound another metric under 'metrics:', e.g. {mae: {max_increase: 0.05, relative: true}}")
    for name, bound in (getattr(require, "metrics", None) or {}).items():
        if name not in measured:
            hint = did_you_mean(name, measured)
            listed = ", ".join(name for name in measured)
            problems.append(f"'metrics' names {name!r}, which {what} does not measure; "
                            + (hint if hint else f"it measures {listed}"))
            continue
        wrong = bound.direction_problem(name, measured[name])
        if wrong:
            problems.append(wrong)
    return problems


def metric_bounds(value: dict[str, MetricBound] | None) -> dict[str, MetricBound] | None:
    """``metrics:`` bounds keyed by the names evaluate reports (``mean_absolute_error`` -> ``mae``), each going
    the way its metric is better (when that is known)."""
    from compressflow.stages.tasks import goal_of, metric_name

    if value is None:
        return None
    renamed: dict[str, MetricBound] = {}
    for name, bound in value.items():
        key = metric_name(name)
        if key in renamed:
            raise ValueError(f"'metrics' bounds {key!r} twice (as {name!r} too)")
        wrong = bound.direction_problem(key, goal_of(key))
        if wrong:
            raise ValueError(wrong)
        renamed[key] = bound
    return renamed


def gate_failure(stage: str, problems: list[str]) -> GateFailed:
    """The error of evaluate stage ``stage`` whose models miss requirements (``problems``, one per line)."""
    return GateFailed(f"evaluate stage {stage!r}: {len(problems)} requirement{'s' if len(problems) != 1 else ''} "
                      "not met:\n  " + "\n  ".join(problems), fields=("require",))


def is_named(model: str, names: list[str]) -> bool:
    """Whether ``names`` holds ``model``, or the swept stage it is a variant of
    (``int8`` for ``int8[method=dynamic]``)."""
    return model in names or model.split("[", 1)[0] in names


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"
