"""``orch explain WORKFLOW STEP``: every part of a step's fingerprint, recorded → now,
through the real CLI; secrets and environment values never shown."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.conftest import Repo, workflow

SECRET = "s3cr3t-value-42"
ENV = {"TOKEN": SECRET, "FLAVOUR": "plain-flavour"}

STEPS = (
    "    - name: gen\n"
    "      run: 'cat src.txt > gen.txt'\n"
    "      inputs: [src.txt]\n"
    "      outputs: [gen.txt]\n"
    "    - name: build\n"
    "      run: 'echo {{ params.version }} {{ env.TOKEN }} {{ env.FLAVOUR }} > out.txt;"
    " cat gen.txt >> out.txt'\n"
    "      inputs: [gen.txt, notes.txt]\n"
    "      outputs: [out.txt]\n"
    "      secrets: [TOKEN]\n"
)


def _setup(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS, "  params: {version: 0.1.0}\n"))
    repo.write("src.txt", "a\n")
    repo.write("notes.txt", "n\n")
    p = repo.orch("apply", env=ENV)
    assert p.returncode == 0, p.stderr


def _explain(repo: Repo, step: str = "build", env: dict[str, str] | None = None) -> Any:
    p = repo.orch("explain", "w", step, "--json", env={**ENV, **(env or {})})
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout
    parts = json.loads(p.stdout)["parts"]
    return p.stdout, {(x["kind"], x["name"]): x for x in parts}


def _changed(parts: dict[tuple[str, str], Any]) -> set[tuple[str, str]]:
    return {k for k, v in parts.items() if v["changed"]}


def test_nothing_changed_every_part_listed_none_changed(repo: Repo) -> None:
    _setup(repo)
    _, parts = _explain(repo)
    assert _changed(parts) == set()
    assert {("param", "version"), ("env", "TOKEN"), ("env", "FLAVOUR")} <= set(parts)
    assert {("input", "gen.txt"), ("input", "notes.txt"), ("upstream", "gen")} <= set(parts)
    assert (
        parts[("command", "run")]["new"]
        == "echo 0.1.0 *** plain-flavour > out.txt; cat gen.txt >> out.txt"
    )


def test_param_change_old_to_new_in_explain_and_plan(repo: Repo) -> None:
    _setup(repo)
    repo.write("wf.yaml", repo.read("wf.yaml").replace("0.1.0", "0.2.0"), dedent=False)
    _, parts = _explain(repo)
    assert _changed(parts) == {("param", "version"), ("command", "run")}
    assert (parts[("param", "version")]["old"], parts[("param", "version")]["new"]) == (
        "0.1.0",
        "0.2.0",
    )
    assert parts[("command", "run")]["old"].startswith("echo 0.1.0 ")
    assert parts[("command", "run")]["new"].startswith("echo 0.2.0 ")
    p = repo.orch("plan", "--json", env=ENV)
    build = next(s for s in json.loads(p.stdout)["steps"] if s["step"] == "build")
    assert build["reasons"] == ["definition changed (param version: 0.1.0 → 0.2.0)"]


def test_command_change(repo: Repo) -> None:
    _setup(repo)
    repo.write("wf.yaml", repo.read("wf.yaml").replace("> out.txt;", ">out.txt && true;"))
    _, parts = _explain(repo)
    assert _changed(parts) == {("command", "run")}
    assert "&& true" in parts[("command", "run")]["new"]
    assert "&& true" not in parts[("command", "run")]["old"]


def test_env_change_shows_no_value_and_secret_is_masked(repo: Repo) -> None:
    _setup(repo)
    out, parts = _explain(repo, env={"FLAVOUR": "other-flavour", "TOKEN": "n3w-s3cr3t-99"})
    assert _changed(parts) == {("env", "FLAVOUR"), ("env", "TOKEN"), ("command", "run")}
    assert "n3w-s3cr3t-99" not in out and SECRET not in out
    # environment values are never shown, secret or not: only that they moved
    assert "plain-flavour" not in parts[("env", "FLAVOUR")]["old"]
    assert "other-flavour" not in parts[("env", "FLAVOUR")]["new"]
    assert "***" in parts[("command", "run")]["new"]
    text = repo.orch("explain", "w", "build", env={**ENV, "TOKEN": "n3w-s3cr3t-99"})
    assert text.returncode == 0, text.stderr
    assert "n3w-s3cr3t-99" not in text.stdout and SECRET not in text.stdout
    assert "~ env TOKEN:" in text.stdout


def test_input_file_change(repo: Repo) -> None:
    _setup(repo)
    repo.write("notes.txt", "edited\n")
    _, parts = _explain(repo)
    assert _changed(parts) == {("input", "notes.txt")}
    p = parts[("input", "notes.txt")]
    assert p["old"] != p["new"] and p["new"] != "(none)"


def test_upstream_output_change(repo: Repo) -> None:
    _setup(repo)
    repo.write("src.txt", "b\n")
    _, before = _explain(repo)
    assert before[("upstream", "gen")]["new"] == "(known after apply)"  # gen runs first
    _, gen = _explain(repo, "gen")
    assert _changed(gen) == {("input", "src.txt")}
    # gen runs again; build cannot start (its secret is unset) and keeps its old record
    env = {k: v for k, v in os.environ.items() if k != "TOKEN"}
    p = repo.orch("apply", env={**env, "FLAVOUR": "plain-flavour"})
    assert p.returncode == 1, p.stderr
    _, after = _explain(repo)
    up = after[("upstream", "gen")]
    assert up["changed"] and up["old"] != up["new"] and up["new"] != "(known after apply)"
    assert ("input", "gen.txt") in _changed(after)


def test_unknown_step_is_one_line_and_writes_nothing(repo: Repo) -> None:
    _setup(repo)
    p = repo.orch("explain", "w", "buidl", env=ENV)
    assert p.returncode != 0
    assert "no step 'buidl'" in p.stderr and "build" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_recorded_command_keeps_no_secret(repo: Repo) -> None:
    """The command a record keeps for explain is masked before it is written."""
    _setup(repo)
    for f in (repo.path / ".orch").glob("state.db*"):
        assert SECRET.encode() not in f.read_bytes(), f


def test_a_param_holding_a_secret_is_masked_in_state_plan_and_explain(repo: Repo) -> None:
    _setup(repo)
    p = repo.orch("apply", "--param", f"version={SECRET}", env=ENV)
    assert p.returncode == 0, p.stderr
    for f in (repo.path / ".orch").glob("state.db*"):
        assert SECRET.encode() not in f.read_bytes(), f
    plan = repo.orch("plan", "--json", env=ENV)  # back to 0.1.0: the reason shows values
    assert plan.returncode == 0 and SECRET not in plan.stdout
    build = next(s for s in json.loads(plan.stdout)["steps"] if s["step"] == "build")
    assert build["reasons"] == ["definition changed (param version: *** → 0.1.0)"]
    _, parts = _explain(repo)
    assert (parts[("param", "version")]["old"], parts[("param", "version")]["new"]) == (
        "***",
        "0.1.0",
    )


def test_a_secret_given_as_a_param_now_is_masked_in_plan_and_explain(repo: Repo) -> None:
    _setup(repo)
    plan = repo.orch("plan", "--json", "--param", f"version={SECRET}", env=ENV)
    assert plan.returncode == 0 and SECRET not in plan.stdout
    build = next(s for s in json.loads(plan.stdout)["steps"] if s["step"] == "build")
    assert build["reasons"] == ["definition changed (param version: 0.1.0 → ***)"]
    p = repo.orch("explain", "w", "build", "--param", f"version={SECRET}", env=ENV)
    assert p.returncode == 0 and SECRET not in p.stdout
    assert "~ param version: 0.1.0 → ***" in p.stdout


def test_a_step_the_plan_skips_is_explained_in_words(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow("w", "    - name: off\n      run: 'echo hi'\n      when: false\n"),
    )
    p = repo.orch("explain", "w", "off")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "w/off  skip: when: false"
