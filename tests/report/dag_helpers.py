"""Run-record-like graphs of the example pipelines, taken from the pipeline files alone (no run)."""

from __future__ import annotations

from pathlib import Path

from compressflow.api import load
from compressflow.executor.graph import build_graph, execution_order

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def plan_record(path: Path) -> dict:
    """What a run record says about a pipeline's stages and edges, every stage ``not run``."""
    graph = build_graph(load(path))
    stages = {}
    for name in execution_order(graph):
        stage = graph.nodes[name]["stage"]
        stages[name] = {"type": stage.kind, "status": "not run",
                        "inputs": {field: names for field, names in stage.stage_refs().items() if names}}
    return {"stages": stages, "edges": [[a, b] for a, b in graph.edges]}
