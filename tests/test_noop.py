"""The stat-only no-op witness must never answer "up to date" after a change."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runner.store.datacache import Codec
from tests.conftest import Repo, workflow

WF = workflow(
    "w",
    """\
    - name: a
      run: cat src/*.txt > out.txt
      inputs: ["src/*.txt"]
      outputs: [out.txt]
    - name: b
      run: echo {{ env.ORCH_TEST_GREETING | default('hi') }} > b.txt
      outputs: [b.txt]
""",
)


def age_everything(root: Path) -> None:
    """Push every mtime into the past, so the racy-git guard lets a witness be written."""
    old = time.time_ns() - 10 * 10**9
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            os.utime(os.path.join(dirpath, name), ns=(old, old))
        os.utime(dirpath, ns=(old, old))


@pytest.fixture
def settled(repo: Repo) -> Repo:
    repo.write("wf.yaml", WF)
    repo.write("src/one.txt", "1\n")
    assert repo.apply()["ok"]
    age_everything(repo.path)
    assert all(a == "up-to-date" for a, _ in repo.plan().values())
    witness = repo.path / ".orch" / "cache" / "noop.json"
    assert witness.exists()
    assert len(Codec(()).read(witness)) == 1
    assert all(a == "up-to-date" for a, _ in repo.plan().values())  # served by the witness
    return repo


def test_edited_input_is_seen(settled: Repo) -> None:
    settled.write("src/one.txt", "changed\n")
    assert settled.plan()[("w", "a")] == ("run", ["input changed: src/one.txt"])


def test_new_file_matching_a_glob_is_seen(settled: Repo) -> None:
    settled.write("src/two.txt", "2\n")
    assert settled.plan()[("w", "a")] == ("run", ["input changed: src/two.txt"])


def test_deleted_output_is_seen(settled: Repo) -> None:
    (settled.path / "b.txt").unlink()
    assert settled.plan()[("w", "b")] == ("run", ["output missing: b.txt"])


def test_environment_read_by_a_template_is_seen(settled: Repo) -> None:
    p = settled.orch("plan", "--json", env={"ORCH_TEST_GREETING": "hello"})
    assert '"definition changed (environ: ORCH_TEST_GREETING)"' in p.stdout


def test_state_written_by_another_run_is_seen(settled: Repo) -> None:
    settled.write("wf.yaml", WF.replace("cat src", "test -f nope && cat src"))
    assert not settled.apply()["ok"]
    settled.write("wf.yaml", WF)  # back to the recorded definition, but a failed run since
    assert settled.plan()[("w", "a")] == ("run", ["last run failed"])


def test_manifest_edit_is_seen(settled: Repo) -> None:
    settled.write("wf.yaml", WF.replace("> b.txt", ">  b.txt"))
    assert settled.plan()[("w", "b")] == ("run", ["definition changed (run)"])


def test_same_tick_edit_gets_no_witness(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    repo.write("src/one.txt", "1\n")
    assert repo.apply()["ok"]
    age_everything(repo.path)
    future = time.time_ns() + 3_600 * 10**9  # "modified just now" for as long as the test runs
    os.utime(repo.path / "src" / "one.txt", ns=(future, future))
    repo.plan()
    assert not (repo.path / ".orch" / "cache" / "noop.json").exists()


def _imported(repo: Repo, *args: str) -> set[str]:
    """The modules ``orch ARGS`` imports, read from ``python -X importtime``."""
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", "-C", str(repo.path), *args],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if "|" in line}


def test_plan_and_version_never_import_networkx(settled: Repo) -> None:
    """networkx (0.2 s to import) serves validate's cycle chains, graph --reduce and
    --since only: the no-op plan, a plan that has work, and --version never load it."""
    noop = _imported(settled, "plan")
    assert "runner.noop" in noop  # the check can see what is imported
    assert "networkx" not in noop
    assert "networkx" not in _imported(settled, "--version")
    settled.write("src/one.txt", "2\n")
    full = _imported(settled, "plan")
    assert "runner.reconcile.planner" in full  # this one planned
    assert "networkx" not in full
    assert "networkx" in _imported(settled, "graph", "w", "--reduce")


def test_a_noop_plan_loads_no_manifests_and_no_engine(settled: Repo) -> None:
    """The no-op fast path is the whole point of the witness: printing its one line must
    not load the manifests (or the engine) to learn which secrets to mask. The secret names
    past applies remembered are all there are while the witness holds."""
    assert settled.plan()  # writes the witness
    noop = _imported(settled, "plan")
    assert "runner.noop" in noop
    for heavy in ("runner.manifests.load", "runner.reconcile.flow", "yaml", "jinja2"):
        assert heavy not in noop, heavy
