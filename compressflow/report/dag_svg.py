"""The stage graph of a run as an SVG picture (no Graphviz needed).

Stages are placed in columns by their depth (longest path from a stage without inputs),
ordered inside a column by the mean row of their inputs, and coloured by their status in
the run. ``after:`` edges are dashed.
"""

from __future__ import annotations

from html import escape
from typing import Any

NODE_HEIGHT, COLUMN_GAP, ROW_GAP, MARGIN = 44, 56, 18, 12
_CHAR_WIDTH = 7.0
STATUS_LOOK = {  # fill, stroke, dashed
    "ran": ("#e8f5e9", "#2e7d32", False),
    "cached": ("#e3f2fd", "#1e88e5", False),
    "failed": ("#ffebee", "#c62828", False),
    "blocked": ("#f5f5f5", "#9e9e9e", True),
    "not run": ("#f5f5f5", "#9e9e9e", True),
    "skipped": ("#fafafa", "#bdbdbd", True),
}
_DEFAULT_LOOK = ("#fff8e1", "#f9a825", False)


def _layout(names: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """(column, row) of every stage; ``names`` in execution order."""
    inputs = {name: [a for a, b in edges if b == name] for name in names}
    depth: dict[str, int] = {}
    for name in names:  # execution order: inputs come first
        depth[name] = 1 + max((depth[a] for a in inputs[name] if a in depth), default=-1)
    columns: dict[int, list[str]] = {}
    for name in names:
        columns.setdefault(depth[name], []).append(name)
    position: dict[str, tuple[int, int]] = {}
    for column in sorted(columns):
        def barycentre(name: str) -> float:
            rows = [position[a][1] for a in inputs[name] if a in position]
            return sum(rows) / len(rows) if rows else names.index(name) / 1000
        for row, name in enumerate(sorted(columns[column], key=barycentre)):
            position[name] = (column, row)
    return position


def _label_lines(name: str, stage: dict[str, Any]) -> tuple[str, str]:
    status = stage.get("status", "")
    seconds = stage.get("seconds")
    detail = f"{stage.get('type', '')} · {status}"
    if status == "ran" and seconds is not None:
        detail += f" · {seconds:.1f}s"
    return name, detail


def dag_svg(record: dict[str, Any]) -> str:
    """An ``<svg>`` element drawing the run's stages and their edges."""
    stages = record.get("stages", {})
    names = list(stages)
    edges = [(a, b) for a, b in record.get("edges", []) if a in stages and b in stages]
    if not names:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='0' height='0'></svg>"
    position = _layout(names, edges)
    labels = {name: _label_lines(name, stages[name]) for name in names}
    width = {name: max(110.0, _CHAR_WIDTH * max(len(labels[name][0]) + 2, len(labels[name][1])) + 20)
             for name in names}
    columns = max(c for c, _ in position.values()) + 1
    column_width = [max((width[n] for n in names if position[n][0] == c), default=0) for c in range(columns)]
    column_x = [MARGIN + sum(column_width[:c]) + COLUMN_GAP * c for c in range(columns)]
    rows_in = [sum(1 for n in names if position[n][0] == c) for c in range(columns)]
    total_height = max(rows_in) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP + 2 * MARGIN

    def box(name: str) -> tuple[float, float, float]:
        column, row = position[name]
        column_height = rows_in[column] * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
        top = (total_height - column_height) / 2 + row * (NODE_HEIGHT + ROW_GAP)
        left = column_x[column] + (column_width[column] - width[name]) / 2
        return left, top, width[name]

    total_width = column_x[-1] + column_width[-1] + MARGIN
    # NOTE: the viewBox lets the page scale the picture down when it is wider than the page.
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='dag' width='{total_width:.0f}' "
             f"height='{total_height:.0f}' viewBox='0 0 {total_width:.0f} {total_height:.0f}' "
             "font-family='system-ui, sans-serif' font-size='12'>",
             "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' markerHeight='7' "
             "orient='auto-start-reverse'><path d='M 0 0 L 10 5 L 0 10 z' fill='#78909c'/></marker></defs>"]
    for a, b in edges:
        ax, ay, aw = box(a)
        bx, by, _ = box(b)
        x1, y1, x2, y2 = ax + aw, ay + NODE_HEIGHT / 2, bx - 2, by + NODE_HEIGHT / 2
        bend = max(24.0, (x2 - x1) / 2)
        only_after = set((stages[b].get("inputs") or {}).keys()) and all(
            a not in names_ for field, names_ in (stages[b].get("inputs") or {}).items() if field != "after")
        dash = " stroke-dasharray='5 4'" if only_after else ""
        parts.append(f"<path d='M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} {y2:.1f}, "
                     f"{x2:.1f} {y2:.1f}' fill='none' stroke='#90a4ae' stroke-width='1.5'{dash} "
                     "marker-end='url(#arrow)'/>")
    for name in names:
        left, top, w = box(name)
        fill, stroke, dashed = STATUS_LOOK.get(stages[name].get("status", ""), _DEFAULT_LOOK)
        dash = " stroke-dasharray='4 3'" if dashed else ""
        title, detail = labels[name]
        error = stages[name].get("error")
        tooltip = f"{name}: {stages[name].get('status', '')}" + (f" ({error})" if error else "")
        parts.append(
            f"<g><title>{escape(tooltip)}</title>"
            f"<rect x='{left:.1f}' y='{top:.1f}' width='{w:.1f}' height='{NODE_HEIGHT}' rx='8' fill='{fill}' "
            f"stroke='{stroke}' stroke-width='1.6'{dash}/>"
            f"<text x='{left + w / 2:.1f}' y='{top + 18:.1f}' text-anchor='middle' font-weight='600' "
            f"fill='#263238'>{escape(title)}</text>"
            f"<text x='{left + w / 2:.1f}' y='{top + 34:.1f}' text-anchor='middle' font-size='10.5' "
            f"fill='#546e7a'>{escape(detail)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)
