"""The pipeline as a graph (:class:`compressflow.dsl.digraph.DiGraph`) and the stage selections of the CLI."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from compressflow.dsl.digraph import DiGraph, ancestors, descendants, topological_order
from compressflow.errors import UsageError, did_you_mean


def build_graph(pipeline) -> DiGraph:
    """One node per stage (attribute ``stage``: its config), one edge per reference.

    Edges go from a dependency to its dependent; attribute ``fields`` lists the
    fields of the dependent that name the dependency.
    """
    graph = DiGraph()
    for name, stage in pipeline.stages.items():
        graph.add_node(name, stage=stage)
    for name, stage in pipeline.stages.items():
        for field_name, targets in stage.stage_refs().items():
            for target in targets:
                if graph.has_edge(target, name):
                    graph.edges[target, name]["fields"].append(field_name)
                else:
                    graph.add_edge(target, name, fields=[field_name])
    return graph


def execution_order(graph: DiGraph) -> list[str]:
    """Topological order, ties broken by the order stages were written in."""
    position = {name: i for i, name in enumerate(graph.nodes)}
    return topological_order(graph, key=position.__getitem__)


@dataclass
class Selection:
    """Which stages a command asked for (``--only``, ``--from``, ``--until``, ``--force``).

    A stage is named exactly, or by a pattern where ``*`` matches any text and ``?`` one
    character (``[`` and ``]`` are plain characters): ``'pruned[*]'`` matches every variant
    of a swept stage, ``'int8_recipe.*'`` every stage of a sub-pipeline. The name of a swept
    stage or of a sub-pipeline alone stands for all its variants or stages.
    """

    only: list[str] = field(default_factory=list)
    from_: list[str] = field(default_factory=list)
    until: list[str] = field(default_factory=list)
    force: list[str] | None = None  # None: nothing forced; []: every requested stage

    def is_empty(self) -> bool:
        return not (self.only or self.from_ or self.until)


def match_stages(graph: DiGraph, pattern: str, option: str) -> list[str]:
    """Stages whose name equals or matches ``pattern`` (see :class:`Selection`); a usage error when none does."""
    if pattern in graph:
        return [pattern]
    if "*" in pattern or "?" in pattern:
        regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                           re.DOTALL)
        matched = [name for name in graph.nodes if regex.fullmatch(name)]
    else:  # a swept stage or a sub-pipeline by its own name
        matched = [name for name in graph.nodes if name.startswith((pattern + "[", pattern + "."))]
    if not matched:
        hint = did_you_mean(pattern, graph.nodes)
        raise UsageError(f"{option} {pattern!r}: no such stage" + (f"; {hint}" if hint else "")
                         + f" (stages: {', '.join(graph.nodes)})")
    return matched


def requested_stages(graph: DiGraph, selection: Selection) -> set[str]:
    """The stages a selection asks to bring up to date.

    ``--only``: exactly those. ``--until S``: S and everything it depends on.
    ``--from S``: S and everything that depends on it. Several options intersect.
    """
    requested = set(graph.nodes)
    if selection.only:
        requested &= {n for p in selection.only for n in match_stages(graph, p, "--only")}
    if selection.until:
        upto: set[str] = set()
        for name in (n for p in selection.until for n in match_stages(graph, p, "--until")):
            upto |= {name} | ancestors(graph, name)
        requested &= upto
    if selection.from_:
        onward: set[str] = set()
        for name in (n for p in selection.from_ for n in match_stages(graph, p, "--from")):
            onward |= {name} | descendants(graph, name)
        requested &= onward
    return requested


def forced_stages(graph: DiGraph, selection: Selection, requested: set[str]) -> set[str]:
    if selection.force is None:
        return set()
    if not selection.force:
        return set(requested)
    return {n for p in selection.force for n in match_stages(graph, p, "--force")}
