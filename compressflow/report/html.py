"""The HTML report of a run: one self-contained page (inline CSS, SVG and base64 PNG images)."""

from __future__ import annotations

import base64
import time
from html import escape
from typing import Any

from compressflow import __version__
from compressflow.report import plots
from compressflow.report.dag_svg import dag_svg
from compressflow.report.data import Evaluation, evaluations, selected_names, selections, training_curves
from compressflow.report.entry_files import EntryFiles
from compressflow.report.stage_look import STATUS_LOOK
from compressflow.stages.report_table import delta_text, human_bytes, metric_text, readable
from compressflow.stages.tasks import goal_of

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f6f8;color:#1f2933}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
header{background:#1f2937;color:#f9fafb;padding:22px 28px}
header .inner{max-width:1180px;margin:0 auto}
header h1{margin:0 0 6px;font-size:22px;font-weight:650}
header .meta{font-size:13px;color:#cbd5e1;display:flex;flex-wrap:wrap;gap:6px 20px}
header code{color:#e2e8f0}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:18px 22px;margin:18px 0}
h2{font-size:17px;margin:0 0 4px}
.sub{color:#607080;font-size:13px;margin:0 0 14px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{padding:6px 7px;border-bottom:1px solid #e5e9ef;text-align:left;white-space:nowrap}
td.wrap b{white-space:normal}
th{background:#f8fafc;font-weight:600;color:#475569;white-space:normal;vertical-align:bottom}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{background:#f8fafc}
td.best{font-weight:700;color:#14532d}
td.bad{color:#b91c1c}
td.good{color:#15803d}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11.5px;font-weight:600}
.tag{display:inline-block;padding:0 6px;margin-left:6px;border-radius:8px;font-size:10.5px;font-weight:600;
     background:#e2e8f0;color:#334155;vertical-align:1px}
.tag.front{background:#dcfce7;color:#166534}
.tag.sel{background:#fee2e2;color:#991b1b}
.status-ok{background:#dcfce7;color:#166534}.status-failed,.status-interrupted,.status-died{background:#fee2e2;color:#991b1b}
.status-running{background:#fef9c3;color:#854d0e}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:14px;margin-top:14px}
.plots img,.wide img{width:100%;height:auto;border:1px solid #eef1f4;border-radius:6px}
.wide{margin-top:14px}
.dag{max-width:100%;height:auto}
.dagbox{overflow-x:auto;padding:4px 0 10px}
.legend{font-size:12px;color:#607080;display:flex;gap:14px;flex-wrap:wrap;margin:4px 0 12px}
.legend span{display:inline-flex;align-items:center;gap:5px}
.legend i{display:inline-block;width:14px;height:10px;border-radius:3px;border:1.5px solid}
.notes{font-size:12.5px;color:#607080;margin:10px 0 0;padding-left:18px}
pre{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;font-size:12px;overflow-x:auto}
footer{color:#8a99a8;font-size:12px;text-align:center;margin-top:26px}
.err{color:#b91c1c;white-space:normal;max-width:420px}
.noplot{border:1px dashed #cbd5e1;border-radius:6px;padding:28px 18px;color:#607080;font-size:13px;text-align:center}
.noplot code{color:#334155}
"""


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


_SHORT_NAME = 24  # characters


class _PlotSlots:
    """Draws the page's plots; a plot that matplotlib cannot draw leaves a note saying how to get it."""

    def __init__(self) -> None:
        self.missing: list[str] = []

    def img(self, draw, alt: str, *args) -> str:
        try:
            png = draw(*args)
        except plots.PlotsUnavailable as error:
            self.missing.append(alt)
            return (f"<div class='noplot'><b>{escape(alt)}</b>: not drawn, {escape(str(error))}.<br>"
                    f"<code>{escape(plots.INSTALL_HINT)}</code> to draw it.</div>")
        return png if isinstance(png, str) else _img(png, alt)  # NOTE: a str is an inline <svg> chart


def _name_cell(name: str, tags: str = "") -> str:
    """A table cell naming a stage or model, the whole name shown on hover: a long one (a sweep
    variant's) may wrap before ``[`` and after ``,``; a short one stays on one line with its tags."""
    if len(name) <= _SHORT_NAME:
        return f"<td class='name' title='{escape(name)}'><b>{escape(name)}</b>{tags}</td>"
    breakable = escape(name).replace("[", "<wbr>[").replace(",", ",<wbr>")
    return f"<td class='name wrap' title='{escape(name)}'><b>{breakable}</b>{tags}</td>"


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {int(value % 60):02d} s"


def _percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


# --------------------------------------------------------------------------- sections


def _header(record: dict[str, Any]) -> str:
    pipeline = record.get("pipeline", {})
    status = record.get("status", "?")
    counts = ", ".join(f"{n} {state}" for state, n in sorted(record.get("counts", {}).items()))
    return (f"<header><div class='inner'><h1>{escape(pipeline.get('name', '?'))} "
            f"<span class='badge status-{escape(status)}'>{escape(status)}</span></h1>"
            f"<div class='meta'><span>run <code>{escape(record.get('id', '?'))}</code></span>"
            f"<span>started {escape(_when(record.get('started_at')))}</span>"
            f"<span>took {escape(_seconds(record.get('seconds')) or '-')}</span>"
            f"<span>{escape(counts)}</span>"
            f"<span><code>compressflow {escape(' '.join(record.get('argv', [])))}</code></span></div>"
            "</div></header>")


def _pipeline_section(record: dict[str, Any]) -> str:
    legend = "".join(f"<span><i style='background:{fill};border-color:{stroke}'></i>{escape(state)}</span>"
                     for state, (fill, stroke, _) in STATUS_LOOK.items()
                     if any(s.get("status") == state for s in record.get("stages", {}).values()))
    rows = []
    for name, stage in record.get("stages", {}).items():
        why = stage.get("error") or "; ".join(stage.get("reasons", []))
        rows.append(f"<tr>{_name_cell(name)}<td>{escape(stage.get('type', ''))}</td>"
                    f"<td>{escape(stage.get('status', ''))}</td>"
                    "<td class='n'>"
                    f"{escape(_seconds(stage.get('seconds')) if stage.get('status') == 'ran' else '')}</td>"
                    f"<td><code>{escape(stage.get('key', '')[:12])}</code></td>"
                    f"<td class='{'err' if stage.get('error') else ''}'>{escape(why.splitlines()[0] if why else '')}"
                    "</td></tr>")
    return ("<section><h2>Pipeline</h2>"
            f"<p class='sub'>{escape(str(record.get('pipeline', {}).get('path') or ''))}</p>"
            f"<div class='legend'>{legend}</div><div class='dagbox'>{dag_svg(record)}</div>"
            "<table><thead><tr><th>stage</th><th>type</th><th>status</th><th class='n'>time</th><th>cache key</th>"
            f"<th>why it ran / error</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def _best(models: dict[str, dict[str, Any]], key: str, goal: str) -> str | None:
    values = {n: m.get(key) for n, m in models.items() if isinstance(m.get(key), (int, float))}
    if len(values) < 2:
        return None
    return (max if goal == "max" else min)(values, key=values.__getitem__)


def _models_table(evaluation: Evaluation, selected: list[str]) -> str:
    models, baseline = evaluation.models, evaluation.baseline
    front = set(evaluation.pareto())
    metric = evaluation.primary
    lower_is_better = goal_of(metric) == "minimize"
    best = {metric: _best(models, metric, "min" if lower_is_better else "max"),
            "gzip_bytes": _best(models, "gzip_bytes", "min"),
            "latency_ms_median": _best(models, "latency_ms_median", "min")}
    head = (f"<tr><th>model</th><th>format</th><th class='n'>{escape(metric)}</th>"
            f"<th class='n'>Δ {escape(metric)}</th>"
            "<th class='n'>non-zero / params</th><th class='n'>sparsity</th><th class='n'>file size</th>"
            "<th class='n'>gzip size</th><th class='n'>size ratio</th><th class='n'>gzip ratio</th>"
            "<th class='n'>latency ms (p90)</th><th class='n'>speed-up</th></tr>")
    rows = []
    for name, m in models.items():
        is_base = name == baseline
        tags = ("<span class='tag'>baseline</span>" if is_base else "") + \
               ("<span class='tag front'>Pareto</span>" if name in front else "") + \
               ("<span class='tag sel'>selected</span>" if name in selected else "")
        value, delta = m.get(metric), m.get(f"{metric}_delta")
        delta_cell = "-" if is_base or delta is None else delta_text(metric, delta, value - delta)
        worse = delta is not None and (delta > 0 if lower_is_better else delta < 0)
        delta_class = "" if is_base or delta is None else ("bad" if worse else "good")

        def cell(text: str, key: str | None = None, extra: str = "") -> str:
            cls = " best" if key is not None and best.get(key) == name else ""
            return f"<td class='n{cls}{(' ' + extra) if extra else ''}'>{escape(text)}</td>"

        p90 = m.get("latency_ms_p90")
        latency_text = "-" if m.get("latency_ms_median") is None else (
            readable(m["latency_ms_median"]) + (f" ({readable(p90)})" if p90 is not None else ""))
        rows.append(
            f"<tr class='{'baseline' if is_base else ''}' data-model='{escape(name)}'>{_name_cell(name, tags)}"
            f"<td>{escape(str(m.get('label', m.get('kind', ''))))}</td>"
            + cell(_percent(value) if metric == "accuracy" else metric_text(metric, value), metric)
            + cell(delta_cell, extra=delta_class)
            + cell(f"{m.get('nonzero_params', 0):,} / {m.get('params', 0):,}")
            + cell(_percent(m.get("sparsity"), 1))
            + cell(human_bytes(m.get("file_bytes"))) + cell(human_bytes(m.get("gzip_bytes")), "gzip_bytes")
            + cell("-" if is_base else readable(m.get("compression"), "×"))
            + cell("-" if is_base else readable(m.get("gzip_compression"), "×"))
            + cell(latency_text, "latency_ms_median")
            + cell("-" if is_base else readable(m.get("speedup"), "×")) + "</tr>")
    return f"<div class='scroll'><table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>"


def _evaluation_section(evaluation: Evaluation, selected: list[str], slots: _PlotSlots) -> str:
    data = evaluation.data
    sub = (f"{len(evaluation.models)} models measured on {data.get('samples', '?')} {data.get('split', '')} "
           f"samples of <code>{escape(str(data.get('dataset', '?')))}</code>")
    if evaluation.baseline:
        sub += f"; ratios and Δ against the baseline <b>{escape(evaluation.baseline)}</b>"
    notes = list(evaluation.notes) + [
        "Δ accuracy: points against the baseline; size ratios: the baseline's size / the model's; "
        "speed-up: the baseline's median latency / the model's. Pareto: no other model is both smaller "
        "(gzip) and at least as accurate. Bold: best in its column."]
    return (f"<section><h2>Models — {escape(evaluation.stage)}</h2><p class='sub'>{sub}</p>"
            + _models_table(evaluation, selected)
            + "<div class='plots'>"
            + slots.img(plots.accuracy_vs_size, "accuracy against gzip size", evaluation, selected)
            + slots.img(plots.latency, "latency", evaluation) + "</div>"
            + "<div class='wide'>" + slots.img(plots.layer_sparsity, "sparsity per layer", evaluation) + "</div>"
            + "<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul></section>")


def _selection_section(stage: str, selection: dict[str, Any], table: str | None) -> str:
    chosen = selected_names(selection)
    head = (f"<p class='sub'>selected <b>{escape(', '.join(chosen) or '?')}</b> by "
            f"{escape(str(selection.get('metric', '?')))} ({escape(str(selection.get('goal', '')))}) from "
            f"evaluation <code>{escape(str(selection.get('evaluation', '?')))}</code></p>")
    rows = []
    for candidate in selection.get("candidates") or []:
        if not isinstance(candidate, dict):
            continue
        name = str(candidate.get("name", "?"))
        passed = candidate.get("passed")
        reasons = "; ".join(candidate.get("reasons") or [])
        value = candidate.get("value")
        tag = "<span class='tag sel'>selected</span>" if name in chosen else ""
        rows.append(f"<tr>{_name_cell(name, tag)}<td class='n'>"
                    f"{escape(readable(value) if isinstance(value, (int, float)) else str(value))}</td>"
                    f"<td>{'✓ passed' if passed else '✗ ' + escape(reasons)}</td></tr>")
    body = (f"<table><thead><tr><th>candidate</th><th class='n'>{escape(str(selection.get('metric', 'value')))}</th>"
            f"<th>constraints</th></tr></thead><tbody>{''.join(rows)}</tbody></table>") if rows else ""
    text = f"<pre>{escape(table)}</pre>" if table else ""
    return f"<section><h2>Selection — {escape(stage)}</h2>{head}{body}{text}</section>"


def _outputs_section(record: dict[str, Any]) -> str:
    items = []
    for name, stage in record.get("stages", {}).items():
        for path in stage.get("published", []):
            items.append(f"<li><b>{escape(name)}</b> wrote <code>{escape(path)}</code></li>")
        if stage.get("tensorboard_dir"):
            items.append(f"<li><b>{escape(name)}</b> TensorBoard logs: <code>{escape(stage['tensorboard_dir'])}</code>"
                         "</li>")
    tracking = (record.get("tracking") or {}).get("mlflow")
    if tracking:
        items.append(f"<li>MLflow run <code>{escape(tracking['run_id'])}</code> in "
                     f"<code>{escape(tracking['tracking_uri'])}</code></li>")
    return f"<section><h2>Outputs</h2><ul>{''.join(items)}</ul></section>" if items else ""


def _entry_sections(record: dict[str, Any], slots: _PlotSlots) -> list[str]:
    """The sections drawn from files of the stages' cache entries: per-layer numerics, search trials."""
    from compressflow.report.numerics_section import numerics_html, stage_numerics
    from compressflow.report.trials_section import search_trials, trials_html

    entries = EntryFiles(record)
    try:
        return ([numerics_html(found, slots) for found in stage_numerics(record, entries)]
                + [trials_html(found, slots) for found in search_trials(record, entries)])
    finally:
        entries.close()


def render_html(record: dict[str, Any], *, missing_plots: list[str] | None = None) -> str:
    """The whole report page of a run record. Without matplotlib the page is written all the same,
    each plot replaced by a note; the names of those plots are added to ``missing_plots``."""
    slots = _PlotSlots()
    chosen: dict[str, list[str]] = {}
    for selection in selections(record):
        evaluation = str(selection.selection.get("evaluation", ""))
        chosen.setdefault(evaluation, []).extend(selected_names(selection.selection))
    body = [_pipeline_section(record)]
    found = evaluations(record)
    for evaluation in found:
        body.append(_evaluation_section(evaluation, chosen.get(evaluation.stage, []), slots))
    if not found:
        body.append("<section><h2>Models</h2><p class='sub'>No evaluate stage finished in this run; "
                    "add one (type: evaluate) to compare models.</p></section>")
    for selection in selections(record):
        body.append(_selection_section(selection.stage, selection.selection, selection.table))
    body += _entry_sections(record, slots)
    curves = training_curves(record)
    if curves:
        body.append("<section><h2>Training</h2><p class='sub'>loss and accuracy per epoch of "
                    f"{', '.join(escape(c.stage) for c in curves)} (validation dashed)</p><div class='wide'>"
                    + slots.img(plots.training, "training curves", curves) + "</div></section>")
    body.append(_outputs_section(record))
    if missing_plots is not None:
        missing_plots.extend(slots.missing)
    title = f"{record.get('pipeline', {}).get('name', '?')} · run {record.get('id', '?')}"
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)} · compressflow</title><style>{_CSS}</style></head><body>"
            + _header(record) + "<main>" + "".join(body)
            + f"<footer>compressflow {escape(__version__)} · report written {escape(_when(time.time()))}</footer>"
            "</main></body></html>\n")
