"""``require:`` gates of ``evaluate``: which models miss which requirement, in words and numbers."""

from __future__ import annotations

from typing import Any

from compressflow.errors import GateFailed


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
            if drop > require.max_accuracy_drop:
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
    return problems


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
