"""How a stage of a run record looks in the report's graph: its label lines, colours and tooltip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STATUS_LOOK = {  # fill, stroke, dashed
    "ran": ("#e8f5e9", "#2e7d32", False),
    "cached": ("#e3f2fd", "#1e88e5", False),
    "failed": ("#ffebee", "#c62828", False),
    "blocked": ("#f5f5f5", "#9e9e9e", True),
    "not run": ("#f5f5f5", "#9e9e9e", True),
    "skipped": ("#fafafa", "#bdbdbd", True),
}
_DEFAULT_LOOK = ("#fff8e1", "#f9a825", False)
NAME_LINE_CHARS = 22  # a longer stage name (a sweep variant's) is wrapped


@dataclass(frozen=True)
class StageLook:
    """One stage as the graph draws it."""

    name: str
    name_lines: tuple[str, ...]
    detail: str
    fill: str
    stroke: str
    dashed: bool
    tooltip: str


@dataclass(frozen=True)
class EdgeLook:
    """One edge; ``dashed`` when it only orders (``after:``) and passes no data."""

    source: str
    target: str
    dashed: bool


def wrap_name(name: str, width: int = NAME_LINE_CHARS) -> tuple[str, ...]:
    """``name`` in lines of about ``width`` characters, broken before ``[`` and after ``,``
    (``quantized[final_sparsity=0.8,method=int8]`` -> ``quantized`` / ``[final_sparsity=0.8,`` / ...)."""
    if len(name) <= width:
        return (name,)
    pieces, piece = [], ""
    for char in name:
        if char == "[" and piece:
            pieces.append(piece)
            piece = ""
        piece += char
        if char == ",":
            pieces.append(piece)
            piece = ""
    pieces.append(piece)
    lines = [""]
    for piece in filter(None, pieces):
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return tuple(lines)


def stage_looks(record: dict[str, Any]) -> list[StageLook]:
    """Every stage of the record, in its order."""
    looks = []
    for name, stage in record.get("stages", {}).items():
        status = stage.get("status", "")
        seconds = stage.get("seconds")
        detail = f"{stage.get('type', '')} · {status}"
        if status == "ran" and seconds is not None:
            detail += f" · {seconds:.1f}s"
        fill, stroke, dashed = STATUS_LOOK.get(status, _DEFAULT_LOOK)
        error = stage.get("error")
        tooltip = f"{name}: {status}" + (f" ({error})" if error else "")
        looks.append(StageLook(name, wrap_name(name), detail, fill, stroke, dashed, tooltip))
    return looks


def edge_looks(record: dict[str, Any]) -> list[EdgeLook]:
    """Every edge of the record between two of its stages."""
    stages = record.get("stages", {})
    looks = []
    for a, b in record.get("edges", []):
        if a not in stages or b not in stages:
            continue
        inputs = stages[b].get("inputs") or {}
        only_after = bool(inputs) and all(a not in names for field, names in inputs.items() if field != "after")
        looks.append(EdgeLook(a, b, only_after))
    return looks
