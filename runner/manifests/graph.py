"""The DAG of one workflow's steps.

Edges come from three places (DESIGN.md "Manifest model")::

    needs: [a]                 a ──needs──> b
    {{ steps.a.outputs.x }}    a ──template──> b
    a.outputs ∋ dist/x.whl,    a ──files──> b
    b.inputs ∋ dist/*.whl

The hot path (plan/apply) needs only a topological order and the upstream lists, which the
stdlib's ``graphlib`` gives without networkx's 0.2 s import; networkx is imported only off
that path: ``orch graph --reduce`` (``reduced``), the cycle chains ``orch validate`` names,
and the workflows downstream of a change for ``--since``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from runner import globs


@dataclass
class Dag:
    workflow: str
    order: list[str]  # topological; ties broken by declaration order
    upstream: dict[str, list[str]]  # step -> direct upstream steps
    kinds: dict[tuple[str, str], set[str]] = field(
        default_factory=dict
    )  # (up, down) -> {"needs", ...}

    def downstream(self) -> dict[str, list[str]]:
        cached = self.__dict__.get("_down")
        if cached is not None:
            return cached
        down: dict[str, list[str]] = {s: [] for s in self.order}
        for s, ups in self.upstream.items():
            for u in ups:
                down[u].append(s)
        self.__dict__["_down"] = down
        return down

    def descendants(self, names: set[str]) -> set[str]:
        down = self.downstream()
        seen: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            for d in down.get(n, ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen


def reduced(dag: Dag) -> Dag:
    """``dag`` with every edge implied by a longer path left out (its transitive reduction,
    networkx's ``transitive_reduction``): ``a -> c`` goes when ``a -> b -> c`` is there.
    Same steps, same run order; what a step waits for is unchanged, only the drawing is
    lighter. For ``orch graph --reduce``: never on the plan/apply path."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(dag.order)
    g.add_edges_from((u, d) for d, ups in dag.upstream.items() for u in ups)
    keep = set(nx.transitive_reduction(g).edges)
    upstream = {d: [u for u in ups if (u, d) in keep] for d, ups in dag.upstream.items()}
    kinds = {e: k for e, k in dag.kinds.items() if e in keep}
    return Dag(dag.workflow, list(dag.order), upstream, kinds)


class CycleError(ValueError):
    def __init__(self, cycle: list[str]):
        super().__init__(" -> ".join(cycle))
        self.cycle = cycle


def file_edges(
    steps: list[tuple[str, list[str], list[str]]],
) -> list[tuple[str, str]]:
    """(producer, consumer) pairs where a consumer's input matches a producer's output.

    ``steps`` holds (name, inputs, outputs) with repo-relative paths. Literal inputs are
    looked up in an index of outputs (and of output folders), so 10,000 steps stay linear.
    """
    exact: dict[str, list[str]] = {}
    dirs: dict[str, list[str]] = {}
    all_outputs: list[tuple[str, str]] = []
    for name, _ins, outs in steps:
        for o in outs:
            if o.startswith("!"):
                continue  # an exclusion: what the step leaves out of its outputs
            o = globs.literal(o)
            all_outputs.append((o, name))
            if o.endswith("/"):
                dirs.setdefault(o.rstrip("/"), []).append(name)
            else:
                exact.setdefault(o, []).append(name)
    edges: list[tuple[str, str]] = []
    for name, ins, _outs in steps:
        pos, neg = globs.split(ins)
        for i in pos:
            producers: set[str] = set()
            if globs.is_glob(i) or i.endswith("/"):
                pat = globs.compile_glob(i)
                for o, p in all_outputs:
                    od = o.rstrip("/")
                    if neg and globs.excluded(od, neg):
                        continue
                    if pat.match(od) or (o.endswith("/") and _could_match_under(i, od)):
                        producers.add(p)
            else:
                i = globs.literal(i)
                producers.update(exact.get(i, ()))
                parts = i.split("/")
                for k in range(1, len(parts)):
                    producers.update(dirs.get("/".join(parts[:k]), ()))
                producers.update(dirs.get(i, ()))
            for p in producers:
                if p != name:
                    edges.append((p, name))
    return edges


def cross_workflow_edges(
    specs: list[tuple[str, str, list[str], list[str]]],
) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """((workflow, producer), (workflow, consumer)) pairs across workflows, by the rules
    of ``file_edges``; ``specs`` holds (workflow, step, inputs, outputs)."""
    named = [(f"{w}\x00{s}", ins, outs) for w, s, ins, outs in specs]
    out = []
    for u, d in file_edges(named):
        uw, _, us = u.partition("\x00")
        dw, _, ds = d.partition("\x00")
        if uw != dw:
            out.append(((uw, us), (dw, ds)))
    return sorted(set(out))


def _could_match_under(pattern: str, folder: str) -> bool:
    """Whether ``pattern`` can match a file inside ``folder``, segment by segment:
    ``src/*.md`` cannot match under ``src/gen/``; ``src/**/*.md`` and ``src/*/x`` can."""
    from fnmatch import fnmatchcase

    pat = (pattern + "**" if pattern.endswith("/") else pattern).split("/")
    segs = folder.split("/")
    for k, seg in enumerate(segs):
        if k >= len(pat):
            return False
        if pat[k] == "**":
            return True
        if not fnmatchcase(seg, pat[k]):
            return False
    return len(pat) > len(segs)


def build_dag(
    workflow: str,
    names: list[str],
    edges: dict[tuple[str, str], set[str]],
) -> Dag:
    """Order ``names`` topologically; raise CycleError naming the cycle."""
    index = {n: i for i, n in enumerate(names)}
    upstream: dict[str, list[str]] = {n: [] for n in names}
    indeg = dict.fromkeys(names, 0)
    down: dict[str, list[str]] = {n: [] for n in names}
    for u, d in edges:
        upstream[d].append(u)
        down[u].append(d)
        indeg[d] += 1
    for n in names:
        upstream[n].sort(key=index.__getitem__)
    heap = [(index[n], n) for n in names if indeg[n] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, n = heapq.heappop(heap)
        order.append(n)
        for d in down[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, (index[d], d))
    if len(order) != len(names):
        import graphlib

        ts = graphlib.TopologicalSorter({n: upstream[n] for n in names})
        try:
            ts.prepare()
        except graphlib.CycleError as e:
            cycle = list(e.args[1])
            raise CycleError(cycle) from None
        raise CycleError([n for n in names if n not in set(order)])  # pragma: no cover
    return Dag(workflow, order, upstream, edges)
