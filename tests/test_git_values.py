"""``{{ git.commit }}`` and friends: the repository's state, read only by the steps that
name it, asked of git only when some step does, and fingerprinted for those steps alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

STAMP = workflow(
    "w",
    """\
    - name: stamp
      run: echo "{{ git.commit }}" > stamp.txt
      outputs: [stamp.txt]
    - name: plain
      run: echo plain > plain.txt
      outputs: [plain.txt]
""",
)
ALL = workflow(
    "all",
    """\
    - name: all
      run: echo "{{ git.commit }}|{{ git.short }}|{{ git.branch }}|{{ git.describe }}|{{ git.dirty }}" > all.txt
      outputs: [all.txt]
""",
)


def _runs(repo: Repo, *args: str) -> list[str]:
    return sorted(s for (_w, s), (a, _r) in repo.plan(*args).items() if a != "up-to-date")


def test_a_new_commit_re_runs_exactly_the_step_that_reads_git_commit(repo: Repo) -> None:
    repo.write(".gitignore", "*.txt\n")
    repo.write("wf.yaml", STAMP)
    first = repo.commit("one")
    assert repo.apply()["ran"] == ["plain", "stamp"]
    assert repo.read("stamp.txt") == first + "\n"
    assert _runs(repo) == []  # up to date, twice: the second may use the no-op witness
    assert _runs(repo) == []
    repo.write("notes.md", "a change\n")
    second = repo.commit("two")
    plan = repo.plan()
    assert plan[("w", "stamp")] == ("run", ["definition changed (git)"])
    assert plan[("w", "plain")][0] == "up-to-date"
    assert repo.apply()["ran"] == ["stamp"]
    assert repo.read("stamp.txt") == second + "\n"


def test_the_values_on_a_branch_a_tag_a_detached_head_and_a_dirty_tree(repo: Repo) -> None:
    repo.write(".gitignore", "*.txt\n")
    repo.write("wf.yaml", ALL)
    head = repo.commit("one")
    short = repo.git("rev-parse", "--short", "HEAD").strip()
    repo.apply()
    # no tag reaches HEAD: describe falls back to the abbreviated hash
    assert repo.read("all.txt") == f"{head}|{short}|main|{short}|false\n"
    repo.git("tag", "v1.0")
    repo.git("checkout", "-q", "--detach")
    repo.write("wf.yaml", ALL + "# tracked, now modified\n")
    repo.apply()
    assert repo.read("all.txt") == f"{head}|{short}||v1.0|true\n"


def test_outside_a_git_repository_the_values_are_empty(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "plain")
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    repo.write("wf.yaml", ALL)
    done = repo.apply()
    assert done["ok"], done
    assert repo.read("all.txt") == "||||false\n"


def _git_spy(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A ``git`` first on PATH that logs its arguments, then runs the real one."""
    import shutil

    real = shutil.which("git")
    assert real
    bin_dir = tmp_path / "spybin"
    bin_dir.mkdir()
    log = tmp_path / "git.log"
    spy = bin_dir / "git"
    spy.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    spy.chmod(spy.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, log


def test_a_plan_that_reads_no_git_value_asks_git_nothing_more(repo: Repo, tmp_path: Path) -> None:
    """Only git's file listing (which every load makes); the values are asked only where
    read, and only the keys read."""
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "echo s > s.txt"}\n'))
    repo.write("other.yaml", workflow("o", '    - {name: d, run: "echo {{ git.describe }}"}\n'))
    repo.commit()
    env, log = _git_spy(tmp_path)
    p = repo.orch("plan", "w", env=env)
    assert p.returncode == 0, p.stderr
    asked = log.read_text().splitlines() if log.exists() else []
    assert asked and all(" ls-files " in f" {a} " for a in asked), asked
    log.unlink()
    p = repo.orch("plan", "o", env=env)
    assert p.returncode == 0, p.stderr
    asked = log.read_text()
    assert "describe --tags --always" in asked
    assert "symbolic-ref" not in asked and "status" not in asked


@pytest.mark.parametrize(
    ("field", "says"),
    [
        ('run: "echo {{ git.comit }}"', "git.comit is not defined (did you mean 'commit'?)"),
        ('run: "echo x"\n      outputs: ["{{ git.short }}.txt"]', "paths may use params, not git"),
    ],
)
def test_a_bad_git_reference_is_one_positioned_error(repo: Repo, field: str, says: str) -> None:
    repo.write("wf.yaml", workflow("w", f"    - name: s\n      {field}\n"))
    p = repo.orch("validate")
    assert p.returncode == 1
    errors = [line for line in p.stderr.splitlines() if says in line]
    assert len(errors) == 1 and errors[0].startswith("wf.yaml:"), p.stderr
    assert repo.orch("apply").returncode == 1
    assert not repo.exists(".orch/state.db")


def test_when_and_env_read_git_values_too(repo: Repo) -> None:
    repo.write(".gitignore", "*.txt\n")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: release
      when: "{{ git.branch == 'main' }}"
      env: {DESCRIBE: "{{ git.describe }}"}
      run: echo "$DESCRIBE" > release.txt
      outputs: [release.txt]
""",
        ),
    )
    repo.commit()
    repo.git("tag", "v2")
    assert repo.apply()["by_step"]["release"]["status"] == "succeeded"
    assert repo.read("release.txt") == "v2\n"
    repo.git("checkout", "-q", "-b", "feature")
    plan = repo.plan()
    assert plan[("w", "release")] == ("run", ["definition changed (git)"])
    assert repo.apply()["by_step"]["release"]["status"] == "skipped"
