"""The stage graph of compressflow.dsl.digraph gives what networkx gives for the algorithms it has."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from compressflow.dsl.digraph import CycleFound, DiGraph, ancestors, descendants, topological_order


def random_dag(seed: int, nodes: int = 60) -> DiGraph:
    rng = random.Random(seed)
    names = [f"s{i}" for i in rng.sample(range(nodes), nodes)]
    graph = DiGraph()
    graph.add_nodes_from(names)
    for index, name in enumerate(names[1:], start=1):
        for parent in rng.sample(names[:index], min(index, rng.randint(0, 3))):
            graph.add_edge(parent, name, fields=["model"])
    return graph


@pytest.mark.parametrize("seed", range(5))
def test_order_and_walks_match_networkx(seed):
    graph = random_dag(seed)
    reference = graph.to_networkx()
    position = {name: i for i, name in enumerate(graph.nodes)}
    assert topological_order(graph, key=position.__getitem__) == list(
        nx.lexicographical_topological_sort(reference, key=position.__getitem__))
    for name in graph.nodes:
        assert ancestors(graph, name) == nx.ancestors(reference, name)
        assert descendants(graph, name) == nx.descendants(reference, name)
        assert set(graph.predecessors(name)) == set(reference.predecessors(name))
    assert sorted(graph.edges) == sorted(reference.edges)


def test_attributes_copies_and_cycles():
    graph = DiGraph()
    graph.add_node("a", stage=1)
    graph.add_edge("a", "b", fields=["model"])
    assert ("a", "b") in graph.edges and ("b", "a") not in graph.edges
    assert graph.nodes["a"] == {"stage": 1} and graph.edges["a", "b"] == {"fields": ["model"]}
    copy = graph.copy()
    copy.add_edge("b", "a")
    assert not graph.has_edge("b", "a") and list(graph.nodes) == ["a", "b"]
    with pytest.raises(CycleFound):
        topological_order(copy)
    assert topological_order(graph) == ["a", "b"]
