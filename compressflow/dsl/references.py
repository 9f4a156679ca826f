"""Check stage and dataset references, and build the dependency graph.

References are read from the document itself (not only from validated stages) so
that a stage with an unrelated mistake still has its references checked, and the
cycle check sees every edge.
"""

from __future__ import annotations

import itertools
from typing import Iterator, NamedTuple


from compressflow.errors import MAX_REPORTED, Location, Problem, did_you_mean, quoted
from compressflow.dsl.digraph import CycleFound, DiGraph, topological_order
from compressflow.dsl.located import LocatedDict, LocatedList
from compressflow.stages.base import Stage

#: Cycles reported at most (a dense graph can have exponentially many).
MAX_CYCLES_REPORTED = 20


class Reference(NamedTuple):
    """``stage`` names ``target`` in ``field`` (at ``path``, written at ``location``)."""

    stage: str
    field: str
    target: str
    path: tuple
    location: Location


def check_references(document: LocatedDict, stage_classes: dict[str, type[Stage]],
                     problems: list[Problem]) -> DiGraph:
    """Report dangling, self and dataset references and cycles; return the stage graph.

    The graph has one node per stage and an edge ``dependency -> dependent`` per
    valid reference, whose ``references`` attribute lists where it was written.
    """
    stages = document.get("stages")
    stages = stages if isinstance(stages, LocatedDict) else {}
    datasets = document.get("datasets")
    dataset_names = list(datasets) if isinstance(datasets, LocatedDict) else []
    edges: dict[tuple[str, str], list[Reference]] = {}
    hints = _Hints()
    ref_fields = {kind: (cls.stage_ref_fields(), cls.dataset_ref_fields()) for kind, cls in stage_classes.items()}
    for name, config in stages.items():
        kind = config.get("type") if isinstance(config, LocatedDict) else None
        fields = ref_fields.get(kind) if isinstance(kind, str) else None
        if fields is None:
            continue  # validation reports the missing or unknown type
        stage_fields, dataset_fields = fields
        for ref in _refs(name, config, stage_fields):
            if ref.target == name:
                problems.append(Problem(f"stage {quoted(name)} refers to itself in '{ref.field}'",
                                        ref.location, ref.path, hint="a stage cannot use its own output"))
            elif ref.target not in stages:
                problems.append(Problem(
                    f"'{ref.field}' of stage {quoted(name)} names an unknown stage {quoted(ref.target)}",
                    ref.location, ref.path, hint=hints.hint(ref.target, stages, "stages")))
            else:
                edges.setdefault((ref.target, name), []).append(ref)
        for ref in _refs(name, config, dataset_fields):
            if ref.target not in dataset_names:
                problems.append(Problem(
                    f"'{ref.field}' of stage {quoted(name)} names an unknown dataset {quoted(ref.target)}",
                    ref.location, ref.path, hint=hints.hint(ref.target, dataset_names, "datasets")))
    graph = DiGraph()
    graph.add_nodes_from(stages)
    graph.add_edges_from((source, target, {"references": refs}) for (source, target), refs in edges.items())
    problems.extend(cycle_problems(graph, list(stages)))
    return graph


def _refs(stage: str, config: LocatedDict, fields: list[str]) -> Iterator[Reference]:
    for field in fields:
        value = config.get(field)
        base = ("stages", stage, field)
        if isinstance(value, str):
            yield Reference(stage, field, value, base, config.value_location(field))
        elif isinstance(value, LocatedList):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield Reference(stage, field, item, base + (index,), value.item_location(index))
        elif isinstance(value, LocatedDict):  # e.g. a search's inputs: {recipe input: stage}
            for key, item in value.items():
                if isinstance(item, str):
                    yield Reference(stage, field, item, base + (key,), value.value_location(key))


class _Hints:
    """Hints for unknown names; only the first :data:`MAX_REPORTED` look for a close name."""

    def __init__(self) -> None:
        self.searched = 0

    def hint(self, name: str, known, section: str) -> str:
        # NOTE: thousands of unknown names against thousands of stages would compare every pair
        if self.searched < MAX_REPORTED:
            self.searched += 1
            close = did_you_mean(name, known)
            if close:
                return close
        if not known:
            return f"there are no {section}; define them under '{section}:'"
        first = [item if item.isprintable() else quoted(item) for item in itertools.islice(known, 20)]
        return f"known {section}: " + ", ".join(first) + (" ..." if len(known) > 20 else "")


def cycle_problems(graph: DiGraph, order: list[str]) -> list[Problem]:
    """One problem per cycle, naming its members in order of the data flow."""
    try:
        topological_order(graph)
        return []
    except CycleFound:
        pass
    import networkx as nx  # NOTE: only for a graph with cycles, to name them

    graph = graph.to_networkx()
    position = {name: index for index, name in enumerate(order)}
    problems = []
    # NOTE: simple_cycles is slow on large acyclic graphs; strongly connected components are not.
    in_cycles = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    if not in_cycles:
        return problems
    cycles = nx.simple_cycles(graph.subgraph(set().union(*in_cycles)))
    for cycle in itertools.islice(cycles, MAX_CYCLES_REPORTED):
        start = min(range(len(cycle)), key=lambda i: position.get(cycle[i], len(order)))
        cycle = cycle[start:] + cycle[:start]
        first, last = cycle[0], cycle[-1]
        ref = graph.edges[last, first]["references"][0]  # `first` refers to `last`: closes the cycle
        chain = " -> ".join(cycle + [first])
        problems.append(Problem(
            f"stages form a cycle: {chain}", ref.location, ref.path,
            hint=f"each stage uses the output of the one before it; '{first}' names '{last}' in "
                 f"'{ref.field}', which makes it depend on itself"))
    if next(cycles, None) is not None:
        problems.append(Problem(f"more than {MAX_CYCLES_REPORTED} cycles; only the first are listed"))
    return problems

