"""The fixed-width table ``evaluate`` writes to ``table.txt`` and prints at the end of a run."""

from __future__ import annotations

from typing import Any

COLUMNS = ("model", "kind", "accuracy", "delta", "params", "sparsity", "gzip size", "ratio",
           "latency ms", "speed-up")
_RIGHT = {"accuracy", "delta", "params", "sparsity", "gzip size", "ratio", "latency ms", "speed-up"}
_MISSING = "-"


def human_bytes(count: int | None) -> str:
    """``5968`` -> ``5.8 KiB``."""
    if count is None:
        return _MISSING
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _number(value: float | None, fmt: str, suffix: str = "") -> str:
    return _MISSING if value is None else f"{value:{fmt}}{suffix}"


def readable(value: float | None, suffix: str = "") -> str:
    """A positive quantity with the digits that matter: ``123``, ``12.3``, ``1.23``, ``0.00312``."""
    if value is None:
        return _MISSING
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return text + suffix


def metric_text(name: str, value: float | None) -> str:
    """A metric as the table shows it: accuracies (shares) with 4 decimals, others with 4 significant digits."""
    if value is None:
        return _MISSING
    return f"{value:.4f}" if name.endswith("accuracy") or name == "f1" else f"{value:.4g}"


def delta_text(name: str, delta: float | None, base: float | None = None) -> str:
    """``+0.50 pt`` for an accuracy; for another metric the change as a share of the baseline's value
    (``-5.9%``), or the plain difference when the baseline's value is 0 or not given."""
    if delta is None:
        return _MISSING
    if name == "accuracy":
        return f"{delta * 100:+.2f} pt"
    return f"{delta / abs(base) * 100:+.1f}%" if base else f"{delta:+.4g}"


def _base(metrics: dict[str, Any], name: str) -> float | None:
    """The baseline's value of ``name``, from a model's value and its delta."""
    value, delta = metrics.get(name), metrics.get(f"{name}_delta")
    return None if value is None or delta is None else value - delta


def _row(name: str, metrics: dict[str, Any], is_baseline: bool, shown: list[str], primary: str | None) -> list[str]:
    delta = metrics.get(f"{primary}_delta") if primary else None
    return [
        name + (" *" if is_baseline else ""),
        metrics.get("label", metrics.get("kind", "")),
        *(metric_text(metric, metrics.get(metric)) for metric in shown),
        *([] if primary is None else [
            _MISSING if is_baseline else delta_text(primary, delta, _base(metrics, primary))]),
        f"{metrics['params']:,}",
        _number(None if metrics.get("sparsity") is None else metrics["sparsity"] * 100, ".1f", "%"),
        human_bytes(metrics.get("gzip_bytes")),
        _MISSING if is_baseline else readable(metrics.get("gzip_compression"), "x"),
        readable(metrics.get("latency_ms_median")),
        _MISSING if is_baseline else readable(metrics.get("speedup"), "x"),
    ]


def format_table(models: dict[str, dict[str, Any]], baseline: str | None, notes: list[str] = (),
                 metrics: list[str] | None = None, primary: str | None = None) -> str:
    """A readable table of every model's metrics, baseline marked ``*``, notes below.

    ``metrics`` are the columns measured from predictions (default: accuracy), ``primary`` the one
    whose delta against the baseline is shown (default: the first).
    """
    shown = [name for name in (metrics or ["accuracy"]) if not name.startswith("top")]
    primary = primary or (shown[0] if shown else None)
    columns = ["model", "kind", *shown, *(["delta"] if primary else []), *COLUMNS[4:]]
    right = _RIGHT | set(shown)
    rows = [columns] + [_row(name, values, name == baseline, shown, primary) for name, values in models.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]

    def render(row: list[str]) -> str:
        cells = [cell.rjust(width) if columns[i] in right else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    lines = [render(rows[0]), render(["-" * w for w in widths])] + [render(row) for row in rows[1:]]
    footer = []
    if baseline is not None:
        what = "accuracy points" if primary == "accuracy" else f"{primary} change, as a share of its {primary}"
        footer.append(f"* baseline: {baseline}. delta: {what} against it; ratio: its gzip size / "
                      "the model's; speed-up: its median latency / the model's.")
    footer.append("sparsity: share of zero kernel weights; latency: median per sample, batch 1.")
    footer.extend(notes)
    return "\n".join(lines + [""] + footer) + "\n"
