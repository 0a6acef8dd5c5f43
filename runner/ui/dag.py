"""A workflow's DAG laid out for an inline SVG: layers left to right, fan-out grouped.

The layout is Sugiyama's first step only (Sugiyama, Tagawa and Toda 1981): each node's
layer is its topological generation (``networkx.topological_generations``), so every
edge points right; inside a layer nodes keep run order. No crossing minimisation: a
1,000-step workflow lays out in milliseconds and each node stays where the plan lists it.
Instances of a fan-out step (``foreach``/``matrix``) are drawn as one node carrying
their count, coloured by their worst status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.status import FAILED, LIVE, Status

NODE_W, NODE_H = 180, 34
GAP_X, GAP_Y = 90, 18
PAD = 16

# a group's status: the first of these any instance has, else the most common
_WORST = (*LIVE, *FAILED, Status.BLOCKED, Status.CIRCUIT_OPEN, "never-ran")


@dataclass
class Node:
    name: str  # the step, or the fan-out group
    x: int = 0
    y: int = 0
    instances: list[str] = field(default_factory=list)  # a group's instance names

    @property
    def cx(self) -> int:
        return self.x + NODE_W // 2


@dataclass
class Edge:
    src: str
    dst: str
    kinds: list[str]
    path: str = ""
    lx: int = 0
    ly: int = 0


@dataclass
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def group_status(statuses: list[str]) -> str:
    """One status for a fan-out group: running, then failures, before the common one."""
    for s in _WORST:
        if s in statuses:
            return s
    if not statuses:
        return "never-ran"
    return max(set(statuses), key=statuses.count)


def layout(graph: dict[str, Any], groups: dict[str, list[str]]) -> Layout:
    """``graph``: ``api.graph_data``'s shape; ``groups``: ``api.step_groups``'s."""
    import networkx as nx

    owner = {inst: g for g, names in groups.items() for inst in names}
    order: list[str] = []
    kinds: dict[tuple[str, str], set[str]] = {}
    for s in graph["steps"]:
        n = owner.get(s["name"], s["name"])
        if n not in order:
            order.append(n)
        for up in s["upstream"]:
            u = owner.get(up["step"], up["step"])
            if u != n:
                kinds.setdefault((u, n), set()).update(up["kinds"] or ["needs"])
    g = nx.DiGraph()
    g.add_nodes_from(order)
    g.add_edges_from(kinds)
    rank = {n: i for i, n in enumerate(order)}
    try:
        layers = [sorted(gen, key=rank.__getitem__) for gen in nx.topological_generations(g)]
    except nx.NetworkXUnfeasible:  # grouping made a cycle: one column, run order
        layers = [order]
    nodes: dict[str, Node] = {}
    for col, names in enumerate(layers):
        for row, n in enumerate(names):
            nodes[n] = Node(
                n,
                PAD + col * (NODE_W + GAP_X),
                PAD + row * (NODE_H + GAP_Y),
                list(groups.get(n, [])),
            )
    edges = [_edge(nodes[u], nodes[v], sorted(k)) for (u, v), k in kinds.items()]
    tallest = max((len(names) for names in layers), default=1)
    return Layout(
        [nodes[n] for n in order],
        edges,
        2 * PAD + max(len(layers), 1) * (NODE_W + GAP_X) - GAP_X,
        2 * PAD + tallest * (NODE_H + GAP_Y) - GAP_Y,
    )


def _edge(u: Node, v: Node, kinds: list[str]) -> Edge:
    x1, y1 = u.x + NODE_W, u.y + NODE_H // 2
    x2, y2 = v.x, v.y + NODE_H // 2
    mid = (x1 + x2) // 2
    path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
    return Edge(u.name, v.name, kinds, path, mid, (y1 + y2) // 2 - 3)
