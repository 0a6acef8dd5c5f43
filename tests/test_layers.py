"""The code's shape, enforced: imports point down the layers of docs/architecture.md.

Every import in ``runner/**/*.py`` counts -- top-level, function-local and ``TYPE_CHECKING``
alike: a function-local import is still a dependency, it only moves the cost. The rules:

* an import never points up a layer (the table below is the one in the architecture doc);
* the two edges, ``store/`` and ``execute/``, never import each other;
* no import cycle between modules, of any length;
* only ``store/`` imports ``sqlite3``; only ``execute/`` and ``manifests/sources.py`` (git)
  import ``subprocess``;
* only ``store/`` holds SQL text: a string literal (or f-string) outside it that reads as a
  statement is SQL handed to ``State.query`` or a connection, past the import check; and
  only ``store/`` calls ``.query``/``.execute*`` (SQL built from a variable);
* every ``__init__.py`` is import-free (start-up budget), and pyproject lists every package
  (a package missing there is missing from a wheel).

The checks read source text (``ast``), never import it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "runner"

# module name (or package prefix ending in ".") -> level, as in docs/architecture.md;
# the most specific entry wins
LAYERS: dict[str, int] = {
    # 0 leaves
    "runner": 0,
    "runner.errors": 0,
    "runner.status": 0,
    "runner.model": 0,
    "runner.digests": 0,
    "runner.units": 0,
    "runner.globs": 0,
    "runner.fsutil": 0,
    "runner.statkey": 0,
    "runner.links": 0,
    "runner.pathmatch": 0,
    "runner.masking": 0,
    # 1 shared core
    "runner.templating": 1,
    "runner.sandbox": 1,
    "runner.shellquote": 1,
    "runner.shellcode": 1,
    "runner.shellwords": 1,
    # 2 edges
    "runner.store.": 2,
    "runner.execute.": 2,
    # 3 desired state
    "runner.manifests.": 3,
    # 4 engine
    "runner.reconcile.": 4,
    # 5 use cases
    "runner.workspace": 5,
    "runner.noop": 5,
    "runner.reconciling": 5,
    "runner.recorded": 5,
    "runner.projects.": 5,
    "runner.render": 5,
    "runner.junit": 5,
    "runner.ci": 5,
    "runner.docgen": 5,
    "runner.system": 5,
    "runner.events": 5,
    "runner.audit": 5,
    # 6 facade
    "runner.api": 6,
    # 7 clients
    "runner.cli.": 7,
    "runner.mcp.": 7,
    "runner.watch.": 7,
    "runner.ui.": 7,
    "runner.apidoc": 7,  # reads runner.api's docstrings
    "runner.__main__": 7,
}
EDGES = ("runner.store.", "runner.execute.")
SQL_ONLY = ("runner.store.",)
SUBPROCESS_ONLY = ("runner.execute.", "runner.manifests.sources")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in sorted(PKG.rglob("*.py"))
        if "templates" not in p.relative_to(PKG).parts
    }


MODULES = sources()


def level(mod: str) -> int | None:
    best, found = -1, None
    for key, lvl in LAYERS.items():
        hit = mod == key.rstrip(".") or (key.endswith(".") and mod.startswith(key))
        if hit and len(key) > best:
            best, found = len(key), lvl
    return found


def imports(mod: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement anywhere in ``mod``."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub if sub in MODULES else base, node.lineno))
    return out


def ours(name: str) -> str | None:
    """The module of ours an import names (``runner.x.y`` may be a name inside runner.x)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for name, _ in imports(m):
            if name == "runner" or not name.startswith("runner"):
                continue
            target = ours(name)
            if target and target != m:
                g[m].add(target)
    return g


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if level(m) is None] == []


def test_imports_point_down() -> None:
    bad = []
    for m in MODULES:
        for name, line in imports(m):
            target = ours(name) if name.startswith("runner") else None
            if not target or target == m:
                continue
            lm, lt = level(m), level(target)
            if lm is not None and lt is not None and lt > lm:
                bad.append(
                    f"{MODULES[m].relative_to(ROOT)}:{line}: {m} (level {lm}) -> {target} (level {lt})"
                )
            edge_m = next((e for e in EDGES if m.startswith(e)), None)
            edge_t = next((e for e in EDGES if target.startswith(e)), None)
            if edge_m and edge_t and edge_m != edge_t:
                bad.append(f"{MODULES[m].relative_to(ROOT)}:{line}: edge {m} -> edge {target}")
    assert bad == []


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components with more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert strongly_connected(graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The cycle test can fail: a three-module ring and a self-free chain."""
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(ring) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("lib", "allowed"), [("sqlite3", SQL_ONLY), ("subprocess", SUBPROCESS_ONLY)]
)
def test_only_the_edges_import(lib: str, allowed: tuple[str, ...]) -> None:
    bad = [
        f"{MODULES[m].relative_to(ROOT)}:{line}: {m} imports {lib}"
        for m in MODULES
        for name, line in imports(m)
        if name.split(".")[0] == lib and not m.startswith(allowed)
    ]
    assert bad == []


# statement shapes, not bare keywords: "create", "with", "replace", "COMMIT" (a metavar)
# and "Drop ..." are words of help text and docstrings
_SQL_SHAPES = (
    r"SELECT\s+(DISTINCT\s+)?([\d?*]|\w+\s*\(|[\s\S]*\bFROM\s)",
    r"(INSERT|REPLACE)\s+(OR\s+\w+\s+)?INTO\s",
    r"UPDATE\s+(OR\s+\w+\s+)?\w+\s+SET\s",
    r"DELETE\s+FROM\s",
    r"WITH\s+(RECURSIVE\s+)?\w+(\s*\([^)]*\))?\s+AS\s*\(",
    r"PRAGMA\s+\w+",
    r"BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$",
    r"(COMMIT|END|ROLLBACK)\s+TRANSACTION\b",
    r"ROLLBACK\s+TO\s",
    r"(SAVEPOINT|RELEASE\s+SAVEPOINT)\s+\w+",
    r"(CREATE|DROP)\s+(TEMP\w*\s+|UNIQUE\s+|VIRTUAL\s+)?(TABLE|INDEX|VIEW|TRIGGER)\s",
    r"ALTER\s+TABLE\s",
    r"(ATTACH|DETACH)\s+DATABASE\s",
    r"VACUUM\b",
)
SQL_TEXT = re.compile(r"^\s*(" + "|".join(_SQL_SHAPES) + ")", re.IGNORECASE)


def sql_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal in ``source`` that starts like an SQL
    statement; an f-string counts as its text with ``{}`` for each hole."""
    tree = ast.parse(source)
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in parts:
                continue
            text = node.value
        else:
            continue
        if SQL_TEXT.match(text):
            out.append((node.lineno, text))
    return sorted(out)


def test_only_the_store_holds_sql() -> None:
    bad = sorted(
        [
            f"{MODULES[m].relative_to(ROOT)}:{line}: SQL outside runner/store/ ({text.strip()[:60]!r});"
            " move it into a named function of runner/store/ and call that with data"
            for m in MODULES
            if not m.startswith(SQL_ONLY)
            for line, text in sql_strings(MODULES[m].read_text(encoding="utf-8"))
        ]
    )
    assert not bad, "\n" + "\n".join(bad)


SQL_CALLS = ("query", "execute", "executemany", "executescript")


def test_only_the_store_runs_sql() -> None:
    """``State.query`` and a connection's ``execute*`` are the store's own: a caller
    outside it asks a named store function instead (whatever the SQL is built from)."""
    bad = sorted(
        [
            f"{MODULES[m].relative_to(ROOT)}:{node.lineno}: .{node.func.attr}(...) outside"
            " runner/store/; call a named function of runner/store/ with data instead"
            for m in MODULES
            if not m.startswith(SQL_ONLY)
            for node in ast.walk(ast.parse(MODULES[m].read_text(encoding="utf-8")))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_CALLS
        ]
    )
    assert not bad, "\n" + "\n".join(bad)


def test_sql_finder_finds_sql() -> None:
    """The SQL test can fail: statements, f-strings and joined literals are found; help
    text, docstrings and metavars that start with an SQL word are not."""
    found = sql_strings(
        'a = state.query("SELECT 1 FROM runs WHERE id=?", (1,))\n'
        'b = f"UPDATE tasks SET {col}=? WHERE id=?"\n'
        'c = ("delete from steps"\n     " WHERE workflow=?")\n'
        'd = "  INSERT OR IGNORE INTO events (at) VALUES (?)"\n'
        'e = "BEGIN IMMEDIATE"\n'
        'f = f"WITH l AS (SELECT max(id) FROM tasks) SELECT {cols} FROM l"\n'
        'g = "PRAGMA journal_mode"\n'
    )
    assert [line for line, _ in found] == [1, 2, 3, 5, 6, 7, 8]
    prose = (
        '"""Drop result-cache entries, least recently used first."""\n'
        'p.add_argument("--since", metavar="COMMIT", help="create .orch/config.yaml here")\n'
        's = text.encode(errors="replace")\n'
        'h = "with --poll, stat the tree this often"\n'
        'u = "select the steps to run; update them with orch apply"\n'
        'b = "Begin action kind"\n'
    )
    assert sql_strings(prose) == []


def test_init_files_import_nothing() -> None:
    bad = [
        str(p.relative_to(ROOT))
        for m, p in MODULES.items()
        if p.name == "__init__.py" and imports(m)
    ]
    assert bad == []


def test_pyproject_lists_every_package() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = set(
        re.findall(r'"(runner(?:\.\w+)*)"', text.split("packages = [", 1)[1].split("]")[0])
    )
    on_disk = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert on_disk - listed == set()


def test_readme_code_map_names_every_module() -> None:
    """README's code map lists every module by file name and every package by folder."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    code_map = text.split("### The code", 1)[1]
    missing = [
        str(p.relative_to(ROOT))
        for m, p in MODULES.items()
        if p.name not in ("__init__.py", "__main__.py") and f"`{p.name}`" not in code_map
    ]
    folders = {
        f"`runner/{p.parent.relative_to(PKG)}/`" for p in MODULES.values() if p.parent != PKG
    }
    assert missing == [] and [f for f in sorted(folders) if f not in code_map] == []
