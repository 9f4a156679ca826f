"""The report's plots, drawn with matplotlib (Agg, no display) and returned as PNG bytes.

Each function takes an :class:`~compressflow.report.data.Evaluation` (or training curves)
and returns PNG bytes, or None when there is nothing to draw. When there is something to draw
but matplotlib cannot be imported, it raises :class:`PlotsUnavailable`.
"""

from __future__ import annotations

import io
import math
from typing import Any

from compressflow.report.data import Evaluation, TrainingCurve

KERAS_COLOR, TFLITE_COLOR, FRONT_COLOR = "#3b6fb6", "#e07b24", "#2e7d32"
_PALETTE = ("#3b6fb6", "#e07b24", "#2e7d32", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d")
_DPI = 110


INSTALL_HINT = "pip install 'compressflow[report]'"


class PlotsUnavailable(RuntimeError):
    """matplotlib cannot be imported, so a plot is not drawn (the message says why)."""


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlotsUnavailable(f"matplotlib cannot be imported ({error})") from error

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": _DPI})
    return plt


def _png(figure) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.08)
    plt.close(figure)
    return buffer.getvalue()


def _color(metrics: dict[str, Any]) -> str:
    return TFLITE_COLOR if metrics.get("kind") == "tflite_model" else KERAS_COLOR


def accuracy_vs_size(evaluation: Evaluation, selected: list[str] = ()) -> bytes | None:
    """Accuracy against gzip size (log scale); the Pareto front joined and marked."""
    points = {name: (m["gzip_bytes"] / 1024, m["accuracy"] * 100) for name, m in evaluation.models.items()
              if m.get("gzip_bytes") and m.get("accuracy") is not None}
    if not points:
        return None
    plt = _pyplot()
    from matplotlib.lines import Line2D

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    axes.set_xscale("log")
    front = [n for n in evaluation.pareto() if n in points]
    if len(front) > 1:
        xs, ys = zip(*(points[n] for n in front))
        axes.step(xs, ys, where="post", color=FRONT_COLOR, linewidth=1.5, alpha=0.8, zorder=1)
    offsets = _label_offsets(axes, points)
    for name, (x, y) in points.items():
        metrics = evaluation.models[name]
        on_front = name in front
        axes.scatter([x], [y], s=90 if on_front else 60, zorder=3,
                     marker="D" if name == evaluation.baseline else "o",
                     facecolors=_color(metrics) if on_front else "white", edgecolors=_color(metrics),
                     linewidths=1.8)
        if name in selected:
            axes.scatter([x], [y], s=320, marker="*", facecolors="none", edgecolors="#c62828", linewidths=1.4,
                         zorder=4)
        axes.annotate(name, (x, y), textcoords="offset points", xytext=offsets[name], fontsize=8.5)
    axes.set_xlabel("gzip size (KiB, log scale)")
    axes.set_ylabel("accuracy (%)")
    low = min(y for _, y in points.values())
    high = max(y for _, y in points.values())
    pad = max(0.5, (high - low) * 0.15)
    axes.set_ylim(low - pad, min(100.5, high + pad))
    xs = [x for x, _ in points.values()]
    axes.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    legend = [Line2D([], [], marker="o", linestyle="", markerfacecolor=KERAS_COLOR, markeredgecolor=KERAS_COLOR,
                     label="Keras"),
              Line2D([], [], marker="o", linestyle="", markerfacecolor=TFLITE_COLOR, markeredgecolor=TFLITE_COLOR,
                     label="TFLite"),
              Line2D([], [], color=FRONT_COLOR, label="Pareto front (filled)")]
    if evaluation.baseline in points:
        legend.append(Line2D([], [], marker="D", linestyle="", markerfacecolor="white", markeredgecolor="#555",
                             label=f"baseline ({evaluation.baseline})"))
    if any(n in points for n in selected):
        legend.append(Line2D([], [], marker="*", linestyle="", markersize=11, markerfacecolor="none",
                             markeredgecolor="#c62828", label="selected"))
    axes.legend(handles=legend, loc="best", fontsize=8, framealpha=0.9)
    axes.set_title("Accuracy against compressed size", fontsize=10)
    return _png(figure)


def _label_offsets(axes, points: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Offsets (in points) for the labels of ``points`` (x on a log scale) so that the labels of
    close points do not overlap: a label that would cover an earlier one moves down a line."""
    figure = axes.get_figure()
    width_pt = figure.get_figwidth() * 72 * 0.8   # about the axes' share of the figure
    height_pt = figure.get_figheight() * 72 * 0.75
    us = [math.log10(x) for x, _ in points.values()]
    vs = [y for _, y in points.values()]
    u_span = (max(us) - min(us)) or 1.0
    v_span = (max(vs) - min(vs)) or 1.0
    line, char = 11.0, 5.2  # label height and character width in points
    placed: list[tuple[float, float, float]] = []  # (left, bottom, right) of labels, in points
    offsets = {}
    for name, (x, y) in sorted(points.items(), key=lambda item: (-item[1][1], item[1][0])):
        px = (math.log10(x) - min(us)) / u_span * width_pt
        py = (y - min(vs)) / v_span * height_pt
        dy = 5.0
        left, right = px + 7.0, px + 7.0 + char * len(name)
        while any(left < r and other_left < right and abs(py + dy - b) < line for other_left, b, r in placed):
            dy -= line
        placed.append((left, py + dy, right))
        offsets[name] = (7.0, dy)
    return offsets


def latency(evaluation: Evaluation) -> bytes | None:
    """Median latency per sample (bars) with the 90th percentile (whiskers); log scale when
    the figures span more than 20x."""
    rows = [(name, m["latency_ms_median"], m.get("latency_ms_p90"), m) for name, m in evaluation.models.items()
            if m.get("latency_ms_median")]
    if not rows:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(rows) + 0.6))
    names = [r[0] for r in rows][::-1]
    medians = [r[1] for r in rows][::-1]
    p90 = [max(0.0, (r[2] or r[1]) - r[1]) for r in rows][::-1]
    colors = [_color(r[3]) for r in rows][::-1]
    axes.barh(names, medians, xerr=[[0] * len(p90), p90], color=colors, alpha=0.85,
              error_kw={"ecolor": "#444", "capsize": 3, "linewidth": 1})
    for y, (value, extra) in enumerate(zip(medians, p90)):
        axes.annotate(f"{value:.3g} ms", (value + extra, y), textcoords="offset points", xytext=(5, -3),
                      fontsize=8)
    if max(medians) / min(medians) > 20:
        axes.set_xscale("log")
        axes.set_xlim(min(medians) / 2, max(m + e for m, e in zip(medians, p90)) * 6)
    else:
        axes.set_xlim(0, max(m + e for m, e in zip(medians, p90)) * 1.3)
    axes.set_xlabel("latency per sample, batch 1 (ms; bar: median, whisker: p90)")
    axes.grid(axis="y", alpha=0)
    axes.set_title("Latency", fontsize=10)
    return _png(figure)


def layer_sparsity(evaluation: Evaluation) -> bytes | None:
    """Share of zero kernel weights per layer, one bar per model."""
    models = {name: {layer: values["sparsity"] for layer, values in (m.get("layers") or {}).items()
                     if values.get("sparsity") is not None}
              for name, m in evaluation.models.items()}
    dense = [name for name, layers in models.items() if layers and not any(layers.values())]
    models = {name: layers for name, layers in models.items() if layers and any(layers.values())}
    if not models:
        return None
    layers: list[str] = []
    for per_layer in models.values():
        layers.extend(layer for layer in per_layer if layer not in layers)
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10.5, 3.0))
    width = 0.8 / len(models)
    for i, (name, per_layer) in enumerate(models.items()):
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(layers))]
        values = [per_layer.get(layer, 0.0) * 100 for layer in layers]
        axes.bar(xs, values, width=width * 0.95, label=name, color=_PALETTE[i % len(_PALETTE)])
    axes.set_xticks(range(len(layers)))
    axes.set_xticklabels(layers, rotation=30 if len(layers) > 6 else 0, ha="right" if len(layers) > 6 else "center")
    axes.set_ylim(0, 105)
    axes.set_ylabel("zero kernel weights (%)")
    axes.grid(axis="x", alpha=0)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    title = "Sparsity per layer"
    if dense:
        title += f" (no zero weights: {', '.join(dense)})"
    axes.set_title(title, fontsize=10)
    return _png(figure)


def training(curves: list[TrainingCurve]) -> bytes | None:
    """Loss and accuracy per epoch of every training stage (validation dashed)."""
    if not curves:
        return None
    plt = _pyplot()
    figure, (loss_axes, acc_axes) = plt.subplots(1, 2, figsize=(10.5, 3.4))
    for i, curve in enumerate(curves):
        color = _PALETTE[i % len(_PALETTE)]
        for key, axes in (("loss", loss_axes), ("accuracy", acc_axes)):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = curve.history.get(prefix + key)
                if values:
                    axes.plot(range(1, len(values) + 1), values, style, color=color,
                              label=f"{curve.stage} ({'validation' if prefix else 'training'})")
    for axes, title in ((loss_axes, "loss"), (acc_axes, "accuracy")):
        axes.set_xlabel("epoch")
        axes.set_title(title, fontsize=10)
    if len(curves) > 2:  # many lines: the legend goes beside the plots
        acc_axes.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    else:
        acc_axes.legend(fontsize=7.5, loc="lower right")
    return _png(figure)
