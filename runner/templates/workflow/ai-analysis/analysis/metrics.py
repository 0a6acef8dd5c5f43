"""Code metrics from the index: cyclomatic complexity per function and docstring coverage.

Complexity is McCabe's count, near enough: 1, plus one per ``if``/``elif``, loop, ``except``,
conditional expression, comprehension filter, ``match`` case, and each extra operand of
``and``/``or``. Functions above ``--threshold`` are listed as hotspots, worst first.

Usage: python3 analysis/metrics.py --index out/index.json --threshold 5 --out out/metrics.json
Passes on ``doc_coverage=`` (percent), ``max_complexity=``, ``hotspot=`` and ``over_threshold=``.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from common import emit, read_json, write_json

BRANCHES = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.IfExp, ast.ExceptHandler)


def complexity(node: ast.AST) -> int:
    score = 1
    for child in ast.walk(node):
        if isinstance(child, BRANCHES):
            score += 1
        elif isinstance(child, ast.BoolOp):
            score += len(child.values) - 1
        elif isinstance(child, ast.comprehension):
            score += len(child.ifs)
        elif isinstance(child, ast.match_case):
            score += 1
    return score


def function_nodes(path: str) -> dict[int, ast.AST]:
    """Function definitions of a file by first line, to match the index's records."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    return {
        n.lineno: n
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def measure(index: dict, threshold: int) -> dict:
    by_file: dict[str, dict[int, ast.AST]] = {}
    functions = []
    for record in index["functions"]:
        nodes = by_file.setdefault(record["path"], function_nodes(record["path"]))
        node = nodes.get(record["lineno"])
        if node is None:
            raise SystemExit(
                f"metrics: {record['path']} changed since it was indexed; re-run index"
            )
        functions.append(
            {
                "name": f"{record['module']}.{record['qualname']}",
                "complexity": complexity(node),
                "lines": record["end_lineno"] - record["lineno"] + 1,
                "documented": bool(record["docstring"]),
            }
        )
    documentable = (
        [bool(m["docstring"]) for m in index["modules"]]
        + [bool(c["docstring"]) for c in index["classes"]]
        + [f["documented"] for f in functions]
    )
    coverage = round(100 * sum(documentable) / len(documentable), 1) if documentable else 100.0
    ranked = sorted(functions, key=lambda f: (-f["complexity"], f["name"]))
    return {
        "threshold": threshold,
        "doc_coverage": coverage,
        "undocumented": sorted(f["name"] for f in functions if not f["documented"]),
        "functions": ranked,
        "hotspots": [f["name"] for f in ranked if f["complexity"] > threshold],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--threshold", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    metrics = measure(read_json(args.index), args.threshold)
    write_json(args.out, metrics)
    worst = metrics["functions"][0] if metrics["functions"] else {"name": "-", "complexity": 0}
    emit(
        doc_coverage=metrics["doc_coverage"],
        max_complexity=worst["complexity"],
        hotspot=worst["name"],
        over_threshold=len(metrics["hotspots"]),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
