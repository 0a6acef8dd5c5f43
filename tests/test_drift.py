"""``drift:``: what a plan does with an output edited by hand since orch recorded it.

``heal`` (the default) runs the step again; ``warn`` keeps it up to date and says so
(``--force`` runs it); ``ignore`` keeps it up to date silently. A missing output is made
again whatever the setting. Everything through the real CLI, counting runs in a log.
"""

from __future__ import annotations

import pytest

from tests.conftest import Repo, workflow

STEP = """\
    - name: app
      run: echo "$(cat src.txt)" > build/app && echo run >> runs.log
      inputs: [src.txt]
      outputs: [build/app]
{extra}"""


def _setup(repo: Repo, *, step: str = "", spec: str = "") -> None:
    repo.write("src.txt", "v1\n")
    repo.write("build/.keep", "")
    repo.write("w.yaml", workflow("w", STEP.format(extra=step), spec))
    repo.write(".gitignore", "runs.log\nbuild/app\n")
    repo.commit()
    first = repo.apply()
    assert first["ran"] == ["app"], first


def _runs(repo: Repo) -> int:
    return repo.read("runs.log").count("run")


def test_default_heal_runs_an_edited_output_again(repo: Repo) -> None:
    _setup(repo)
    repo.write("build/app", "edited by hand\n")
    assert repo.plan()[("w", "app")] == ("run", ["output modified: build/app"])
    assert repo.apply()["ran"] == ["app"]
    assert repo.read("build/app") == "v1\n"
    assert _runs(repo) == 2


def test_heal_written_out_is_the_default(repo: Repo) -> None:
    _setup(repo, spec="  drift: heal\n")
    repo.write("build/app", "edited by hand\n")
    assert repo.plan()[("w", "app")] == ("run", ["output modified: build/app"])


def test_warn_reports_the_edit_and_runs_nothing(repo: Repo) -> None:
    _setup(repo, spec="  drift: warn\n")
    repo.write("build/app", "edited by hand\n")
    why = "output edited by hand: build/app (drift: warn)"
    for _ in range(2):  # said again on every plan: no no-op fast path hides it
        p = repo.orch("plan")
        assert p.returncode == 0, p.stderr
        assert f"app  up to date: {why}" in p.stdout
        assert f"w/app: {why}: not run; 'orch apply --force w/app' makes it again" in p.stderr
        assert repo.plan()[("w", "app")] == ("up-to-date", [why])
    done = repo.apply()
    assert done["ran"] == [] and done["ok"], done
    assert done["by_step"]["app"]["reasons"] == [why]
    assert repo.read("build/app") == "edited by hand\n"
    assert _runs(repo) == 1
    p = repo.orch("apply")  # the human view says it too
    assert p.returncode == 0, p.stderr
    assert why in p.stdout + p.stderr
    assert _runs(repo) == 1


def test_warn_runs_when_forced(repo: Repo) -> None:
    _setup(repo, spec="  drift: warn\n")
    repo.write("build/app", "edited by hand\n")
    assert repo.apply("--force", "w/app")["ran"] == ["app"]
    assert repo.read("build/app") == "v1\n"
    assert repo.plan()[("w", "app")] == ("up-to-date", [])


def test_warn_still_runs_for_another_reason_and_says_the_edit_goes(repo: Repo) -> None:
    _setup(repo, spec="  drift: warn\n")
    repo.write("build/app", "edited by hand\n")
    repo.write("src.txt", "v2\n")
    action, reasons = repo.plan()[("w", "app")]
    assert action == "run"
    assert reasons == [
        "input changed: src.txt",
        "output edited by hand: build/app (drift: warn)",
    ]
    assert repo.apply()["ran"] == ["app"]
    assert repo.read("build/app") == "v2\n"


@pytest.mark.parametrize("setting", ["warn", "ignore"])
def test_a_missing_output_is_made_again_whatever_the_setting(repo: Repo, setting: str) -> None:
    _setup(repo, step=f"      drift: {setting}\n")
    (repo.path / "build/app").unlink()
    assert repo.plan()[("w", "app")] == ("run", ["output missing: build/app"])
    assert repo.apply()["ran"] == ["app"]
    assert _runs(repo) == 2


def test_ignore_counts_an_edited_output_as_up_to_date(repo: Repo) -> None:
    _setup(repo, step="      drift: ignore\n")
    repo.write("build/app", "edited by hand\n")
    assert repo.plan()[("w", "app")] == ("up-to-date", [])
    p = repo.orch("plan")
    assert "warning" not in p.stderr
    assert repo.apply()["ran"] == []
    assert repo.read("build/app") == "edited by hand\n"
    assert _runs(repo) == 1


def test_a_steps_own_setting_wins_over_the_workflows(repo: Repo) -> None:
    _setup(repo, spec="  drift: ignore\n", step="      drift: heal\n")
    repo.write("build/app", "edited by hand\n")
    assert repo.plan()[("w", "app")] == ("run", ["output modified: build/app"])


def test_changing_the_setting_does_not_rerun_the_step(repo: Repo) -> None:
    # a policy about hand edits is not part of what the step computes: no fingerprint
    _setup(repo)
    repo.write("w.yaml", workflow("w", STEP.format(extra=""), "  drift: warn\n"))
    assert repo.plan()[("w", "app")] == ("up-to-date", [])


def test_a_bad_value_is_a_positioned_validate_error(repo: Repo) -> None:
    repo.write("w.yaml", workflow("w", STEP.format(extra="      drift: fix\n")))
    repo.commit()
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("w.yaml:10:14: spec.steps[0].drift:"), lines
    assert "heal" in lines[0] and "warn" in lines[0] and "ignore" in lines[0]
    p = repo.orch("plan")
    assert p.returncode == 1 and "spec.steps[0].drift" in p.stderr
    assert not repo.exists("runs.log")


def test_a_bad_workflow_value_is_positioned_too(repo: Repo) -> None:
    repo.write("w.yaml", workflow("w", STEP.format(extra=""), "  drift: true\n"))
    p = repo.orch("validate")
    assert p.returncode == 1
    assert p.stderr.startswith("w.yaml:5:10: spec.drift:"), p.stderr


def test_heal_restores_from_the_cache_when_it_holds_the_result(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)  # the suite runs with it off
    _setup(repo)
    repo.write("build/app", "edited by hand\n")
    action, reasons = repo.plan()[("w", "app")]
    assert action == "restore"
    assert reasons[0] == "output modified: build/app"
    assert reasons[1].startswith("will restore: cached result from ")
    done = repo.apply()
    assert done["by_step"]["app"]["status"] == "restored"
    assert repo.read("build/app") == "v1\n"
    assert _runs(repo) == 1  # put back, not run
    assert repo.plan()[("w", "app")] == ("up-to-date", [])


def test_warn_is_not_restored_unless_forced_and_forced_runs(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)
    _setup(repo, spec="  drift: warn\n")
    repo.write("build/app", "edited by hand\n")
    assert repo.plan()[("w", "app")][0] == "up-to-date"
    assert repo.apply()["ran"] == []
    assert repo.read("build/app") == "edited by hand\n"
    assert repo.apply("--force", "w/app")["by_step"]["app"]["status"] == "succeeded"
    assert repo.read("build/app") == "v1\n" and _runs(repo) == 2
