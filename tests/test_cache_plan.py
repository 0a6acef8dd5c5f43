"""The plan downstream of a restore, through the real CLI (issue #14): a step whose
upstream steps the plan restores is decided on the files and values their cache entries
will bring back, so ``orch plan`` says what ``orch apply`` then does (restore, up to date
by early cutoff, or run), and "may run" only where it cannot know. Runs are counted by a
line each task appends to runs.log."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

# the suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache
pytestmark = pytest.mark.usefixtures("cache_on")


# a -> b -> c: b reads a's file, a glob over a's folder (an executable file in it, and a
# __pycache__ folder the hasher never walks) and a's output value; c reads b's file
CHAIN = """\
    - name: a
      inputs: [src.txt]
      outputs: [a.txt, adir/]
      run: |
        echo a >> runs.log
        mkdir -p adir/__pycache__
        tr a-z A-Z < src.txt > a.txt
        printf '#!/bin/sh\\necho hi\\n' > adir/tool.sh && chmod +x adir/tool.sh
        echo cached > adir/__pycache__/x.pyc
        echo lines=$(wc -l < src.txt) >> "$ORCH_OUTPUT"
    - name: b
      inputs: [a.txt, "adir/*.sh"]
      outputs: [b.txt]
      run: |
        echo b >> runs.log
        cat a.txt adir/tool.sh > b.txt
        echo "lines {{ steps.a.outputs.lines }}" >> b.txt
    - name: c
      inputs: [b.txt]
      outputs: [cdir/]
      run: |
        echo c >> runs.log
        mkdir -p cdir && cp b.txt cdir/copy.txt
"""


def _setup(repo: Repo, shared: Path, link: str = "copy") -> None:
    repo.write(
        ".orch/config.yaml",
        f"apiVersion: orch/v1\nkind: Config\ncache: {{dir: '{shared}', link: {link}}}\n",
    )
    repo.write("wf.yaml", workflow("w", CHAIN))
    repo.write("src.txt", "one\n")
    repo.write(".gitignore", "runs.log\na.txt\nadir/\nb.txt\ncdir/\nplan.json\n")
    repo.commit()


def _clone(repo: Repo, tmp_path: Path) -> Repo:
    dest = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(dest)], check=True)
    return Repo(dest)


def _runs(repo: Repo) -> list[str]:
    return repo.read("runs.log").split() if repo.exists("runs.log") else []


def _apply(repo: Repo, *args: str) -> dict[str, str]:
    data = repo.apply(*args)
    assert data["ok"], data
    return {s["step"]: s["status"] for s in data["steps"]}


def _restoring(reasons: list[str], *before: str) -> None:
    assert reasons[:-1] == list(before)
    assert reasons[-1].startswith("will restore: cached result from ")


def test_a_fresh_clone_plans_the_whole_chain_restored_and_apply_agrees(
    repo: Repo, tmp_path: Path
) -> None:
    _setup(repo, tmp_path / "shared")
    assert _apply(repo) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    other = _clone(repo, tmp_path)
    # b's glob matches this now, but a's restore replaces adir/ whole: b never reads it
    other.write("adir/stale.sh", "echo stale\n")
    plan = other.plan()
    assert {k[1]: v[0] for k, v in plan.items()} == {"a": "restore", "b": "restore", "c": "restore"}
    _restoring(plan[("w", "a")][1], "never ran")
    _restoring(plan[("w", "b")][1], "never ran", "upstream will restore: a")
    _restoring(plan[("w", "c")][1], "never ran", "upstream will restore: b")
    summary = other.orch_json("plan")["summary"]
    assert (summary["restore"], summary["may-run"], summary["run"]) == (3, 0, 0)
    assert "3 to restore from the cache" in other.orch("plan").stdout
    assert _apply(other) == {"a": "restored", "b": "restored", "c": "restored"}
    assert _runs(other) == []  # not one task ran in the clone
    assert not other.exists("adir/stale.sh")
    assert other.read("cdir/copy.txt") == "ONE\n#!/bin/sh\necho hi\nlines 1\n"
    assert {a for a, _ in other.plan().values()} == {"up-to-date"}


def test_a_saved_plan_with_predicted_restores_is_applied(repo: Repo, tmp_path: Path) -> None:
    _setup(repo, tmp_path / "shared")
    _apply(repo)
    other = _clone(repo, tmp_path)
    saved = other.path / "plan.json"
    assert other.orch("plan", "--out", str(saved)).returncode == 0
    steps = {s["step"]: s["action"] for s in json.loads(saved.read_text())["steps"]}
    assert steps == {"a": "restore", "b": "restore", "c": "restore"}
    assert _apply(other, str(saved)) == {"a": "restored", "b": "restored", "c": "restored"}
    assert _runs(other) == []


def test_explain_says_what_plan_says_of_a_step_below_a_restore(repo: Repo, tmp_path: Path) -> None:
    _setup(repo, tmp_path / "shared")
    _apply(repo)
    other = _clone(repo, tmp_path)
    data = other.orch_json("explain", "w", "b")
    assert data["action"] == "restore"
    _restoring(data["reasons"], "never ran", "upstream will restore: a")
    up = [p for p in data["parts"] if p["kind"] == "upstream"]
    assert [(p["name"], p["new"] != "(known after apply)") for p in up] == [("a", True)]
    words = other.orch("explain", "w", "b")
    assert words.returncode == 0, words.stderr
    assert words.stdout.startswith("w/b  will restore: never ran; upstream will restore: a; ")


def test_a_restore_that_brings_back_what_was_read_plans_early_cutoff(
    repo: Repo, tmp_path: Path
) -> None:
    _setup(repo, tmp_path / "shared")
    _apply(repo)
    repo.write("src.txt", "two\n")  # a, b, c run again: a.txt "TWO"
    assert _apply(repo) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    repo.write("src.txt", "one\n")
    (repo.path / "b.txt").write_text("edited by hand\n")  # b runs whatever a brings back
    plan = repo.plan()
    assert plan[("w", "a")][0] == "restore"
    # b's input changed twice: by hand now, and by a's restore; its result is cached too
    _restoring(
        plan[("w", "b")][1],
        "input changed: a.txt",
        "upstream changed: a",
        "output modified: b.txt",
        "upstream will restore: a",
    )
    _restoring(plan[("w", "c")][1], "input changed: b.txt", "upstream changed: b", "upstream will restore: b")  # fmt: skip
    assert _apply(repo) == {"a": "restored", "b": "restored", "c": "restored"}
    assert len(_runs(repo)) == 6


def test_a_restore_of_unchanged_outputs_keeps_downstream_up_to_date(
    repo: Repo, tmp_path: Path
) -> None:
    _setup(repo, tmp_path / "shared")
    _apply(repo)
    repo.write("src.txt", "ONE\n")  # a's input changes, its outputs do not (tr a-z A-Z)
    assert _apply(repo) == {"a": "succeeded", "b": "up-to-date", "c": "up-to-date"}
    repo.write("src.txt", "one\n")
    plan = repo.plan()
    assert plan[("w", "a")][0] == "restore"
    # before issue #14: b and c "may run"; a brings back what b last read
    assert plan[("w", "b")] == ("up-to-date", [])
    assert plan[("w", "c")] == ("up-to-date", [])
    assert _apply(repo) == {"a": "restored", "b": "up-to-date", "c": "up-to-date"}
    assert _runs(repo) == ["a", "b", "c", "a"]


def test_an_executable_restored_by_hard_link_plans_its_readers_restored(
    repo: Repo, tmp_path: Path
) -> None:
    # by hard link an executable file is linked to its blob's 0555 copy (or copied with
    # its own mode): it comes back executable, so b reads what the stored run read
    _setup(repo, tmp_path / "shared", link="hardlink")
    _apply(repo)
    other = _clone(repo, tmp_path)
    plan = other.plan()
    assert {k[1]: v[0] for k, v in plan.items()} == {"a": "restore", "b": "restore", "c": "restore"}
    _restoring(plan[("w", "b")][1], "never ran", "upstream will restore: a")
    assert _apply(other) == {"a": "restored", "b": "restored", "c": "restored"}
    assert _runs(other) == []
    assert os.access(other.path / "adir/tool.sh", os.X_OK)


# a writes a file whose name is a glob that b reads: the path, once there, wins over the
# glob (Hasher.expand), and the plan cannot tell which b will read
SPELLED = """\
    - name: a
      outputs: ['x\\[1].txt']
      run: |
        echo a >> runs.log
        echo one > 'x[1].txt'
    - name: b
      needs: [a]
      inputs: ['x[1].txt']
      outputs: [b.txt]
      run: |
        echo b >> runs.log
        cat 'x[1].txt' > b.txt
    - name: c
      inputs: [b.txt]
      outputs: [c.txt]
      run: |
        echo c >> runs.log
        cp b.txt c.txt
"""


def test_what_the_plan_cannot_know_stays_may_run(repo: Repo, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    repo.write(".orch/config.yaml", f"apiVersion: orch/v1\nkind: Config\ncache: {{dir: '{shared}'}}\n")  # fmt: skip
    repo.write("wf.yaml", workflow("w", SPELLED))
    repo.write(".gitignore", "runs.log\nx[[]1].txt\nb.txt\nc.txt\n")
    repo.commit()
    assert _apply(repo) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    other = _clone(repo, tmp_path)
    plan = other.plan()
    assert plan[("w", "a")][0] == "restore"
    assert plan[("w", "b")] == ("may-run", ["never ran", "upstream will restore: a"])
    assert plan[("w", "c")] == ("may-run", ["never ran", "upstream may restore: b"])
    # what may run did what it may: the restored file is the path b read, so b and c are
    # restored too
    assert _apply(other) == {"a": "restored", "b": "restored", "c": "restored"}
    assert _runs(other) == [] and other.read("c.txt") == "one\n"


def test_a_saved_plan_whose_predicted_restore_left_the_cache_is_refused(
    repo: Repo, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    _setup(repo, shared)
    _apply(repo)
    other = _clone(repo, tmp_path)
    saved = other.path / "plan.json"
    assert other.orch("plan", "--out", str(saved)).returncode == 0
    for entry in (shared / "entries").rglob("*.json"):  # b's entry only goes
        if json.loads(entry.read_text())["meta"]["step"] == "b":
            entry.unlink()
    p = other.orch("apply", str(saved))
    assert p.returncode == 1
    assert "the saved plan is stale (2 steps changed" in p.stderr
    assert "w/b: the plan said will restore, now will run" in p.stderr
    assert _runs(other) == [] and not other.exists("a.txt")
