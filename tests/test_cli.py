"""The command line's own rules: options shared by several verbs behave the same on each."""

from __future__ import annotations

import pytest

from tests.conftest import Repo, workflow

VERBS = [["apply"], ["run"], ["watch"], ["workflow", "run", "w"]]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v))
@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_bad_jobs_is_a_usage_error_on_every_verb(repo: Repo, verb: list[str], jobs: str) -> None:
    """-j below 1 (or not a number) is refused by the parser: exit 2, one line naming -j,
    nothing run and no state written."""
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "echo ran >> ran.log"}\n'))
    p = repo.orch(*verb, "-j", jobs, timeout=30)
    assert p.returncode == 2, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("orch: error:")]
    assert len(errors) == 1 and "-j/--jobs" in errors[0], p.stderr
    assert "internal error" not in p.stderr
    assert not repo.exists("ran.log")
    assert not repo.exists(".orch/state.db")


@pytest.mark.parametrize("verb", [v for v in VERBS if v != ["watch"]], ids=lambda v: " ".join(v))
def test_good_jobs_is_accepted(repo: Repo, verb: list[str]) -> None:
    """(watch runs until stopped, so it is left out here.)"""
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "echo ran >> ran.log"}\n'))
    p = repo.orch(*verb, "-j", "2", "-q", timeout=60)
    assert p.returncode == 0, p.stderr
    assert repo.read("ran.log") == "ran\n"
