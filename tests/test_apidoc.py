"""docs/api.md: generated from runner.api's docstrings, current, and its example runs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from runner import api, apidoc

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"


def _example() -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"## Example\n\n```python\n(.*?)\n```", text, re.S)
    assert m, "docs/api.md has no example"
    return m.group(1)


def test_the_committed_reference_is_current() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "runner.apidoc", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert p.returncode == 0, p.stderr


def test_every_listed_name_is_in_the_api_with_a_docstring() -> None:
    listed = re.findall(r"^### `(\w+)`$", DOC.read_text(encoding="utf-8"), re.M)
    assert listed == apidoc.public()
    for name in listed:
        obj = getattr(api, name)
        assert (obj.__doc__ or "").strip(), f"runner.api.{name} has no docstring"
    # the sections the issue asks for
    for name in ("projects", "create_project", "templates", "system_status"):
        assert name in listed


def test_the_example_uses_only_what_the_docs_list() -> None:
    tree = ast.parse(_example())
    used = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "api"
    }
    assert used and used <= set(apidoc.public())
    ours = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert {m for m in ours if m.startswith("runner")} <= {"runner", "runner.errors"}


def test_the_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_example(), encoding="utf-8")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "{'run': 2, 'restore': 0, 'may-run': 0, 'up-to-date': 0, 'skip': 0}"
    assert out[1] == "True {'succeeded': 2}"
    assert out[3] == "{'run': 0, 'restore': 0, 'may-run': 0, 'up-to-date': 2, 'skip': 0}"
    assert "[('shop', 'active')]" in out
    assert out[-1] == "[\"no workflow named 'helo' (did you mean 'hello'?)\"]"
