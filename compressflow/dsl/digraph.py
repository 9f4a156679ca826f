"""A small directed graph of stages, and the few graph algorithms validation, planning and a run need.

Validating and planning a pipeline need nodes with attributes, edges with attributes, a topological
order and walks up or down the graph; importing ``networkx`` for that costs a cached run a tenth of
a second (it also scans the installed distributions for its backends). :class:`DiGraph` has the
part of ``networkx.DiGraph``'s interface the package uses (``nodes``, ``edges``, ``predecessors``,
``successors``, ``add_node``, ``add_edge`` ...), and the functions below also accept a
``networkx.DiGraph``. :meth:`DiGraph.to_networkx` gives a real one for anything else.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Hashable, Iterable, Iterator


class _NodeView:
    """``graph.nodes``: iterates the nodes in insertion order; ``nodes[name]`` is the node's attribute dict."""

    __slots__ = ("_graph",)

    def __init__(self, graph: "DiGraph"):
        self._graph = graph

    def __iter__(self) -> Iterator[str]:
        return iter(self._graph._attrs)

    def __len__(self) -> int:
        return len(self._graph._attrs)

    def __contains__(self, name: object) -> bool:
        return name in self._graph._attrs

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self._graph._attrs[name]


class _EdgeView:
    """``graph.edges``: iterates ``(source, target)`` pairs; ``edges[source, target]`` is the edge's attribute dict."""

    __slots__ = ("_graph",)

    def __init__(self, graph: "DiGraph"):
        self._graph = graph

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for source, targets in self._graph._succ.items():
            for target in targets:
                yield source, target

    def __len__(self) -> int:
        return sum(len(targets) for targets in self._graph._succ.values())

    def __contains__(self, edge: object) -> bool:
        return isinstance(edge, tuple) and len(edge) == 2 and self._graph.has_edge(*edge)

    def __getitem__(self, edge: tuple[str, str]) -> dict[str, Any]:
        source, target = edge
        return self._graph._succ[source][target]


class DiGraph:
    """Nodes (with attributes) in insertion order and directed edges (with attributes)."""

    def __init__(self) -> None:
        self._attrs: dict[str, dict[str, Any]] = {}
        self._succ: dict[str, dict[str, dict[str, Any]]] = {}
        self._pred: dict[str, dict[str, dict[str, Any]]] = {}

    @property
    def nodes(self) -> _NodeView:
        return _NodeView(self)

    @property
    def edges(self) -> _EdgeView:
        return _EdgeView(self)

    def add_node(self, name: str, **attrs: Any) -> None:
        if name not in self._attrs:
            self._attrs[name], self._succ[name], self._pred[name] = {}, {}, {}
        self._attrs[name].update(attrs)

    def add_nodes_from(self, names: Iterable[str]) -> None:
        for name in names:
            self.add_node(name)

    def add_edge(self, source: str, target: str, **attrs: Any) -> None:
        self.add_node(source)
        self.add_node(target)
        data = self._succ[source].get(target)
        if data is None:
            data = self._succ[source][target] = self._pred[target][source] = {}
        data.update(attrs)

    def add_edges_from(self, edges: Iterable[tuple]) -> None:
        for edge in edges:
            self.add_edge(edge[0], edge[1], **(edge[2] if len(edge) > 2 else {}))

    def has_edge(self, source: str, target: str) -> bool:
        return target in self._succ.get(source, ())

    def has_node(self, name: str) -> bool:
        return name in self._attrs

    def predecessors(self, name: str) -> Iterator[str]:
        return iter(self._pred[name])

    def successors(self, name: str) -> Iterator[str]:
        return iter(self._succ[name])

    def number_of_nodes(self) -> int:
        return len(self._attrs)

    def __contains__(self, name: object) -> bool:
        return name in self._attrs

    def __iter__(self) -> Iterator[str]:
        return iter(self._attrs)

    def __len__(self) -> int:
        return len(self._attrs)

    def copy(self) -> "DiGraph":
        """A copy with its own node and edge attribute dicts (their values shared, as ``networkx`` copies)."""
        other = DiGraph()
        for name, attrs in self._attrs.items():
            other.add_node(name, **attrs)
        for source, target in self.edges:
            other.add_edge(source, target, **self._succ[source][target])
        return other

    def to_networkx(self):
        """The same graph as a ``networkx.DiGraph`` (for algorithms this module does not have)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self._attrs.items())
        graph.add_edges_from((s, t, self._succ[s][t]) for s, t in self.edges)
        return graph


class CycleFound(ValueError):
    """The graph has a cycle, so it has no topological order."""


def topological_order(graph, key: Callable[[str], Any] | None = None) -> list[str]:
    """Nodes with every edge's source before its target; ties broken by smallest ``key`` (as
    ``networkx.lexicographical_topological_sort``). Raises :class:`CycleFound` on a cycle."""
    key = key or (lambda name: name)
    position = {name: index for index, name in enumerate(graph.nodes)}
    waiting = dict.fromkeys(position, 0)
    for _, target in graph.edges:
        waiting[target] += 1
    ready = [(key(name), position[name], name) for name in position if not waiting[name]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)[2]
        order.append(name)
        for child in graph.successors(name):
            waiting[child] -= 1
            if not waiting[child]:
                heapq.heappush(ready, (key(child), position[child], child))
    if len(order) != len(waiting):
        raise CycleFound("the graph has a cycle")
    return order


def reaching(step: Callable[[str], Iterable[str]], starts: Iterable[Hashable]) -> set:
    """``starts`` and every node reached from them by ``step`` (e.g. ``graph.predecessors``), in one walk."""
    seen = set(starts)
    stack = list(seen)
    while stack:
        for other in step(stack.pop()):
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


def ancestors(graph, name: str) -> set[str]:
    """Every node ``name`` depends on, directly or not (as ``networkx.ancestors``)."""
    return reaching(graph.predecessors, [name]) - {name}


def descendants(graph, name: str) -> set[str]:
    """Every node that depends on ``name``, directly or not (as ``networkx.descendants``)."""
    return reaching(graph.successors, [name]) - {name}
