"""Inventory a source tree with ``ast``: every module, class and function, where it is,
what it documents and what it imports. The other analysis steps all start from this file.

Usage: python3 analysis/index.py --src src --out out/index.json
Passes on ``modules=``, ``classes=`` and ``functions=`` (counts).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from common import emit, module_name, python_files, write_json


def internal_imports(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Modules of this tree that ``module`` imports (relative imports resolved)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: max(0, len(parts) - node.level + 1)]
                base = ".".join([*parent, base] if base else parent)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known and name != module)
    return sorted(found)


def callables(tree: ast.Module, module: str, path: str) -> tuple[list[dict], list[dict]]:
    classes: list[dict] = []
    functions: list[dict] = []

    def visit(body: list[ast.stmt], prefix: str, in_class: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                qualname = f"{prefix}{node.name}"
                classes.append(
                    {
                        "module": module,
                        "qualname": qualname,
                        "lineno": node.lineno,
                        "docstring": ast.get_docstring(node) or "",
                        "bases": [ast.unparse(b) for b in node.bases],
                    }
                )
                visit(node.body, f"{qualname}.", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qualname = f"{prefix}{node.name}"
                identifiers = sorted(
                    {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                    | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                )
                functions.append(
                    {
                        "module": module,
                        "qualname": qualname,
                        "kind": "method" if in_class else "function",
                        "path": path,
                        "lineno": node.lineno,
                        "end_lineno": node.end_lineno or node.lineno,
                        "args": [a.arg for a in node.args.args + node.args.kwonlyargs],
                        "docstring": ast.get_docstring(node) or "",
                        "identifiers": identifiers,
                    }
                )

    visit(tree.body, "", False)
    return classes, functions


def index(src: Path) -> dict:
    files = python_files(src)
    known = {module_name(src, f) for f in files}
    modules, classes, functions = [], [], []
    for file in files:
        module = module_name(src, file)
        path = file.as_posix()
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=path)
        modules.append(
            {
                "module": module,
                "path": path,
                "lines": len(file.read_text(encoding="utf-8").splitlines()),
                "docstring": ast.get_docstring(tree) or "",
                "imports": internal_imports(tree, module, file.name == "__init__.py", known),
            }
        )
        found_classes, found_functions = callables(tree, module, path)
        classes += found_classes
        functions += found_functions
    return {"src": src.as_posix(), "modules": modules, "classes": classes, "functions": functions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = index(args.src)
    if not data["modules"]:
        parser.exit(1, f"index: no Python files under {args.src}\n")
    write_json(args.out, data)
    emit(
        modules=len(data["modules"]),
        classes=len(data["classes"]),
        functions=len(data["functions"]),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
