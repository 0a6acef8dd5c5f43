"""A small stdlib-only linter, so the example needs nothing but Python to run.

Checks, per file: it parses; no line longer than MAX_LINE; no trailing whitespace or tabs;
a module docstring (except in empty files); no unused imports (names listed in ``__all__``
count as used, so package ``__init__`` re-exports are fine).

Usage: python3 tools/lint.py PATH [PATH ...]   (files or directories, searched for *.py)
Prints ``path:line:col: CODE message`` per problem, sorted; exit 1 if there were any. A
folder that does not exist yet is noted and skipped, so a new project lints clean.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINE = 100


def python_files(paths: list[str]) -> list[Path]:
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            print(f"lint: {raw} does not exist yet, skipped", file=sys.stderr)
        elif path.is_dir():
            found.update(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.suffix == ".py":
            found.add(path)
        else:
            raise SystemExit(f"lint: not a Python file or directory: {raw}")
    return sorted(found)


def exported_names(tree: ast.Module) -> set[str]:
    """Names in a literal ``__all__``: re-exports are uses, not dead imports."""
    names: set[str] = set()
    for node in tree.body:
        is_all = isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        )
        if is_all and isinstance(node.value, (ast.List, ast.Tuple)):
            names.update(
                e.value
                for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            )
    return names


def unused_imports(tree: ast.Module) -> list[tuple[int, int, str]]:
    imported: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                imported[name] = (node.lineno, node.col_offset + 1)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                if alias.name != "*":
                    imported[alias.asname or alias.name] = (node.lineno, node.col_offset + 1)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    # String annotations ("list[Path]") still count as uses.
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            used.update(part for part in _identifiers(node.value))
    used |= exported_names(tree)
    return sorted((line, col, name) for name, (line, col) in imported.items() if name not in used)


def _identifiers(text: str) -> set[str]:
    word = ""
    out: set[str] = set()
    for ch in text + " ":
        if ch.isalnum() or ch == "_":
            word += ch
        else:
            if word and not word[0].isdigit():
                out.add(word)
            word = ""
    return out


def lint_file(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    problems: list[tuple[int, int, str]] = []
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        return [f"{path}:{exc.lineno or 1}:{exc.offset or 1}: E999 syntax error: {exc.msg}"]
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            message = f"E501 line too long ({len(line)} > {MAX_LINE})"
            problems.append((number, MAX_LINE + 1, message))
        if line != line.rstrip():
            problems.append((number, len(line.rstrip()) + 1, "W291 trailing whitespace"))
        if "\t" in line:
            problems.append((number, line.index("\t") + 1, "W191 tab character"))
    if text.strip() and ast.get_docstring(tree) is None:
        problems.append((1, 1, "D100 missing module docstring"))
    for line, col, name in unused_imports(tree):
        problems.append((line, col, f"F401 '{name}' imported but unused"))
    return [f"{path}:{line}:{col}: {msg}" for line, col, msg in sorted(problems)]


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python3 tools/lint.py PATH [PATH ...]", file=sys.stderr)
        return 2
    files = python_files(argv)
    problems = [p for f in files for p in lint_file(f)]
    for problem in problems:
        print(problem)
    print(f"lint: {len(files)} files, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
