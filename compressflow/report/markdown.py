"""A Markdown summary of a run, for CI comments: status, stages, models, selections."""

from __future__ import annotations

from typing import Any

from compressflow.report.data import Evaluation, evaluations, selected_names, selections
from compressflow.stages.report_table import delta_text, human_bytes, metric_text, readable

_STATUS_MARK = {"ok": "✅", "failed": "❌", "interrupted": "⏹️", "died": "❌", "running": "⏳"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _models(evaluation: Evaluation, chosen: list[str]) -> list[str]:
    front = set(evaluation.pareto())
    rows = []
    for name, m in evaluation.models.items():
        is_base = name == evaluation.baseline
        marks = (" (baseline)" if is_base else "") + (" ★" if name in front else "") + \
                (" ✔ selected" if name in chosen else "")
        metric = evaluation.primary
        value, delta = m.get(metric), m.get(f"{metric}_delta")
        rows.append([f"**{name}**{marks}", str(m.get("label", m.get("kind", ""))),
                     ("-" if value is None else f"{value * 100:.2f}%") if metric == "accuracy"
                     else metric_text(metric, value),
                     "-" if is_base or delta is None else delta_text(metric, delta, None if value is None
                                                                     else value - delta),
                     "-" if m.get("sparsity") is None else f"{m['sparsity'] * 100:.1f}%",
                     human_bytes(m.get("gzip_bytes")),
                     "-" if is_base else readable(m.get("gzip_compression"), "×"),
                     readable(m.get("latency_ms_median")),
                     "-" if is_base else readable(m.get("speedup"), "×")])
    data = evaluation.data
    lines = [f"#### {evaluation.stage}", "",
             f"{data.get('samples', '?')} {data.get('split', '')} samples"
             + (f"; baseline **{evaluation.baseline}**" if evaluation.baseline else "") + "; ★ Pareto front "
             "(accuracy against gzip size)", ""]
    lines += _table(["model", "format", evaluation.primary, "Δ", "sparsity", "gzip size", "ratio", "latency ms",
                     "speed-up"], rows, right={2, 3, 4, 5, 6, 7, 8})
    return lines + [""]


def _entry_sections(record: dict[str, Any]) -> list[str]:
    """Per-layer numerics and search trials, read from the stages' cache entries."""
    from compressflow.report.entry_files import EntryFiles
    from compressflow.report.numerics_section import numerics_markdown, stage_numerics
    from compressflow.report.trials_section import search_trials, trials_markdown

    entries = EntryFiles(record)
    try:
        lines = [line for found in stage_numerics(record, entries) for line in numerics_markdown(found)]
        return lines + [line for found in search_trials(record, entries) for line in trials_markdown(found)]
    finally:
        entries.close()


def render_markdown(record: dict[str, Any], report_path: str | None = None) -> str:
    """The summary of a run record as GitHub-flavoured Markdown."""
    pipeline = record.get("pipeline", {})
    status = record.get("status", "?")
    counts = ", ".join(f"{n} {state}" for state, n in sorted(record.get("counts", {}).items()))
    seconds = record.get("seconds")
    lines = [f"### {_STATUS_MARK.get(status, '')} compressflow · {pipeline.get('name', '?')} · {status}"
             .replace("  ", " "),
             "", f"Run `{record.get('id', '?')}`: {counts}" + (f" in {seconds:.1f} s" if seconds else "")
             + f" — `compressflow {' '.join(record.get('argv', []))}`", ""]
    failed = [(n, s) for n, s in record.get("stages", {}).items() if s.get("status") in ("failed", "blocked")]
    for name, stage in failed:
        lines.append(f"- **{name}** {stage['status']}" + (f": {stage['error'].splitlines()[0]}"
                                                            if stage.get("error") else ""))
    if failed:
        lines.append("")
    chosen: dict[str, list[str]] = {}
    found = selections(record)
    for selection in found:
        chosen.setdefault(str(selection.selection.get("evaluation", "")), []).extend(
            selected_names(selection.selection))
    for evaluation in evaluations(record):
        lines += _models(evaluation, chosen.get(evaluation.stage, []))
    for selection in found:
        picked = ", ".join(selected_names(selection.selection)) or "?"
        lines += [f"#### {selection.stage}", "",
                  f"Selected **{picked}** by {selection.selection.get('metric', '?')} "
                  f"({selection.selection.get('goal', '')}).", ""]
        if selection.table:
            lines += ["```", selection.table.rstrip(), "```", ""]
    lines += _entry_sections(record)
    rows = [[name, stage.get("type", ""), stage.get("status", ""),
             f"{stage['seconds']:.1f}s" if stage.get("status") == "ran" and stage.get("seconds") is not None else ""]
            for name, stage in record.get("stages", {}).items() if stage.get("status") != "skipped"]
    lines += ["<details><summary>Stages</summary>", ""]
    lines += _table(["stage", "type", "status", "time"], rows, right={3})
    lines += ["", "</details>", ""]
    if report_path:
        lines += [f"Full report: `{report_path}`", ""]
    return "\n".join(lines)
