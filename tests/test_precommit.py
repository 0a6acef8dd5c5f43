"""The hooks in .pre-commit-hooks.yaml, run by the real ``pre-commit`` tool.

The fast tests take each hook exactly as the file defines it (id, entry, types, file
passing, always_run) and run it as a ``repo: local`` hook with ``language: system``, so
pre-commit has nothing to install. The slow test installs the hooks the way users get them,
``language: python`` from a hooks repository, offline: pip builds orch from the checkout with
the setuptools wheel virtualenv bundles, and the dependencies come from this interpreter
(``PIP_NO_DEPS`` + ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Repo, workflow

ROOT = Path(__file__).resolve().parents[1]
HOOKS_FILE = ROOT / ".pre-commit-hooks.yaml"

CHECKED = workflow(
    "generated",
    """\
    - name: gen
      run: cat src/in.txt > out.txt
      inputs: [src/in.txt]
      outputs: [out.txt]
""",
    "  check: true\n",
)
BROKEN = workflow("other", "    - name: s\n      run: echo\n      needz: [x]\n")


def hooks() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8"))
    return {h["id"]: h for h in data}


def pre_commit(repo: Repo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def hook_lines(out: str) -> dict[str, str]:
    """{hook name: Passed|Failed|Skipped} from pre-commit's report."""
    res = {}
    for line in out.splitlines():
        for verdict in ("Passed", "Failed", "Skipped"):
            if line.endswith(verdict) and "..." in line:
                res[line.split("...")[0].split("(")[0].strip(".")] = verdict
    return res


def local_config(repo: Repo) -> None:
    """The real hook definitions as local system hooks running this interpreter's orch."""
    local = []
    for h in hooks().values():
        h = dict(h)
        assert h.pop("language") == "python"
        h.pop("minimum_pre_commit_version", None)
        h["language"] = "system"
        h["entry"] = h["entry"].replace("orch", f"{sys.executable} -m runner", 1)
        local.append(h)
    repo.write(
        ".pre-commit-config.yaml",
        yaml.safe_dump({"repos": [{"repo": "local", "hooks": local}]}),
        dedent=False,
    )


def checked_repo(repo: Repo) -> None:
    repo.write("wf.yaml", CHECKED)
    repo.write("src/in.txt", "v1\n")
    assert repo.orch("apply", "-q").returncode == 0
    repo.commit("generated output up to date")


def test_hook_definitions() -> None:
    h = hooks()
    assert set(h) == {"orch-validate", "orch-plan"}
    v, p = h["orch-validate"], h["orch-plan"]
    assert (v["entry"], v["language"], v["types"]) == ("orch validate", "python", ["yaml"])
    assert v["pass_filenames"] is False  # validation is of the whole repository
    assert (p["entry"], p["language"]) == ("orch plan --check", "python")
    assert (p["pass_filenames"], p["always_run"]) == (False, True)


def test_hooks_pass_fail_and_skip_as_declared(repo: Repo) -> None:
    checked_repo(repo)
    local_config(repo)
    repo.commit("pre-commit config")

    p = pre_commit(repo, "run", "--all-files")
    assert p.returncode == 0, p.stdout + p.stderr
    assert hook_lines(p.stdout) == {"orch validate": "Passed", "orch plan --check": "Passed"}

    repo.write("other.yaml", BROKEN)
    repo.git("add", "other.yaml")
    p = pre_commit(repo, "run")
    assert p.returncode == 1
    assert hook_lines(p.stdout)["orch validate"] == "Failed"
    assert "other.yaml:8:7: spec.steps[0].needz: unknown field 'needz'" in p.stdout
    repo.git("rm", "-q", "-f", "other.yaml")

    # a non-YAML change: validate has nothing to look at, the check still runs and fails
    repo.write("src/in.txt", "v2\n")
    repo.git("add", "src/in.txt")
    p = pre_commit(repo, "run")
    assert p.returncode == 1
    assert hook_lines(p.stdout) == {"orch validate": "Skipped", "orch plan --check": "Failed"}
    assert "input changed: src/in.txt" in p.stdout
    assert "workflows marked spec.check are out of date" in p.stdout


def test_installed_hook_blocks_the_commit_until_applied(repo: Repo) -> None:
    """Through git itself: the hook runs with git's GIT_INDEX_FILE and friends set."""
    checked_repo(repo)
    local_config(repo)
    repo.commit("pre-commit config")
    assert pre_commit(repo, "install").returncode == 0

    repo.write("src/in.txt", "v2\n")
    repo.git("add", "src/in.txt")
    p = subprocess.run(
        ["git", "commit", "-q", "-m", "stale"], cwd=repo.path, capture_output=True, text=True
    )
    assert p.returncode == 1
    assert "workflows marked spec.check are out of date" in p.stdout + p.stderr
    assert repo.git("log", "--format=%s", "-1").strip() == "pre-commit config"

    assert repo.orch("apply", "-q").returncode == 0
    assert repo.read("out.txt") == "v2\n"
    repo.git("add", "out.txt")
    p = subprocess.run(
        ["git", "commit", "-q", "-m", "regenerated"], cwd=repo.path, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert repo.git("log", "--format=%s", "-1").strip() == "regenerated"


def _offline_pip_env() -> dict[str, str]:
    from virtualenv.seed.wheels import embed

    wheels = Path(embed.__file__).parent
    if not any(
        int(w.name.split("-")[1].split(".")[0]) >= 77 for w in wheels.glob("setuptools-*.whl")
    ):
        pytest.skip("no setuptools>=77 wheel bundled with virtualenv: cannot build offline")
    paths = sysconfig.get_paths()
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_NO_DEPS": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
        "PYTHONPATH": os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]])),
    }


@pytest.mark.slow
def test_hooks_repository_installs_and_runs_offline(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As users configure it: ``repo: <orch>``, ``rev: <sha>``; pre-commit clones the hooks
    repository and pip-installs orch (``language: python``) into its own environment."""
    for k, v in _offline_pip_env().items():
        monkeypatch.setenv(k, v)
    hooks_repo = Repo(tmp_path / "orch-hooks")
    hooks_repo.path.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("runner", "schemas"):
        shutil.copytree(ROOT / name, hooks_repo.path / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, hooks_repo.path / name)
    hooks_repo.git("init", "-q")
    sha = hooks_repo.commit("orch")

    checked_repo(repo)
    repo.write(
        ".pre-commit-config.yaml",
        f"repos:\n  - repo: {hooks_repo.path}\n    rev: {sha}\n"
        "    hooks: [{id: orch-validate}, {id: orch-plan}]\n",
    )
    repo.commit("pre-commit config")

    p = pre_commit(repo, "run", "--all-files")
    assert p.returncode == 0, p.stdout + p.stderr
    assert hook_lines(p.stdout) == {"orch validate": "Passed", "orch plan --check": "Passed"}
    store = Path(os.environ["XDG_CACHE_HOME"]) / "pre-commit"
    assert list(store.glob("repo*/py_env-*/bin/orch")), "orch was not installed by pre-commit"

    repo.write("other.yaml", BROKEN)
    repo.git("add", "other.yaml")
    p = pre_commit(repo, "run")
    assert p.returncode == 1
    assert "other.yaml:8:7: spec.steps[0].needz: unknown field 'needz'" in p.stdout
