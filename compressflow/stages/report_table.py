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


def _row(name: str, metrics: dict[str, Any], is_baseline: bool) -> list[str]:
    delta = metrics.get("accuracy_delta")
    return [
        name + (" *" if is_baseline else ""),
        metrics.get("label", metrics.get("kind", "")),
        _number(metrics.get("accuracy"), ".4f"),
        _MISSING if is_baseline or delta is None else f"{delta * 100:+.2f} pt",
        f"{metrics['params']:,}",
        _number(None if metrics.get("sparsity") is None else metrics["sparsity"] * 100, ".1f", "%"),
        human_bytes(metrics.get("gzip_bytes")),
        _MISSING if is_baseline else readable(metrics.get("gzip_compression"), "x"),
        readable(metrics.get("latency_ms_median")),
        _MISSING if is_baseline else readable(metrics.get("speedup"), "x"),
    ]


def format_table(models: dict[str, dict[str, Any]], baseline: str | None, notes: list[str] = ()) -> str:
    """A readable table of every model's metrics, baseline marked ``*``, notes below."""
    rows = [list(COLUMNS)] + [_row(name, metrics, name == baseline) for name, metrics in models.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def render(row: list[str]) -> str:
        cells = [cell.rjust(width) if COLUMNS[i] in _RIGHT else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    lines = [render(rows[0]), render(["-" * w for w in widths])] + [render(row) for row in rows[1:]]
    footer = []
    if baseline is not None:
        footer.append(f"* baseline: {baseline}. delta: accuracy points against it; ratio: its gzip size / "
                      "the model's; speed-up: its median latency / the model's.")
    footer.append("sparsity: share of zero kernel weights; latency: median per sample, batch 1.")
    footer.extend(notes)
    return "\n".join(lines + [""] + footer) + "\n"
