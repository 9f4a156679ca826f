"""The stage graph drawn by Graphviz's ``dot -Tsvg`` (when it is installed), in the report's colours.

The SVG that ``dot`` writes is trimmed to an element the page can hold inline: no XML prolog,
doctype or comments, tooltips as ``<title>`` elements, so the page still loads nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html import escape

from compressflow.report.stage_look import EdgeLook, StageLook

TIMEOUT_SECONDS = 30
_XLINK = ' xmlns:xlink="http://www.w3.org/1999/xlink"'


def available() -> bool:
    """Whether a ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


def dot_source(stages: list[StageLook], edges: list[EdgeLook]) -> str:
    """The graph in the dot language; nodes are ``n0``, ``n1``... (their titles are put back later)."""
    ids = {stage.name: f"n{i}" for i, stage in enumerate(stages)}
    lines = ["digraph stages {",
             '  graph [rankdir=LR, bgcolor="transparent", nodesep=0.2, ranksep=0.55, pad=0.08];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, penwidth=1.6, '
             'margin="0.16,0.06"];',
             '  edge [color="#90a4ae", penwidth=1.5, arrowsize=0.7];']
    for stage in stages:
        name = "<br/>".join(f"<b>{escape(line)}</b>" for line in stage.name_lines)
        label = f'<{name}<br/><font point-size="8.5" color="#546e7a">{escape(stage.detail)}</font>>'
        style = ', style="rounded,filled,dashed"' if stage.dashed else ""
        lines.append(f'  {ids[stage.name]} [label={label}, fillcolor="{stage.fill}", color="{stage.stroke}"{style}];')
    for edge in edges:
        if edge.source in ids and edge.target in ids:
            lines.append(f"  {ids[edge.source]} -> {ids[edge.target]}" + (" [style=dashed]" if edge.dashed else "")
                         + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(stages: list[StageLook], edges: list[EdgeLook]) -> str | None:
    """The ``<svg>`` element ``dot`` draws, or None when ``dot`` is missing or fails."""
    try:
        done = subprocess.run(["dot", "-Tsvg"], input=dot_source(stages, edges), capture_output=True,
                              text=True, timeout=TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError):
        return None
    start = done.stdout.find("<svg")
    if done.returncode != 0 or start < 0 or "</svg>" not in done.stdout:
        return None
    return _inline(done.stdout[start:], stages, edges)


def _inline(svg: str, stages: list[StageLook], edges: list[EdgeLook]) -> str:
    svg = re.sub(r"<!--.*?-->\s*", "", svg, flags=re.S)
    ids = {stage.name: f"n{i}" for i, stage in enumerate(stages)}
    titles = {ids[stage.name]: escape(stage.tooltip) for stage in stages}
    for edge in edges:
        if edge.source in ids and edge.target in ids:
            titles[f"{ids[edge.source]}&#45;&gt;{ids[edge.target]}"] = escape(f"{edge.source} → {edge.target}")

    def title(match: re.Match) -> str:
        text = titles.get(match.group(1))
        return f"<title>{text}</title>" if text is not None else ""

    svg = re.sub(r"<title>(.*?)</title>", title, svg)
    if "xlink:" not in svg.replace(_XLINK, ""):
        svg = svg.replace(_XLINK, "")
    return svg.replace("<svg ", "<svg class='dag' ", 1).strip()
