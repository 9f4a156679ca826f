"""The stage graph as text, Mermaid or Graphviz dot, with cached / stale marks from a plan.

``statuses`` maps a stage to ``cached`` or ``stale: <why>`` (see ``compressflow plan``);
without it the graph is drawn plain. Edges are labelled with the field that makes them,
except ``model`` (the usual one); ``after:`` edges are dashed.
"""

from __future__ import annotations

from compressflow.executor.graph import build_graph, execution_order

FORMATS = ("text", "mermaid", "dot")
_LOOK = {  # fill, stroke
    "cached": ("#e3f2fd", "#1e88e5"),
    "stale": ("#fff3e0", "#fb8c00"),
    "plain": ("#f5f5f5", "#757575"),
}


def render_dag(pipeline, fmt: str = "text", statuses: dict[str, str] | None = None) -> str:
    """The graph of ``pipeline`` in ``fmt`` (``text``, ``mermaid`` or ``dot``)."""
    graph = build_graph(pipeline)
    order = execution_order(graph)
    edges = [(a, b, graph.edges[a, b]["fields"]) for a, b in graph.edges]
    kinds = {name: graph.nodes[name]["stage"].kind for name in order}
    return {"text": _text, "mermaid": _mermaid, "dot": _dot}[fmt](pipeline.name, order, kinds, edges,
                                                                    statuses or {})


def _state(statuses: dict[str, str], name: str) -> str:
    status = statuses.get(name)
    if status is None:
        return "plain"
    return "cached" if status == "cached" else "stale"


def _edge_label(fields: list[str]) -> str:
    shown = [f for f in fields if f != "model"]
    return ", ".join(shown)


def _text(name, order, kinds, edges, statuses) -> str:
    deps = {stage: [a for a, b, _ in edges if b == stage] for stage in order}
    heads = {stage: f"{stage} ({kinds[stage]})" + (f" <- {', '.join(deps[stage])}" if deps[stage] else "")
             for stage in order}
    width = min(max((len(h) for h in heads.values()), default=0), 56)  # a long line does not push all marks
    lines = []
    for stage in order:
        mark = statuses.get(stage)
        lines.append(f"{heads[stage]:<{width}}  [{mark}]" if mark else heads[stage])
    if statuses:
        stale = sum(1 for s in order if _state(statuses, s) == "stale")
        lines.append(f"\n{len(order) - stale} cached, {stale} stale")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _mermaid(name, order, kinds, edges, statuses) -> str:
    ids = {stage: f"s{i}" for i, stage in enumerate(order)}
    lines = ["flowchart LR"]
    for stage in order:
        state = _state(statuses, stage)
        detail = kinds[stage] + (f" · {state}" if state != "plain" else "")
        lines.append(f'    {ids[stage]}["{_mermaid_text(stage)}<br/><small>{_mermaid_text(detail)}</small>"]'
                     + (f":::{state}" if state != "plain" else ""))
    for a, b, fields in edges:
        label = _edge_label(fields)
        arrow = "-.->" if fields == ["after"] else "-->"
        lines.append(f"    {ids[a]} {arrow}" + (f"|{_mermaid_text(label)}|" if label and label != "after" else "")
                     + f" {ids[b]}")
    for state in ("cached", "stale"):
        if any(_state(statuses, s) == state for s in order):
            fill, stroke = _LOOK[state]
            lines.append(f"    classDef {state} fill:{fill},stroke:{stroke}")
    return "\n".join(lines)


def _dot_id(text: str) -> str:
    """A double-quoted dot string; line breaks become dot's ``\\n``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(name, order, kinds, edges, statuses) -> str:
    lines = [f"digraph {_dot_id(name)} {{", "    rankdir=LR;",
             '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             '    edge [color="#616161", fontname="Helvetica", fontsize=9];']
    for stage in order:
        state = _state(statuses, stage)
        fill, stroke = _LOOK[state]
        label = f"{stage}\n{kinds[stage]}" + (f"\n{state}" if state != "plain" else "")
        tooltip = statuses.get(stage, kinds[stage])
        lines.append(f"    {_dot_id(stage)} [label={_dot_id(label)}, "
                     f'fillcolor="{fill}", color="{stroke}", tooltip={_dot_id(tooltip)}];')
    for a, b, fields in edges:
        attrs = []
        label = _edge_label(fields)
        if fields == ["after"]:
            attrs.append("style=dashed")
        elif label:
            attrs.append(f"label={_dot_id(label)}")
        lines.append(f"    {_dot_id(a)} -> {_dot_id(b)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines)
