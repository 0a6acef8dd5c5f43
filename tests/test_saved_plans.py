"""Saved plans (``orch plan --out FILE``, ``orch apply FILE``) through the real CLI:
applied exactly when nothing moved, refused before anything runs when something did."""

from __future__ import annotations

import json
import shutil

from tests.conftest import Repo, workflow

STEPS = (
    "    - name: gen\n"
    "      run: 'cat src.txt > gen.txt; echo x >> runs.log'\n"
    "      inputs: [src.txt]\n"
    "      outputs: [gen.txt]\n"
    "    - name: build\n"
    "      run: 'cat gen.txt > out.txt; echo y >> runs.log'\n"
    "      inputs: [gen.txt]\n"
    "      outputs: [out.txt]\n"
    "    - name: other\n"
    "      run: 'cat other.txt > o.txt; echo z >> runs.log'\n"
    "      inputs: [other.txt]\n"
    "      outputs: [o.txt]\n"
)


def _setup(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    repo.write("src.txt", "a\n")
    repo.write("other.txt", "o\n")
    repo.commit()
    assert repo.apply()["ok"]
    repo.write("runs.log", "")


def _runs(repo: Repo) -> int:
    return len(repo.read("runs.log").splitlines())


def _state(repo: Repo) -> object:
    """The recorded steps and runs (the file-hash cache may be refreshed by any plan)."""
    return repo.orch_json("status"), repo.orch_json("history")


def test_saved_plan_applied_when_nothing_changed(repo: Repo) -> None:
    _setup(repo)
    repo.write("src.txt", "b\n")
    p = repo.orch("plan", "--out", "plan.json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(repo.read("plan.json"))
    assert doc["format"] == 1 and doc["root"] == str(repo.path)
    assert doc["commit"] == repo.git("rev-parse", "HEAD").strip()
    assert {s["step"]: s["action"] for s in doc["steps"]} == {
        "gen": "run",
        "build": "may-run",
        "other": "up-to-date",
    }
    assert all(len(s["fingerprint"]) == 32 for s in doc["steps"])
    done = repo.apply("plan.json")
    assert done["ok"] and done["ran"] == ["build", "gen"]
    assert _runs(repo) == 2  # gen and build ran; other did not
    assert repo.read("out.txt") == "b\n"


def test_saved_plan_with_plan_option_and_dash_c(repo: Repo) -> None:
    _setup(repo)
    repo.write("other.txt", "o2\n")
    assert repo.orch("plan", "--out", "saved.json").returncode == 0
    done = repo.apply("--plan", "saved.json")
    assert done["ok"] and done["ran"] == ["other"] and _runs(repo) == 1


def test_saved_plan_refused_after_an_input_edit(repo: Repo) -> None:
    _setup(repo)
    repo.write("src.txt", "b\n")
    assert repo.orch("plan", "--out", "plan.json").returncode == 0
    repo.write("src.txt", "c\n")
    before = _state(repo)
    p = repo.orch("apply", "plan.json")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert "plan.json" in lines[0] and "stale" in lines[0]
    assert lines[1:] == [
        "orch: w/gen: changed since the plan: input changed: src.txt",
    ]
    assert _runs(repo) == 0
    assert _state(repo) == before  # no state written


def test_saved_plan_refused_after_definition_and_state_changes(repo: Repo) -> None:
    _setup(repo)
    repo.write("src.txt", "b\n")
    repo.write("other.txt", "o2\n")
    assert repo.orch("plan", "--out", "plan.json").returncode == 0
    assert repo.apply()["ok"]  # someone applied it meanwhile
    repo.write("runs.log", "")
    repo.write("wf.yaml", repo.read("wf.yaml").replace("> o.txt;", ">o.txt ;"))
    p = repo.orch("apply", "plan.json")
    assert p.returncode == 1 and _runs(repo) == 0
    lines = p.stderr.strip().splitlines()[1:]
    assert lines == [
        "orch: w/gen: the plan said will run, now up to date (its recorded state changed since the plan)",
        "orch: w/build: changed since the plan: input changed: gen.txt; upstream changed: gen",
        "orch: w/other: changed since the plan: definition changed (run)",
    ]


def test_tampered_foreign_and_newer_plans_refused(repo: Repo) -> None:
    _setup(repo)
    repo.write("src.txt", "b\n")
    assert repo.orch("plan", "--out", "plan.json").returncode == 0
    doc = json.loads(repo.read("plan.json"))
    cases = {}
    tampered = json.loads(json.dumps(doc))
    tampered["steps"][2]["action"] = "run"  # make it run "other" too
    cases["tampered.json"] = (tampered, "modified after orch wrote it")
    clone = Repo(repo.path.parent / "clone")  # the same repository, cloned elsewhere
    shutil.copytree(repo.path, clone.path)
    assert clone.orch("plan", "--out", "plan.json").returncode == 0
    foreign = json.loads(clone.read("plan.json"))
    cases["foreign.json"] = (foreign, f"of repository {clone.path}, not {repo.path}")
    newer = {**doc, "format": 99}
    cases["newer.json"] = (newer, "format 99 is newer")
    for name, (data, words) in cases.items():
        repo.write(name, json.dumps(data))
        before = _state(repo)
        p = repo.orch("apply", name)
        assert p.returncode == 1, (name, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert name in p.stderr and words in p.stderr
        assert _runs(repo) == 0 and _state(repo) == before
    repo.write("junk.json", "{not json")
    p = repo.orch("apply", "--plan", "junk.json")
    assert p.returncode == 1 and "not a saved plan" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_saved_plan_with_a_selection_is_a_usage_error(repo: Repo) -> None:
    _setup(repo)
    assert repo.orch("plan", "--out", "plan.json").returncode == 0
    p = repo.orch("apply", "--plan", "plan.json", "w")
    assert p.returncode == 2 and "drop WORKFLOW" in p.stderr
    p = repo.orch("plan", "--out", "x.json", "--ref", "HEAD")
    assert p.returncode == 2 and "drop --ref" in p.stderr
    assert not repo.exists("x.json")


def test_plan_out_keeps_the_selection(repo: Repo) -> None:
    _setup(repo)
    repo.write("other.txt", "o2\n")
    repo.write("src.txt", "b\n")
    assert repo.orch("plan", "--out", "plan.json", "--force", "other").returncode == 0
    done = repo.apply("plan.json")
    assert done["ok"] and done["ran"] == ["build", "gen", "other"]
    assert _runs(repo) == 3
