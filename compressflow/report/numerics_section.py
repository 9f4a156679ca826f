"""The report's "Numerics per layer" section: each quantize stage's ``numerics.json``, worst layers first.

A quantized model's table (see :mod:`compressflow.stages.litert_numerics` for its schema) compares
every layer's tensors with the float model's: the table lists layer, op, weight bits, the
output's relative error, the error the layer adds to its inputs' and the output's cosine
similarity, worst first (by added error, then output error: how ``keep_float`` ranks them), and
a horizontal bar chart draws each layer's added error. When the entry's table cannot be read, an
evaluation's summary (``numerics`` of a model's metrics) gives the worst layers it kept.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html import escape
from typing import Any

from compressflow.report.entry_files import EntryFiles
from compressflow.report.svg_chart import figure_svg, id_prefix

NUMERICS_FILE = "numerics.json"
BAR_COLOR, FLOAT_COLOR, UNBOUNDED_COLOR = "#3b6fb6", "#9aa5b1", "#c62828"


@dataclass
class LayerError:
    """One layer's row: its errors against the float model (None where unbounded or not measured)."""

    layer: str
    op: str
    weight_bits: str
    output_error: float | None
    added_error: float | None
    cosine: float | None
    quantized: bool = True
    kept_float: bool = False
    unbounded: bool = False  # the output's error is unbounded (the tensor overflows or the float one is zero)


@dataclass
class StageNumerics:
    """A quantize stage's per-layer numerics, worst layer first."""

    stage: str
    layers: list[LayerError]
    samples: Any = None
    inputs: str = ""
    output_error: float | None = None
    output_cosine: float | None = None
    source: str = NUMERICS_FILE  # or the evaluation that kept a summary
    notes: list[str] = field(default_factory=list)


def _bits(dtype: Any) -> str:
    match = re.search(r"(\d+)$", str(dtype or ""))
    return match.group(1) if match else str(dtype or "?")


def _sort_key(layer: LayerError) -> tuple[float, float]:
    def unbounded(value: float | None) -> float:
        return math.inf if value is None else float(value)

    # NOTE: a layer whose output error is unbounded but whose added error is not measured sorts first too.
    return (-unbounded(layer.added_error), -unbounded(layer.output_error))


def from_table(stage: str, table: dict[str, Any]) -> StageNumerics:
    """The rows of a ``numerics.json`` table: every layer with a compared output, worst first."""
    rows = []
    for layer in table.get("layers") or []:
        output = layer.get("output")
        if not isinstance(output, dict):
            continue
        bits = sorted({_bits(w.get("dtype")) for w in layer.get("weights") or []}, key=lambda b: (len(b), b))
        rows.append(LayerError(layer=str(layer.get("layer", "?")), op=str(layer.get("op", "")),
                               weight_bits=", ".join(bits) or "-", output_error=output.get("relative_error"),
                               added_error=layer.get("added_error"), cosine=output.get("cosine_similarity"),
                               quantized=bool(layer.get("quantized")), kept_float=bool(layer.get("kept_float")),
                               unbounded=output.get("relative_error") is None))
    rows.sort(key=_sort_key)
    model_output = next(iter((table.get("model_output") or {}).values()), {})
    return StageNumerics(stage=stage, layers=rows, samples=table.get("samples"), inputs=str(table.get("inputs", "")),
                         output_error=model_output.get("relative_error"),
                         output_cosine=model_output.get("cosine_similarity"))


def from_summary(stage: str, summary: dict[str, Any], evaluation: str) -> StageNumerics:
    """What an evaluation kept of a model's numerics: the output's error and its worst layers."""
    rows = [LayerError(layer=str(w.get("layer", "?")), op=str(w.get("op", "")), weight_bits="?",
                       output_error=None, added_error=w.get("added_error"), cosine=None)
            for w in summary.get("worst_layers") or [] if isinstance(w, dict)]
    rows.sort(key=_sort_key)
    return StageNumerics(stage=stage, layers=rows, samples=summary.get("samples"),
                         output_error=summary.get("output_relative_error"),
                         output_cosine=summary.get("output_cosine_similarity"), source=evaluation,
                         notes=[f"the worst layers only, as evaluation {evaluation} kept them: the stage's "
                                f"{NUMERICS_FILE} is no longer in the cache"])


def stage_numerics(record: dict[str, Any], entries: EntryFiles) -> list[StageNumerics]:
    """Every quantize stage of the run with per-layer numerics, in the record's order."""
    summaries: dict[str, tuple[dict[str, Any], str]] = {}
    for name, stage in record.get("stages", {}).items():
        models = (stage.get("metrics") or {}).get("models")
        for model, metrics in (models or {}).items():
            if isinstance(metrics, dict) and isinstance(metrics.get("numerics"), dict):
                summaries.setdefault(model, (metrics["numerics"], name))
    found = []
    for name, stage in record.get("stages", {}).items():
        if stage.get("type") != "quantize":
            continue
        file_name = str((stage.get("artifact") or {}).get("numerics_file") or NUMERICS_FILE)
        table = entries.json(name, file_name)
        if isinstance(table, dict) and isinstance(table.get("layers"), list):
            found.append(from_table(name, table))
        elif name in summaries:
            found.append(from_summary(name, *summaries[name]))
    return [numerics for numerics in found if numerics.layers]


# --------------------------------------------------------------------------- the chart


def error_text(value: float | None, unbounded: bool = False) -> str:
    """A relative error with 3 significant digits; ``unbounded`` or ``-`` when there is none."""
    if value is None:
        return "unbounded" if unbounded else "-"
    return "0" if value == 0 else f"{value:.3g}"


def layer_chart(numerics: StageNumerics) -> str:
    """Horizontal bars of each layer's added error, worst at the top: an inline ``<svg>``, one bar
    per row of the table (``id`` ``...bar-<rank>``, rank 0 the worst)."""
    from compressflow.report.plots import _pyplot

    plt = _pyplot()
    layers = numerics.layers
    values = [layer.added_error for layer in layers]
    finite = [v for v in values if v is not None and v > 0]
    log = bool(finite) and max(finite) / min(finite) > 100
    top = max(finite, default=1.0)
    floor = min(finite) / 3 if log else 0.0
    figure, axes = plt.subplots(figsize=(7.2, 0.6 + 0.32 * len(layers)))
    for rank, (layer, value) in enumerate(zip(layers, values)):
        width = top * 1.15 if value is None else max(value, floor)
        color = UNBOUNDED_COLOR if value is None else FLOAT_COLOR if not layer.quantized else BAR_COLOR
        (bar,) = axes.barh([rank], [width - floor], left=floor, color=color, alpha=0.9, height=0.7,
                           hatch="//" if value is None else None)
        bar.set_gid(f"bar-{rank}")
        label = f"+{error_text(value, True)}" if value is not None else "unbounded"
        axes.annotate(label, (width, rank), textcoords="offset points", xytext=(4, -3), fontsize=7.5)
    axes.set_yticks(range(len(layers)))
    axes.set_yticklabels([f"{layer.layer} ({layer.op})" if layer.op else layer.layer for layer in layers],
                         fontsize=8)
    axes.invert_yaxis()
    if log:
        axes.set_xscale("log")
        axes.set_xlim(floor, top * 8)
    else:
        axes.set_xlim(0, top * 1.35)
    axes.set_xlabel("error the layer adds (relative error of its output minus its inputs'"
                    + ("; log scale)" if log else ")"))
    axes.grid(axis="y", alpha=0)
    axes.set_title(f"Added error per layer — {numerics.stage}", fontsize=10)
    return figure_svg(figure, id_prefix("numerics", numerics.stage), f"added error per layer of {numerics.stage}")


# --------------------------------------------------------------------------- HTML and Markdown


def _row(rank: int, layer: LayerError) -> str:
    tags = ""
    if rank == 0:
        tags += "<span class='tag sel'>worst</span>"
    if layer.kept_float:
        tags += "<span class='tag'>kept float</span>"
    elif not layer.quantized:
        tags += "<span class='tag'>not quantized</span>"
    return (f"<tr data-layer='{escape(layer.layer)}'><td class='n'>{rank + 1}</td>"
            f"<td><b>{escape(layer.layer)}</b>{tags}</td><td>{escape(layer.op)}</td>"
            f"<td class='n'>{escape(layer.weight_bits)}</td>"
            f"<td class='n'>{escape(error_text(layer.output_error, layer.unbounded))}</td>"
            f"<td class='n'>{escape(error_text(layer.added_error, layer.unbounded))}</td>"
            f"<td class='n'>{escape('-' if layer.cosine is None else f'{layer.cosine:.4f}')}</td></tr>")


def numerics_html(numerics: StageNumerics, slots) -> str:
    """The section of one stage; ``slots`` draws the chart (or leaves a note without matplotlib)."""
    sub = f"per-layer errors against the float model on {escape(str(numerics.samples or '?'))} samples"
    if numerics.inputs:
        sub += f" ({escape(numerics.inputs)})"
    sub += (f"; model output: relative error {escape(error_text(numerics.output_error, True))}, "
            f"cosine {escape('-' if numerics.output_cosine is None else f'{numerics.output_cosine:.4f}')}")
    rows = "".join(_row(rank, layer) for rank, layer in enumerate(numerics.layers))
    table = ("<div class='scroll'><table class='numerics'><thead><tr><th class='n'>#</th><th>layer</th><th>op</th>"
             "<th class='n'>weight bits</th><th class='n'>output relative error</th><th class='n'>added error</th>"
             f"<th class='n'>cosine</th></tr></thead><tbody>{rows}</tbody></table></div>")
    notes = list(numerics.notes) + [
        "relative error: mean squared error / mean square of the float model's tensor; added error: a layer's "
        "output error minus the largest error of its inputs (what the layer itself contributes; keep_float keeps "
        "the worst in float). Worst first."]
    return (f"<section><h2>Numerics per layer — {escape(numerics.stage)}</h2><p class='sub'>{sub}</p>"
            + "<div class='wide'>" + slots.img(layer_chart, f"added error per layer of {numerics.stage}", numerics)
            + "</div>" + table
            + "<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul></section>")


def numerics_markdown(numerics: StageNumerics, count: int = 5) -> list[str]:
    """The worst ``count`` layers of one stage as a Markdown table."""
    lines = [f"#### Numerics per layer — {numerics.stage}", "",
             f"Model output: relative error {error_text(numerics.output_error, True)} against the float model"
             f" on {numerics.samples or '?'} samples; worst layers first (by added error).", "",
             "| layer | op | weight bits | output relative error | added error | cosine |",
             "|---|---|---:|---:|---:|---:|"]
    for layer in numerics.layers[:count]:
        cosine = "-" if layer.cosine is None else f"{layer.cosine:.4f}"
        lines.append(f"| **{layer.layer}** | {layer.op} | {layer.weight_bits} | "
                     f"{error_text(layer.output_error, layer.unbounded)} | "
                     f"{error_text(layer.added_error, layer.unbounded)} | {cosine} |")
    return lines + [""]
