"""Entries crafted by whoever else writes a shared or remote result cache, through the
real CLI: a restore writes only the step's declared outputs, never a special mode bit,
and an entry it will not follow is a miss with one warning (the step runs)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Repo
from tests.test_result_cache import _apply_ok, _runs, _setup


@pytest.fixture(autouse=True)
def _cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache."""
    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)


def _craft(repo: Repo, step: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite every entry of ``step`` in place, as another writer of the store could."""
    for p in (repo.path / ".orch/cache/results/entries").rglob("*.json"):
        data = json.loads(p.read_text())
        if data["meta"]["step"] == step:
            change(data)
            p.chmod(0o644)
            p.write_text(json.dumps(data))


def _add_output(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        out = next(o for o in data["outputs"] if o["kind"] == "file")
        data["outputs"].append({**out, "path": path})

    return change


@pytest.mark.parametrize("path", ["src.txt", "wf.yaml", "notes/new.txt"])
def test_an_entry_naming_a_path_the_step_does_not_output_is_a_miss(repo: Repo, path: str) -> None:
    _setup(repo)
    _apply_ok(repo)
    _craft(repo, "build", _add_output(path))
    before = repo.read(path) if repo.exists(path) else None
    shutil.rmtree(repo.path / "dist")
    assert repo.plan()[("w", "build")][0] == "run"  # the plan does not promise it either
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if "warning" in ln]
    assert (
        len(warnings) == 1 and f"names {path!r}, not one of the step's outputs" in (warnings[0])
    ), p.stderr
    assert _runs(repo) == ["build", "use", "build"]  # ran instead
    assert (repo.read(path) if repo.exists(path) else None) == before
