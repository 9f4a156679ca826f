"""The stage graph of a run as an SVG picture, coloured by each stage's status in the run.

Drawn by Graphviz's ``dot`` when it is installed, else (or with ``COMPRESSFLOW_GRAPHVIZ=0``, or
when ``dot`` fails) by the built-in layered layout (:mod:`compressflow.report.layered_layout`):
either way no edge passes under a box. ``after:`` edges are dashed.
"""

from __future__ import annotations

import os
from html import escape
from typing import Any

from compressflow.report import graphviz_svg
from compressflow.report.layered_layout import Layout, Route, layered_layout
from compressflow.report.stage_look import STATUS_LOOK, EdgeLook, StageLook, edge_looks, stage_looks

__all__ = ["STATUS_LOOK", "builtin_svg", "dag_svg"]

LINE_HEIGHT = 14
_CHAR_WIDTH = 7.0
_EDGE_COLOR, _ARROW_COLOR = "#90a4ae", "#78909c"


def dag_svg(record: dict[str, Any], graphviz: bool | None = None) -> str:
    """An ``<svg>`` element drawing the run's stages and their edges. ``graphviz``: True or False
    to use ``dot`` or not; None (the default) uses it when it is installed and not turned off."""
    stages, edges = stage_looks(record), edge_looks(record)
    if not stages:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='0' height='0'></svg>"
    if graphviz is None:
        graphviz = os.environ.get("COMPRESSFLOW_GRAPHVIZ", "1") != "0" and graphviz_svg.available()
    drawn = graphviz_svg.render(stages, edges) if graphviz else None
    return drawn or builtin_svg(stages, edges)


def box_size(stage: StageLook) -> tuple[float, float]:
    """(width, height) of a stage's box: its name lines over its detail line."""
    longest = max(len(line) for line in stage.name_lines)
    width = max(110.0, _CHAR_WIDTH * max(longest + 2, len(stage.detail)) + 20)
    return width, 30.0 + LINE_HEIGHT * len(stage.name_lines)


def builtin_svg(stages: list[StageLook], edges: list[EdgeLook]) -> str:
    """The graph drawn with the built-in layered layout."""
    layout = layered_layout({stage.name: box_size(stage) for stage in stages},
                            [(edge.source, edge.target) for edge in edges])
    dashed = {(edge.source, edge.target) for edge in edges if edge.dashed}
    width, height = f"{layout.width:.0f}", f"{layout.height:.0f}"
    # NOTE: the viewBox lets the page scale the picture down when it is wider than the page.
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='dag' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' font-family='system-ui, sans-serif' font-size='12'>",
             "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' markerHeight='7' "
             f"orient='auto-start-reverse'><path d='M 0 0 L 10 5 L 0 10 z' fill='{_ARROW_COLOR}'/></marker></defs>"]
    for route in layout.routes:
        dash = " stroke-dasharray='5 4'" if (route.source, route.target) in dashed else ""
        parts.append(f"<path data-from='{escape(route.source)}' data-to='{escape(route.target)}' "
                     f"d='{route_path(route)}' fill='none' stroke='{_EDGE_COLOR}' stroke-width='1.5'{dash} "
                     "marker-end='url(#arrow)'/>")
    parts += [_stage_box(stage, layout) for stage in stages]
    parts.append("</svg>")
    return "".join(parts)


def route_path(route: Route) -> str:
    """The SVG path data of a route: its runs as lines, joined by S-curves that stay inside the
    gap between the two runs' columns (their control points lie in it)."""
    (x0, x1, y), *rest = route.runs
    commands = [f"M {x0:.1f} {y:.1f}"]
    if x1 > x0:
        commands.append(f"L {x1:.1f} {y:.1f}")
    for start, end, next_y in rest:
        middle = (x1 + start) / 2
        commands.append(f"C {middle:.1f} {y:.1f}, {middle:.1f} {next_y:.1f}, {start:.1f} {next_y:.1f}")
        if end > start:
            commands.append(f"L {end:.1f} {next_y:.1f}")
        x1, y = end, next_y
    return " ".join(commands)


def _stage_box(stage: StageLook, layout: Layout) -> str:
    box = layout.boxes[stage.name]
    dash = " stroke-dasharray='4 3'" if stage.dashed else ""
    middle = box.x + box.width / 2
    top = box.y + (box.height - box_size(stage)[1]) / 2  # the layout may make a box taller for its edges
    lines = "".join(f"<text x='{middle:.1f}' y='{top + 18 + LINE_HEIGHT * i:.1f}' text-anchor='middle' "
                    f"font-weight='600' fill='#263238'>{escape(line)}</text>"
                    for i, line in enumerate(stage.name_lines))
    detail_y = top + 20 + LINE_HEIGHT * len(stage.name_lines)
    return (f"<g data-stage='{escape(stage.name)}'><title>{escape(stage.tooltip)}</title>"
            f"<rect x='{box.x:.1f}' y='{box.y:.1f}' width='{box.width:.1f}' height='{box.height:.1f}' rx='8' "
            f"fill='{stage.fill}' stroke='{stage.stroke}' stroke-width='1.6'{dash}/>{lines}"
            f"<text x='{middle:.1f}' y='{detail_y:.1f}' text-anchor='middle' font-size='10.5' "
            f"fill='#546e7a'>{escape(stage.detail)}</text></g>")
