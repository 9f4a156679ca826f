"""The report's stage graph: a layered layout whose edges never pass under a box (no TensorFlow)."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ElementTree

import pytest

from compressflow.report.dag_svg import dag_svg
from compressflow.report.layered_layout import layered_layout
from compressflow.report.stage_look import STATUS_LOOK, wrap_name
from dag_helpers import PIPELINES, plan_record

SVG = "{http://www.w3.org/2000/svg}"
_NUMBER = r"-?\d+(?:\.\d+)?"


def random_record(seed: int, size: int) -> dict:
    """A random DAG: names of many lengths (sweep variants among them), edges from earlier to later stages."""
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < size:
        name = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 14)))
        if rng.random() < 0.3:
            name += f"[final_sparsity=0.{rng.randint(1, 9)},method={rng.choice(['int8', 'dynamic'])}]"
        if name not in names:
            names.append(name)
    edges = [[a, b] for i, a in enumerate(names) for b in names[i + 1:] if rng.random() < 0.12]
    stages = {name: {"type": "toy", "status": rng.choice(list(STATUS_LOOK)), "inputs": {"model": []}}
              for name in names}
    for a, b in edges:
        stages[b]["inputs"]["model"].append(a)
    return {"stages": stages, "edges": edges}


def svg_boxes_and_edges(svg: str) -> tuple[dict[str, tuple[float, float, float, float]], list]:
    """The drawn boxes (name -> left, top, right, bottom) and edges ((source, target, path points))."""
    root = ElementTree.fromstring(svg)
    boxes = {}
    for group in root.iter(f"{SVG}g"):
        rect = group.find(f"{SVG}rect")
        x, y, w, h = (float(rect.get(k)) for k in ("x", "y", "width", "height"))
        boxes[group.get("data-stage")] = (x, y, x + w, y + h)
    edges = [(path.get("data-from"), path.get("data-to"), path_points(path.get("d")))
             for path in root.iter(f"{SVG}path") if path.get("data-from") is not None]
    return boxes, edges


def path_points(d: str) -> list[tuple[float, float]]:
    """Points along SVG path data made of M, L and C commands (curves sampled finely)."""
    points: list[tuple[float, float]] = []
    for command, numbers in re.findall(rf"([MLC])((?:[\s,]*{_NUMBER})+)", d):
        values = [float(v) for v in re.findall(_NUMBER, numbers)]
        pairs = list(zip(values[::2], values[1::2]))
        if command in "ML":
            points.extend(pairs)
            continue
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points[-1], *pairs
        for step in range(1, 41):
            t = step / 40
            a, b, c, e = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            points.append((a * x0 + b * x1 + c * x2 + e * x3, a * y0 + b * y1 + c * y2 + e * y3))
    return points


def segment_hits_box(p: tuple[float, float], q: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    """Whether segment p-q meets the closed rectangle (Liang-Barsky clipping)."""
    left, top, right, bottom = box
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for step, room in ((-dx, p[0] - left), (dx, right - p[0]), (-dy, p[1] - top), (dy, bottom - p[1])):
        if step == 0:
            if room < 0:
                return False
        else:
            t = room / step
            if step < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 > t1:
                return False
    return True


def assert_edges_clear_of_boxes(record: dict) -> None:
    svg = dag_svg(record, graphviz=False)
    boxes, edges = svg_boxes_and_edges(svg)
    assert set(boxes) == set(record["stages"])
    assert sorted((a, b) for a, b, _ in edges) == sorted(tuple(e) for e in record["edges"])
    for source, target, points in edges:
        start, end = points[0], points[-1]
        assert start[0] == pytest.approx(boxes[source][2], abs=0.2), f"{source} -> {target} leaves elsewhere"
        assert boxes[source][1] < start[1] < boxes[source][3]
        assert boxes[target][0] - 4 < end[0] < boxes[target][0], f"{source} -> {target} ends elsewhere"
        assert boxes[target][1] < end[1] < boxes[target][3]
        for name, box in boxes.items():
            if name in (source, target):
                continue
            hit = next((i for i, (p, q) in enumerate(zip(points, points[1:])) if segment_hits_box(p, q, box)), None)
            assert hit is None, f"edge {source} -> {target} passes under {name} near {points[hit]}"
    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (l1, t1, r1, b1), (l2, t2, r2, b2) = boxes[a], boxes[b]
            assert r1 <= l2 or r2 <= l1 or b1 <= t2 or b2 <= t1, f"boxes {a} and {b} overlap"


@pytest.mark.parametrize("pipeline", ["digits.yaml", "digits-sweep.yaml", "digits-recipe.yaml"])
def test_no_edge_of_an_example_pipeline_passes_under_a_box(pipeline):
    assert_edges_clear_of_boxes(plan_record(PIPELINES / pipeline))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_edge_of_a_random_dag_passes_under_a_box(seed):
    assert_edges_clear_of_boxes(random_record(seed, size=12 + 8 * seed))


def test_the_test_sees_an_edge_drawn_under_a_box():
    boxes = {"a": (0, 0, 10, 10), "b": (50, 0, 60, 10), "c": (25, -5, 35, 15)}
    points = path_points("M 10 5 C 20 5, 30 5, 48 5")
    assert any(segment_hits_box(p, q, boxes["c"]) for p, q in zip(points, points[1:]))
    assert not any(segment_hits_box(p, q, (25, 7, 35, 15)) for p, q in zip(points, points[1:]))


def test_columns_are_longest_paths_and_a_long_edge_gets_a_lane_in_every_column_it_crosses():
    record = plan_record(PIPELINES / "digits.yaml")
    layout = layered_layout({name: (120.0, 44.0) for name in record["stages"]}, record["edges"])
    column = {name: c for c, items in enumerate(layout.columns) for name in items if isinstance(name, str)}
    assert column == {"base": 0, "trained": 1, "float": 2, "pruned": 2, "int8": 3, "check": 4, "release": 5}
    runs = {(route.source, route.target): route.runs for route in layout.routes}
    assert len(runs["int8", "release"]) == 3  # leaves int8, crosses check's column, enters release
    assert len(runs["trained", "check"]) == 4
    check = layout.boxes["check"]
    _, _, lane = runs["int8", "release"][1]
    assert not check.y <= lane <= check.bottom, "int8 -> release must go round check, not under it"


def gap_crossings(layout) -> int:
    """Crossings between edges in the gaps between columns: two edges cross in a gap when their
    order at its left side is the reverse of their order at its right side."""
    ends: dict[float, list[tuple[float, float]]] = {}  # x where a gap starts -> (y left, y right) per edge
    for route in layout.routes:
        for (_, x_end, y), (_, _, next_y) in zip(route.runs, route.runs[1:]):
            ends.setdefault(round(x_end, 1), []).append((y, next_y))
    return sum(1 for pairs in ends.values() for i, (a, b) in enumerate(pairs) for c, d in pairs[i + 1:]
               if (a - c) * (b - d) < 0)


def test_barycenter_sweeps_untangle_a_graph_listed_in_a_crossing_order():
    # two chains and a bridge, listed so that stage order alone would cross them at every step
    names = ["a0", "b0", "b1", "a1", "a2", "b2", "b3", "a3", "join"]
    edges = [("a0", "a1"), ("a1", "a2"), ("a2", "a3"), ("b0", "b1"), ("b1", "b2"), ("b2", "b3"),
             ("a3", "join"), ("b3", "join"), ("a0", "b2")]
    layout = layered_layout({name: (80.0, 44.0) for name in names}, edges)
    assert gap_crossings(layout) == 0
    ys = {name: box.y for name, box in layout.boxes.items()}
    assert (ys["a1"] < ys["b1"]) == (ys["a0"] < ys["b0"]) == (ys["a3"] < ys["b3"])


def test_a_long_sweep_variant_name_is_wrapped_where_it_reads_well():
    assert wrap_name("quantized[final_sparsity=0.8,method=int8]") == (
        "quantized", "[final_sparsity=0.8,", "method=int8]")
    assert wrap_name("compress.int8") == ("compress.int8",)
    svg = dag_svg({"stages": {"quantized[final_sparsity=0.8,method=int8]": {"type": "quantize", "status": "ran"}},
                   "edges": []}, graphviz=False)
    assert "<title>quantized[final_sparsity=0.8,method=int8]: ran</title>" in svg
    assert ">[final_sparsity=0.8,</text>" in svg
