"""A layered (Sugiyama-style) left-to-right layout of a DAG whose edges never pass under a box.

1. Columns: a node's column is the length of the longest path to it from a node without inputs.
2. An edge that spans several columns gets a dummy node in every column it crosses: a lane of its
   own there, between the boxes, instead of a line drawn through them.
3. The order inside each column comes from barycenter sweeps (down and up) and adjacent swaps;
   the order with the fewest crossings, counted exactly, is kept.
4. Vertical places: each column in turn is pulled towards the mean of its neighbours, keeping its
   order and gaps (weighted isotonic regression); dummies pull harder, so long edges run straight.
5. Routes: an edge is a horizontal run inside every column it crosses (at its port on a box, or at
   its dummy's lane) joined by curves inside the gaps between columns, where no box lies.

::

    layout = layered_layout({"a": (100, 44), "b": (120, 44)}, [("a", "b")])
    layout.boxes["b"].x, layout.routes[0].runs
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Hashable, Iterable, NamedTuple

COLUMN_GAP, ROW_GAP, LANE_GAP, MARGIN = 64.0, 18.0, 11.0, 12.0
ARROW_GAP = 2.0  # an edge ends this far left of its target, where its arrowhead's tip is
_PORT_SPACING, _PORT_INSET = 8.0, 8.0
_ORDER_SWEEPS, _TRANSPOSE_ROUNDS, _PLACE_ROUNDS, _DETAILED_ITEMS = 12, 4, 10, 3000
# NOTE: weights of the pull between neighbours (as in Gansner et al.'s dot): an edge between two
# dummies is a long edge's middle, kept straightest.
_WEIGHT = {(False, False): 1.0, (False, True): 2.0, (True, False): 2.0, (True, True): 8.0}


@dataclass(frozen=True)
class Box:
    """A node's rectangle (SVG coordinates: y grows downwards)."""

    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height


@dataclass(frozen=True)
class Route:
    """How an edge is drawn: horizontal ``runs`` (x from, x to, y), left to right; consecutive runs
    are joined by a curve in the gap between their columns. The first run starts on the source's
    right side, the last ends ``ARROW_GAP`` before the target's left side."""

    source: str
    target: str
    runs: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True)
class Layout:
    """Every node's box, every edge's route and the size of the whole picture."""

    boxes: dict[str, Box]
    routes: tuple[Route, ...]
    width: float
    height: float
    columns: tuple[tuple[Hashable, ...], ...]  # the order inside each column, dummies included


class _Dummy(NamedTuple):
    """The place of edge ``source -> target`` in a column it crosses."""

    source: str
    target: str
    column: int


def layered_layout(sizes: dict[str, tuple[float, float]], edges: Iterable[tuple[str, str]]) -> Layout:
    """Lay out nodes (``sizes``: name -> (width, height), in execution order) and ``edges``."""
    names = list(sizes)
    edges = list(dict.fromkeys((a, b) for a, b in edges if a in sizes and b in sizes and a != b))
    sizes = _room_for_ports(sizes, edges)
    column_of, edges = _columns(names, edges)
    chains = {edge: _chain(edge, column_of) for edge in edges}
    columns = _initial_order(names, column_of, chains)
    up, down = _neighbours(chains)
    columns = _reduce_crossings(columns, up, down)
    centre = _place(columns, up, down, sizes)
    return _finish(columns, centre, sizes, chains)


def _room_for_ports(sizes: dict[str, tuple[float, float]], edges: list[tuple[str, str]]) -> dict:
    """``sizes`` with boxes made taller where their edges would otherwise crowd one side."""
    ends: dict[str, list[int]] = {name: [0, 0] for name in sizes}
    for a, b in edges:
        ends[a][1] += 1
        ends[b][0] += 1
    return {name: (width, max(height, 2 * _PORT_INSET + (max(ends[name]) - 1) * _PORT_SPACING))
            for name, (width, height) in sizes.items()}


# --------------------------------------------------------------------------- columns and dummies


def _columns(names: list[str], edges: list[tuple[str, str]]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Longest-path columns, and the edges kept (those that go forward in a topological order)."""
    inputs: dict[str, list[str]] = {name: [] for name in names}
    outputs: dict[str, list[str]] = {name: [] for name in names}
    for a, b in edges:
        inputs[b].append(a)
        outputs[a].append(b)
    waiting = {name: len(inputs[name]) for name in names}
    ready = deque(name for name in names if not waiting[name])
    order: list[str] = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for b in outputs[name]:
            waiting[b] -= 1
            if not waiting[b]:
                ready.append(b)
    order += [name for name in names if waiting[name]]  # NOTE: only a cycle leaves any; a run record has none
    rank = {name: i for i, name in enumerate(order)}
    forward = [(a, b) for a, b in edges if rank[a] < rank[b]]
    column: dict[str, int] = {}
    for name in order:
        column[name] = 1 + max((column[a] for a in inputs[name] if rank[a] < rank[name]), default=-1)
    return column, forward


def _chain(edge: tuple[str, str], column_of: dict[str, int]) -> list[Hashable]:
    a, b = edge
    return [a, *(_Dummy(a, b, c) for c in range(column_of[a] + 1, column_of[b])), b]


def _initial_order(names: list[str], column_of: dict[str, int],
                   chains: dict[tuple[str, str], list[Hashable]]) -> list[list[Hashable]]:
    columns: list[list[Hashable]] = [[] for _ in range(max(column_of.values(), default=0) + 1)]
    for name in names:
        columns[column_of[name]].append(name)
    for chain in chains.values():
        for dummy in chain[1:-1]:
            columns[dummy.column].append(dummy)
    return columns


def _neighbours(chains: dict[tuple[str, str], list[Hashable]]) -> tuple[dict, dict]:
    """Each item's neighbours in the column before (``up``) and after (``down``)."""
    up: dict[Hashable, list[Hashable]] = {}
    down: dict[Hashable, list[Hashable]] = {}
    for chain in chains.values():
        for u, v in zip(chain, chain[1:]):
            down.setdefault(u, []).append(v)
            up.setdefault(v, []).append(u)
    return up, down


# --------------------------------------------------------------------------- crossing reduction


def _reduce_crossings(columns: list[list[Hashable]], up: dict, down: dict) -> list[list[Hashable]]:
    columns = [list(c) for c in columns]
    for c in range(1, len(columns)):
        columns[c] = _by_barycenter(columns[c], columns[c - 1], up)
    best, best_count = [list(c) for c in columns], _total_crossings(columns, down)
    # NOTE: a graph of thousands of stages (and dummies) gets two sweeps and no swaps: a picture
    # that big is for zooming into, and the full treatment would take minutes.
    detailed = sum(len(c) for c in columns) <= _DETAILED_ITEMS
    for sweep in range(_ORDER_SWEEPS if detailed else 2):
        if best_count == 0:
            break
        if sweep % 2 == 0:
            for c in range(1, len(columns)):
                columns[c] = _by_barycenter(columns[c], columns[c - 1], up)
        else:
            for c in range(len(columns) - 2, -1, -1):
                columns[c] = _by_barycenter(columns[c], columns[c + 1], down)
        if detailed:
            _transpose(columns, up, down)
        count = _total_crossings(columns, down)
        if count < best_count:
            best, best_count = [list(c) for c in columns], count
    return best


def _by_barycenter(column: list[Hashable], fixed: list[Hashable], neighbours: dict) -> list[Hashable]:
    """``column`` sorted by the mean place of each item's neighbours in ``fixed``; an item without
    neighbours there keeps its place, ties keep their order."""
    place = {item: i for i, item in enumerate(fixed)}

    def key(entry: tuple[int, Hashable]) -> tuple[float, int]:
        index, item = entry
        linked = [place[n] for n in neighbours.get(item, ()) if n in place]
        return (sum(linked) / len(linked) if linked else float(index), index)

    return [item for _, item in sorted(enumerate(column), key=key)]


def _transpose(columns: list[list[Hashable]], up: dict, down: dict) -> None:
    """Swap neighbours inside a column while that removes crossings with both adjacent columns."""
    for _ in range(_TRANSPOSE_ROUNDS):
        improved = False
        for c, column in enumerate(columns):
            before = {item: i for i, item in enumerate(columns[c - 1])} if c > 0 else {}
            after = {item: i for i, item in enumerate(columns[c + 1])} if c + 1 < len(columns) else {}
            links = {item: (sorted(before[n] for n in up.get(item, ()) if n in before),
                            sorted(after[n] for n in down.get(item, ()) if n in after)) for item in column}
            for i in range(len(column) - 1):
                (u_up, u_down), (v_up, v_down) = links[column[i]], links[column[i + 1]]
                now = _pair_crossings(u_up, v_up) + _pair_crossings(u_down, v_down)
                swapped = _pair_crossings(v_up, u_up) + _pair_crossings(v_down, u_down)
                if swapped < now:
                    column[i], column[i + 1] = column[i + 1], column[i]
                    improved = True
        if not improved:
            return


def _pair_crossings(upper: list[int], lower: list[int]) -> int:
    """Crossings between the edges to places ``upper`` of an item and those to places ``lower`` of
    the item just below it: pairs where the lower item's edge ends above (both lists sorted)."""
    count = j = 0
    for a in upper:
        while j < len(lower) and lower[j] < a:
            j += 1
        count += j
    return count


def _total_crossings(columns: list[list[Hashable]], down: dict) -> int:
    return sum(_crossings(columns[c], columns[c + 1], down) for c in range(len(columns) - 1))


def _crossings(upper: list[Hashable], lower: list[Hashable], down: dict) -> int:
    """Edge crossings between two adjacent columns: inversions, counted with a Fenwick tree."""
    place = {item: i for i, item in enumerate(lower)}
    ends = sorted((i, place[v]) for i, u in enumerate(upper) for v in down.get(u, ()) if v in place)
    tree = [0] * (len(lower) + 1)
    count = seen = 0
    for _, j in ends:
        below = 0  # how many seen ends are at or above j
        k = j + 1
        while k:
            below += tree[k]
            k -= k & -k
        count += seen - below
        seen += 1
        k = j + 1
        while k <= len(lower):
            tree[k] += 1
            k += k & -k
    return count


# --------------------------------------------------------------------------- vertical places


def _half(item: Hashable, sizes: dict[str, tuple[float, float]]) -> float:
    return 0.0 if isinstance(item, _Dummy) else sizes[item][1] / 2


def _gap(a: Hashable, b: Hashable) -> float:
    return LANE_GAP if isinstance(a, _Dummy) or isinstance(b, _Dummy) else ROW_GAP


def _place(columns: list[list[Hashable]], up: dict, down: dict,
           sizes: dict[str, tuple[float, float]]) -> dict[Hashable, float]:
    """The vertical centre of every item."""
    centre: dict[Hashable, float] = {}
    for column in columns:
        y = 0.0
        for i, item in enumerate(column):
            if i:
                y += _half(column[i - 1], sizes) + _gap(column[i - 1], item) + _half(item, sizes)
            centre[item] = y
        shift = y / 2
        for item in column:
            centre[item] -= shift
    for round_ in range(_PLACE_ROUNDS):
        both = round_ >= _PLACE_ROUNDS - 2  # the last rounds balance each item between both sides
        if round_ % 2 == 0 or both:
            for c in range(1, len(columns)):
                _pull(columns[c], centre, [up] + ([down] if both else []), sizes)
        if round_ % 2 == 1 or both:
            for c in range(len(columns) - 2, -1, -1):
                _pull(columns[c], centre, [down] + ([up] if both else []), sizes)
    return centre


def _pull(column: list[Hashable], centre: dict[Hashable, float], sides: list[dict],
          sizes: dict[str, tuple[float, float]]) -> None:
    """Move ``column``'s items as near the weighted mean of their neighbours as order and gaps allow."""
    desired, weights = [], []
    for item in column:
        total = weight = 0.0
        for side in sides:
            for other in side.get(item, ()):
                w = _WEIGHT[isinstance(item, _Dummy), isinstance(other, _Dummy)]
                total += w * centre[other]
                weight += w
        desired.append(total / weight if weight else centre[item])
        weights.append(weight or 0.5)
    gaps = [_half(a, sizes) + _gap(a, b) + _half(b, sizes) for a, b in zip(column, column[1:])]
    for item, y in zip(column, _isotonic(desired, weights, gaps)):
        centre[item] = y


def _isotonic(desired: list[float], weights: list[float], gaps: list[float]) -> list[float]:
    """Places y minimising sum(w * (y - desired)^2) with y[i+1] >= y[i] + gaps[i] (pool adjacent violators)."""
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    blocks: list[list[float]] = []  # [value, weight, count]
    for d, w, offset in zip(desired, weights, offsets):
        blocks.append([d - offset, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            value, weight, count = blocks.pop()
            last = blocks[-1]
            last[0] = (last[0] * last[1] + value * weight) / (last[1] + weight)
            last[1] += weight
            last[2] += count
    values = [value for value, _, count in blocks for _ in range(int(count))]
    return [value + offset for value, offset in zip(values, offsets)]


# --------------------------------------------------------------------------- boxes and routes


def _finish(columns: list[list[Hashable]], centre: dict[Hashable, float], sizes: dict[str, tuple[float, float]],
            chains: dict[tuple[str, str], list[Hashable]]) -> Layout:
    top = min((centre[item] - _half(item, sizes) for column in columns for item in column), default=0.0)
    bottom = max((centre[item] + _half(item, sizes) for column in columns for item in column), default=0.0)
    shift = MARGIN - top
    widths = [max((sizes[item][0] for item in column if not isinstance(item, _Dummy)), default=0.0)
              for column in columns]
    lefts = [MARGIN + sum(widths[:c]) + COLUMN_GAP * c for c in range(len(columns))]
    boxes: dict[str, Box] = {}
    for c, column in enumerate(columns):
        for item in column:
            if not isinstance(item, _Dummy):
                width, height = sizes[item]
                boxes[item] = Box(lefts[c] + (widths[c] - width) / 2, centre[item] + shift - height / 2,
                                  width, height)
    lane = {item: y + shift for item, y in centre.items()}
    out_port, in_port = _ports(chains, boxes, lane)
    column_of = {item: c for c, column in enumerate(columns) for item in column}
    routes = []
    for (a, b), chain in chains.items():
        ca, cb = column_of[a], column_of[b]
        runs = [(boxes[a].right, lefts[ca] + widths[ca], out_port[a, b])]
        runs += [(lefts[d.column], lefts[d.column] + widths[d.column], lane[d]) for d in chain[1:-1]]
        end = boxes[b].x - ARROW_GAP
        runs.append((min(lefts[cb], end), end, in_port[a, b]))
        routes.append(Route(a, b, tuple(runs)))
    width = (lefts[-1] + widths[-1] + MARGIN) if columns else 0.0
    return Layout(boxes, tuple(routes), width, bottom - top + 2 * MARGIN, tuple(tuple(c) for c in columns))


def _ports(chains: dict[tuple[str, str], list[Hashable]], boxes: dict[str, Box],
           lane: dict[Hashable, float]) -> tuple[dict, dict]:
    """Where each edge leaves its source and enters its target: spread down the box's side in the
    order of where the edges go (or come from), so edges of one box do not cross at it."""
    leaving: dict[str, list[tuple[float, tuple[str, str]]]] = {}
    entering: dict[str, list[tuple[float, tuple[str, str]]]] = {}
    for edge, chain in chains.items():
        leaving.setdefault(edge[0], []).append((lane[chain[1]], edge))
        entering.setdefault(edge[1], []).append((lane[chain[-2]], edge))
    out_port: dict[tuple[str, str], float] = {}
    in_port: dict[tuple[str, str], float] = {}
    for ports, side in ((out_port, leaving), (in_port, entering)):
        for name, ends in side.items():
            box = boxes[name]
            ends.sort()
            spacing = min(_PORT_SPACING, (box.height - 2 * _PORT_INSET) / max(1, len(ends) - 1))
            middle = box.y + box.height / 2
            for i, (_, edge) in enumerate(ends):
                ports[edge] = middle + (i - (len(ends) - 1) / 2) * spacing
    return out_port, in_port
