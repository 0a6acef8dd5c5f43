"""The import graph between the tree's own modules: who depends on whom, and any cycles.

Fan-in (how many modules import this one) marks the modules a change ripples out from;
fan-out marks the ones that break when anything else changes. A cycle is reported as a
chain ``a -> b -> a``.

Usage: python3 analysis/deps.py --index out/index.json --out out/deps.json
Passes on ``edges=`` and ``cycles=`` (counts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, read_json, write_json


def cycles(graph: dict[str, list[str]]) -> list[str]:
    """Each elementary cycle once, as ``a -> b -> a`` starting from its smallest name."""
    found: set[tuple[str, ...]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, []):
            if nxt == path[0]:
                found.add(tuple(path))
            elif nxt not in path and nxt > path[0]:
                walk(nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, [start])
    return sorted(" -> ".join([*c, c[0]]) for c in found)


def layers(graph: dict[str, list[str]]) -> list[list[str]]:
    """Modules in dependency order: layer 0 imports nothing of ours, layer n only below n."""
    remaining = {m: set(deps) for m, deps in graph.items()}
    result: list[list[str]] = []
    while remaining:
        ready = sorted(m for m, deps in remaining.items() if not deps & remaining.keys())
        if not ready:  # a cycle: what is left cannot be layered
            result.append(sorted(remaining))
            break
        result.append(ready)
        for m in ready:
            del remaining[m]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    index = read_json(args.index)
    graph = {m["module"]: m["imports"] for m in index["modules"]}
    fan_in = {m: sorted(o for o, deps in graph.items() if m in deps) for m in graph}
    result = {
        "graph": graph,
        "fan_in": fan_in,
        "fan_out": {m: len(deps) for m, deps in graph.items()},
        "layers": layers(graph),
        "cycles": cycles(graph),
    }
    write_json(args.out, result)
    emit(edges=sum(len(d) for d in graph.values()), cycles=len(result["cycles"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
