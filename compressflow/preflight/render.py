"""The check report as a table (rich; it wraps to whatever width the output has) or JSON."""

from __future__ import annotations

from compressflow.preflight.findings import ERROR, NOTE, OK, WARNING, Report

SHOWN_ITEMS = 8
_STYLE = {ERROR: "bold red", WARNING: "yellow", OK: "green", NOTE: "dim"}


def finding_text(finding) -> str:
    """A finding's message and the first layers or ops it names."""
    text = finding.message
    items = finding.items
    if items:
        shown = ", ".join(items[:SHOWN_ITEMS]) + (f", ... ({len(items) - SHOWN_ITEMS} more)"
                                                  if len(items) > SHOWN_ITEMS else "")
        if shown not in text:
            text += f": {shown}"
    return text


def print_report(report: Report, file=None) -> None:
    """Print one row per stage and finding, then a summary line."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=file, highlight=False, soft_wrap=False)
    table = Table(show_lines=False, expand=False)
    table.add_column("stage", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("", overflow="fold")
    table.add_column("finding", overflow="fold", ratio=1)
    for stage in report.stages:
        for i, finding in enumerate(stage.findings or []):
            table.add_row(stage.name if i == 0 else "", stage.type if i == 0 else "",
                          Text(finding.level, style=_STYLE[finding.level]), Text(finding_text(finding)))
    console.print(table)
    console.print(summary_line(report), highlight=False)


def summary_line(report: Report) -> str:
    errors, warnings = len(report.errors()), len(report.warnings())
    stages = sorted({name for name, _ in report.errors()}, key=[s.name for s in report.stages].index)
    if errors:
        return (f"{errors} error{'s' if errors != 1 else ''} ({', '.join(stages)} would fail), "
                f"{warnings} warning{'s' if warnings != 1 else ''}")
    return f"no stage would fail; {warnings} warning{'s' if warnings != 1 else ''}"
