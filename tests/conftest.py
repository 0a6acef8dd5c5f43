"""Shared fixtures: real git repositories in tmp_path and the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

# every `python -m runner` a test starts imports this checkout's runner, whatever its cwd
# and whichever fixture (module-scoped ones too) starts it: from a temp folder it would
# import the installed one (another worktree's, for an editable install) and test that
CHECKOUT = str(Path(__file__).resolve().parent.parent)
if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != CHECKOUT:
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (CHECKOUT, os.environ.get("PYTHONPATH")) if p
    )
GIT_ENV = {
    "GIT_AUTHOR_NAME": "orch tests",
    "GIT_AUTHOR_EMAIL": "tests@orch.invalid",
    "GIT_COMMITTER_NAME": "orch tests",
    "GIT_COMMITTER_EMAIL": "tests@orch.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolate_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests never read or write the real $HOME (git config, pre-commit cache, ...)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    # the suite itself runs in GitHub Actions: its output rules are asked for by the tests
    # that test them, never inherited
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    # steps run as they did before the result cache: tests of re-running are about the
    # engine's decisions; the cache's own tests turn it on again (``cache_on``)
    monkeypatch.setenv("ORCH_NO_CACHE", "1")


@pytest.fixture
def cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The result cache on again, for the tests that are about it (the suite turns it off
    above): ``pytestmark = pytest.mark.usefixtures("cache_on")``."""
    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)


class Repo:
    """A throwaway orch repository: ``write`` files, ``commit``, run ``orch``."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, rel: str, text: str, dedent: bool = True) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text) if dedent else text, encoding="utf-8")
        return p

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text(encoding="utf-8")

    def exists(self, rel: str) -> bool:
        return (self.path / rel).exists()

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        ).stdout

    def commit(self, msg: str = "commit") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", msg)
        return self.git("rev-parse", "HEAD").strip()

    def orch(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "runner", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )

    def orch_json(self, *args: str) -> Any:
        p = self.orch(*args, "--json")
        assert p.returncode in (0, 1), p.stderr
        return json.loads(p.stdout)

    def plan(self, *args: str) -> dict[tuple[str, str], tuple[str, list[str]]]:
        """{(workflow, step): (action, reasons)} from ``orch plan --json``."""
        data = self.orch_json("plan", *args)
        return {(s["workflow"], s["step"]): (s["action"], s["reasons"]) for s in data["steps"]}

    def apply(self, *args: str) -> dict[str, Any]:
        """``orch apply --json``: {"ok", "counts", "steps": {step: result}}."""
        p = self.orch("apply", "--json", *args)
        assert p.returncode in (0, 1), p.stderr
        data = json.loads(p.stdout)
        data["by_step"] = {s["step"]: s for s in data["steps"]}
        data["ran"] = sorted(s["step"] for s in data["steps"] if s["status"] not in ("up-to-date",))
        return data


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo")
    r.path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(r.path)], check=True)
    r.write(".orch/config.yaml", 'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\n')
    r.write(".orch/.gitignore", "*\n!config.yaml\n!.gitignore\n")
    return r


def workflow(name: str, steps: str, extra: str = "") -> str:
    """A Workflow manifest with ``steps`` (YAML list items, already indented by 4)."""
    return f"apiVersion: orch/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n{extra}  steps:\n{steps}"
