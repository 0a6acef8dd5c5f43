"""Symlinks under input folders: one rule (runner.links) for hashing, plan, watch, --since.
Inside the repository a link is followed; leaving it is an error naming the link."""

from __future__ import annotations

import json
import os

from runner import links
from runner.manifests.load import load
from runner.watch.loop import INPUT, EventFilter, Hit
from tests.conftest import Repo, workflow

WF = workflow(
    "w",
    """\
    - name: build
      run: cat src/vendor/lib.c > out.txt
      inputs: ["src/**"]
      outputs: [out.txt]
""",
)


def vendored(repo: Repo) -> Repo:
    repo.write("wf.yaml", WF)
    repo.write("src/main.c", "int main;\n")
    repo.write("third/lib/lib.c", "v1\n")
    os.symlink("../third/lib", repo.path / "src" / "vendor")
    return repo


def test_a_linked_folder_inside_the_repo_is_hashed_and_edits_through_it_rerun(repo: Repo) -> None:
    vendored(repo)
    assert repo.apply()["ok"]
    assert repo.plan()[("w", "build")][0] == "up-to-date"
    repo.write("third/lib/lib.c", "v2\n")
    assert repo.plan()[("w", "build")] == ("run", ["input changed: src/vendor/lib.c"])
    repo.write("src/vendor/new.c", "x\n")  # a new file reached through the link
    assert "src/vendor/new.c" in repo.plan()[("w", "build")][1][0]


def test_a_link_leaving_the_repo_is_an_error_naming_it(repo: Repo, tmp_path) -> None:
    repo.write("wf.yaml", WF)
    repo.write("src/main.c", "int main;\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.c").write_text("s\n")
    os.symlink(outside, repo.path / "src" / "vendor")
    for verb in ("plan", "apply"):
        p = repo.orch(verb)
        assert p.returncode == 1, p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, p.stderr
        assert "src/vendor" in lines[0] and "outside the repository" in lines[0]
        assert "build" in lines[0] and "internal error" not in lines[0]
    assert not repo.exists("out.txt")


def test_a_linked_file_leaving_the_repo_is_refused_too(repo: Repo, tmp_path) -> None:
    repo.write("wf.yaml", WF)
    (tmp_path / "passwd").write_text("root\n")
    (repo.path / "src").mkdir()
    os.symlink(tmp_path / "passwd", repo.path / "src" / "p.c")
    p = repo.orch("plan")
    assert p.returncode == 1 and "src/p.c" in p.stderr and "outside" in p.stderr


def test_a_link_loop_and_a_dangling_link_are_not_followed(repo: Repo) -> None:
    vendored(repo)
    os.symlink("..", repo.path / "src" / "up")  # src/up/src/up/... would never end
    os.symlink("nowhere", repo.path / "src" / "gone.c")
    assert repo.apply()["ok"]
    assert repo.plan()[("w", "build")][0] == "up-to-date"


def test_an_output_folder_may_hold_links_out_of_the_repo(repo: Repo, tmp_path) -> None:
    """A virtualenv as an output: bin/python -> /usr/bin/python3 is the step's own work;
    its link text is hashed (as git stores a link), its target never read."""
    (tmp_path / "py").write_text("#!/bin/sh\n")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            f"    - name: venv\n      run: mkdir -p env/bin && ln -sf {tmp_path / 'py'} env/bin/python\n"
            "      outputs: [env/]\n",
        ),
    )
    assert repo.apply()["ok"]
    assert repo.plan()[("w", "venv")][0] == "up-to-date"
    os.remove(repo.path / "env" / "bin" / "python")
    os.symlink("/elsewhere", repo.path / "env" / "bin" / "python")
    assert repo.plan()[("w", "venv")] == ("run", ["output modified: env/"])


def test_an_excluded_link_out_of_the_repo_is_never_followed_nor_checked(
    repo: Repo, tmp_path
) -> None:
    """Exclusions apply before the link rule: a virtualenv read as an input, less its
    bin/ (bin/python leads outside), and a src/ less its src/ext link out."""
    outside = tmp_path / "outside"
    (outside / "bin").mkdir(parents=True)
    (outside / "bin" / "python").write_text("py\n")
    repo.write("venv/pyvenv.cfg", "home = /usr\n")
    (repo.path / "venv" / "bin").mkdir()
    os.symlink(outside / "bin" / "python", repo.path / "venv" / "bin" / "python")
    repo.write("src/a.c", "a\n")
    os.symlink(outside, repo.path / "src" / "ext")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - name: deps\n      run: echo deps\n      inputs: [venv/, "!venv/bin/"]\n'
            '    - name: build\n      run: echo build\n      inputs: ["src/**", "!src/ext/"]\n',
        ),
    )
    base = repo.commit()
    assert repo.orch("validate").returncode == 0
    assert repo.apply()["ok"]
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}
    (outside / "bin" / "python").write_text("py2\n")  # outside, and left out: no change
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}
    repo.write("venv/pyvenv.cfg", "home = /opt\n")
    assert repo.plan()[("w", "deps")] == ("run", ["input changed: venv/pyvenv.cfg"])
    assert repo.orch_json("plan", "--since", base)["workflows"] == ["w"]


def test_since_sees_a_change_at_the_links_target(repo: Repo) -> None:
    vendored(repo)
    repo.write(
        "other.yaml",
        workflow("o", "    - name: x\n      run: echo x\n      inputs: [docs/]\n"),
    )
    base = repo.commit()
    repo.write("third/lib/lib.c", "v2\n")
    assert repo.orch_json("plan", "--since", base)["workflows"] == ["w"]


def test_watch_filter_maps_a_change_at_the_target_to_the_link(repo: Repo) -> None:
    vendored(repo)
    m = load(repo.path)
    f = EventFilter(m.config, m, list(m.workflows.values()))
    assert f.classify("third/lib/lib.c") is None
    f.set_links(links.find(str(repo.path), ["src"]))
    assert f.classify("third/lib/lib.c") == Hit(INPUT, frozenset({("w", "build")}))
    assert f.classify("third/other.c") is None


def test_a_literal_input_that_is_a_dangling_or_looping_link_says_so(repo: Repo) -> None:
    os.symlink("b", repo.path / "a")
    os.symlink("a", repo.path / "b")
    os.symlink("gone.txt", repo.path / "dangling")
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "true", inputs: [a]}\n'))
    p = repo.orch("plan")
    assert p.returncode == 1
    assert "input 'a' is a symlink that leads to nothing" in p.stderr, p.stderr
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "true", inputs: [dangling]}\n'))
    p = repo.orch("plan")
    assert p.returncode == 1
    assert "input 'dangling' is a symlink that leads to nothing" in p.stderr, p.stderr


HANDLERS = """\
  on:
    always:
      - run: echo "{{ workflow.status }}" > always.txt
    failure:
      - run: echo "{{ workflow.status }}" > failure.txt
"""


def test_a_link_out_made_during_the_run_fails_that_step_and_the_run(repo: Repo, tmp_path) -> None:
    """A step that made a link out of the repository, read by a step after it: the reader
    fails with the plan's positioned line, the run is recorded failed and its on: failure
    and on: always handlers run (it was recorded as succeeded, with no handler run)."""
    (tmp_path / "py").write_text("py\n")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            f"    - name: mk\n      run: mkdir -p env/bin && ln -sf {tmp_path / 'py'} env/bin/python\n"
            "      outputs: [env/]\n"
            "    - name: use\n      run: echo use\n      inputs: [env/]\n",
            extra="",
        )
        + HANDLERS,
    )
    data = repo.apply()
    assert not data["ok"]
    use = data["by_step"]["use"]
    assert use["status"] == "failed"
    assert use["message"].startswith("wf.yaml:11:15: step 'use': inputs: env/bin/python"), use
    [run] = repo.orch_json("history")
    assert run["status"] == "failed"
    assert repo.read("always.txt").strip() == "failed"
    assert repo.read("failure.txt").strip() == "failed"


def test_an_apply_refused_by_its_plan_records_no_run_and_says_the_plans_line(
    repo: Repo, tmp_path
) -> None:
    """As Terraform: a plan that fails begins no run, so nothing is recorded and no
    handler runs; apply says the plan's positioned line, and --json says it as JSON."""
    repo.write("wf.yaml", WF + HANDLERS)
    repo.write("src/main.c", "int main;\n")
    os.symlink(tmp_path, repo.path / "src" / "vendor")
    plan = repo.orch("plan")
    apply = repo.orch("apply")
    assert apply.returncode == plan.returncode == 1
    assert apply.stderr == plan.stderr and "wf.yaml:8:15: step 'build'" in plan.stderr
    p = repo.orch("apply", "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout) == {"error": plan.stderr.strip().removeprefix("orch: "), "exit": 1}
    assert repo.orch_json("history") == []
    assert not repo.exists("always.txt") and not repo.exists("failure.txt")
