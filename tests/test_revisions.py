"""Manifests at a git revision (--ref), affected workflows (--since), and the commit each run
records, on real git repositories with several commits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import api
from runner.errors import OrchError
from runner.manifests.revisions import affected_workflows, changed_files, manifests_at
from tests.conftest import Repo, workflow

TWO = (
    workflow(
        "code",
        """\
    - name: build
      run: echo build
      inputs: ["src/**/*.py"]
""",
    )
    + "---\n"
    + workflow(
        "docs",
        """\
    - name: site
      run: echo site
      inputs: ["docs/"]
""",
    )
)


def two_workflows(repo: Repo) -> None:
    repo.write("wf.yaml", TWO)
    repo.write("src/app.py", "print(1)\n")
    repo.write("docs/index.md", "# hi\n")
    repo.write(".gitignore", "*.log\n")
    repo.commit("two workflows")


def affected(repo: Repo, since: str) -> set[str]:
    r = api.open_repo(repo.path)
    return affected_workflows(r, r.manifests(), since)


def selected(repo: Repo, *args: str) -> list[str]:
    """The workflows ``orch plan --json`` selects."""
    p = repo.orch("plan", "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["workflows"]


# -- --ref -------------------------------------------------------------------------------


def test_validate_ref_reads_a_manifest_broken_only_at_that_revision(repo: Repo) -> None:
    broken = workflow("a", "    - name: build\n      run: echo\n      retyr: {limit: 2}\n")
    repo.write("a.yaml", broken)
    repo.commit("broken")
    repo.write("a.yaml", workflow("a", "    - name: build\n      run: echo\n"))
    repo.commit("fixed")
    repo.write("a.yaml", workflow("a", "    - name: build\n      run: echo edited\n"))
    status_before = repo.git("status", "--porcelain")

    assert repo.orch("validate").returncode == 0
    assert repo.orch("validate", "--ref", "HEAD").returncode == 0
    p = repo.orch("validate", "--ref", "HEAD~1")
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == (
        "a.yaml:8:7: spec.steps[0].retyr: unknown field 'retyr' (did you mean 'retry'?)"
    )
    p = repo.orch("validate", "--ref", "HEAD~1", "--format", "github")
    assert p.returncode == 1
    assert p.stdout.splitlines() == [
        "::error file=a.yaml,line=8,col=7,title=orch validate::"
        "spec.steps[0].retyr: unknown field 'retyr' (did you mean 'retry'?)"
    ]
    # the work tree, the index and HEAD are untouched
    assert "echo edited" in repo.read("a.yaml")
    assert repo.git("status", "--porcelain") == status_before


def test_ref_uses_the_config_and_file_list_of_the_revision(repo: Repo) -> None:
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nmanifests: [a.yaml]\n")
    repo.write("a.yaml", workflow("old", "    - name: s\n      run: echo\n"))
    repo.write("b.yaml", workflow("new", "    - name: s\n      run: echo\n"))
    repo.commit("only a.yaml is a manifest")
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nmanifests: [b.yaml]\n")
    repo.commit("only b.yaml is a manifest")

    assert repo.orch_json("validate")["workflows"] == ["new"]
    at_rev = repo.orch_json("validate", "--ref", "HEAD~1")
    assert at_rev["workflows"] == ["old"] and at_rev["files"] == 1
    repo.git("tag", "-a", "v1", "-m", "annotated tags peel to their commit", "HEAD~1")
    assert manifests_at(api.open_repo(repo.path), "v1").files == ("a.yaml",)


def test_plan_ref_plans_the_revision_against_the_recorded_state(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - name: s\n      run: echo one\n"))
    repo.commit("one")
    repo.write(
        "wf.yaml",
        workflow("w", "    - name: s\n      run: echo two\n")
        + "---\n"
        + workflow("later", "    - name: t\n      run: echo\n"),
    )
    repo.commit("two")
    assert repo.apply("w")["ok"]

    assert repo.plan("w") == {("w", "s"): ("up-to-date", [])}
    assert repo.plan("--ref", "HEAD", "w") == {("w", "s"): ("up-to-date", [])}
    old = repo.orch_json("plan", "--ref", "HEAD~1")
    assert old["workflows"] == ["w"]  # 'later' does not exist at HEAD~1
    assert old["steps"] == [
        {"workflow": "w", "step": "s", "action": "run", "reasons": ["definition changed (run)"]}
    ]
    assert old["summary"] == {"run": 1, "restore": 0, "may-run": 0, "up-to-date": 0, "skip": 0}


@pytest.mark.parametrize("flag", ["--ref", "--since"])
def test_unknown_revision_is_one_clear_line(repo: Repo, flag: str) -> None:
    two_workflows(repo)
    p = repo.orch("validate" if flag == "--ref" else "plan", f"{flag}=nope")
    assert p.returncode == 1
    assert p.stderr == f"orch: {flag} nope: unknown revision (try a branch, tag or commit)\n"


@pytest.mark.parametrize("rev", ["HEAD~5", "-h", "--all", "0" * 40, "HEAD:wf.yaml"])
def test_what_git_cannot_resolve_is_an_unknown_revision(repo: Repo, rev: str) -> None:
    two_workflows(repo)
    r = api.open_repo(repo.path)
    with pytest.raises(OrchError, match=r"^--since .*: unknown revision \(try a branch"):
        changed_files(r, rev)
    with pytest.raises(OrchError, match=r"^--ref .*: unknown revision \(try a branch"):
        manifests_at(r, rev)


def test_ref_outside_git_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".orch").mkdir()
    (tmp_path / ".orch" / "config.yaml").write_text("apiVersion: orch/v1\nkind: Config\n")
    with pytest.raises(OrchError, match=r"^--ref: .* is not in a git repository$"):
        manifests_at(api.open_repo(tmp_path), "HEAD")


def test_orch_root_in_a_subfolder_of_the_git_repository(repo: Repo) -> None:
    """Paths at REV and changed paths are relative to the orch root, not to git's top."""
    sub = Repo(repo.path / "apps" / "web")
    sub.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    sub.write("wf.yaml", TWO)
    sub.write("src/app.py", "x\n")
    sub.write("docs/index.md", "x\n")
    repo.write("src/outside.py", "x\n")  # same relative path, but outside the orch root
    repo.commit("nested")
    sub.write("wf.yaml", TWO.replace("echo site", "echo site2"))

    m = manifests_at(api.open_repo(sub.path), "HEAD")
    assert m.files == ("wf.yaml",) and sorted(m.workflows) == ["code", "docs"]
    assert "echo site2" not in m.workflows["docs"].steps[0].run

    repo.write("src/outside.py", "y\n")
    sub.write("docs/index.md", "y\n")
    assert changed_files(api.open_repo(sub.path), "HEAD") == {"wf.yaml", "docs/index.md"}
    sub.write("wf.yaml", TWO)
    assert affected(sub, "HEAD") == {"docs"}


# -- --since -----------------------------------------------------------------------------


def test_since_selects_the_workflow_whose_input_changed(repo: Repo) -> None:
    two_workflows(repo)
    assert repo.apply()["ok"]
    assert selected(repo, "--since", "HEAD") == []

    repo.write("docs/index.md", "# changed\n")  # unstaged
    assert selected(repo, "--since", "HEAD") == ["docs"]
    plan = repo.plan("--since", "HEAD")
    assert plan == {("docs", "site"): ("run", ["input changed: docs/index.md"])}

    data = repo.apply("--since", "HEAD")
    assert data["ran"] == ["site"]


def test_since_selects_the_workflows_downstream_of_a_changed_one(repo: Repo) -> None:
    """A workflow reading files an affected workflow writes is affected too (Nx's
    "affected" takes the dependents): else apply --since would leave it stale."""
    repo.write(
        "wf.yaml",
        workflow(
            "make",
            "    - {name: copy, run: 'mkdir -p out && cp src/x out/x', inputs: [src/x], "
            "outputs: [out/x]}\n",
        )
        + "---\n"
        + workflow(
            "use", "    - {name: read, run: 'cp out/x out/y', inputs: [out/x], outputs: [out/y]}\n"
        )
        + "---\n"
        + workflow("last", "    - {name: tail, run: 'cat out/y', inputs: [out/y]}\n")
        + "---\n"
        + workflow("apart", "    - {name: other, run: 'true', inputs: [other.txt]}\n"),
    )
    repo.write("src/x", "1\n")
    repo.write("other.txt", "o\n")
    repo.write(".gitignore", "out/\n")
    repo.commit("three in a chain")
    assert repo.apply()["ok"]
    repo.write("src/x", "2\n")
    assert selected(repo, "--since", "HEAD") == ["last", "make", "use"]
    assert repo.apply("--since", "HEAD")["ok"]
    assert repo.orch("plan", "--detailed-exitcode").returncode == 0  # nothing left stale


def test_since_counts_staged_untracked_and_deleted_files_but_not_ignored(repo: Repo) -> None:
    two_workflows(repo)
    repo.write("src/debug.log", "ignored by .gitignore\n")
    assert affected(repo, "HEAD") == set()

    repo.write("src/new.py", "untracked\n")
    assert affected(repo, "HEAD") == {"code"}
    repo.git("add", "src/new.py")  # staged
    assert affected(repo, "HEAD") == {"code"}
    repo.commit("add new.py")
    assert affected(repo, "HEAD") == set()
    assert affected(repo, "HEAD~1") == {"code"}  # committed since HEAD~1

    repo.write("notes/index.md", "# hi\n")  # same content: git sees a rename
    repo.git("rm", "-q", "docs/index.md")
    repo.git("add", "notes/index.md")
    assert affected(repo, "HEAD") == {"docs"}  # the old path left docs/


def test_since_manifest_project_quota_and_config_changes(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow("a", "    - name: s\n      run: echo\n", "  quota: small\n").replace(
            "{name: a}", "{name: a, project: web}"
        ),
    )
    repo.write("b.yaml", workflow("b", "    - name: s\n      run: echo\n"))
    repo.write("quota.yaml", _quota("small", "[]"))
    repo.write("batch.yaml", _quota("batch", "[b]"))
    repo.write(
        "project.yaml", "apiVersion: orch/v1\nkind: Project\nmetadata: {name: web}\nspec: {}\n"
    )
    repo.commit("docs")
    assert affected(repo, "HEAD") == set()

    for path, expect in (
        ("wf.yaml", {"a"}),
        ("b.yaml", {"b"}),
        ("quota.yaml", {"a"}),  # named by spec.quota
        ("batch.yaml", {"b"}),  # governs b through its selector
        ("project.yaml", {"a"}),
        (".orch/config.yaml", {"a", "b"}),  # decides which manifests exist at all
    ):
        (repo.path / path).write_text(repo.read(path) + "# edited\n")
        assert affected(repo, "HEAD") == expect, path
        repo.git("checkout", "-q", "--", path)


def _quota(name: str, workflows: str) -> str:
    return (
        f"apiVersion: orch/v1\nkind: ResourceQuota\nmetadata: {{name: {name}}}\n"
        f"spec:\n  limits: {{cpu: 1}}\n  selector: {{workflows: {workflows}}}\n"
    )


def test_since_renders_templated_inputs_for_every_environment(repo: Repo) -> None:
    repo.write(
        "project.yaml",
        "apiVersion: orch/v1\nkind: Project\nmetadata: {name: web}\n"
        "spec:\n  params: {data: dev-data}\n"
        "  environments: {prod: {params: {data: prod-data}}}\n",
    )
    repo.write(
        "wf.yaml",
        workflow(
            "load",
            '    - name: s\n      run: echo\n      inputs: ["{{ params.data }}/*.csv"]\n',
        ).replace("{name: load}", "{name: load, project: web}"),
    )
    repo.write("dev-data/a.csv", "1\n")
    repo.write("prod-data/a.csv", "1\n")
    repo.write("other/a.csv", "1\n")
    repo.commit("data")
    repo.write("other/a.csv", "2\n")
    assert affected(repo, "HEAD") == set()
    repo.write("prod-data/a.csv", "2\n")
    assert affected(repo, "HEAD") == {"load"}
    repo.git("checkout", "-q", "--", "prod-data/a.csv")
    repo.write("dev-data/a.csv", "2\n")
    assert affected(repo, "HEAD") == {"load"}


def test_since_a_branch_compares_with_the_merge_base(repo: Repo) -> None:
    """As Nx does: what changed on main after the branch point selects nothing here."""
    two_workflows(repo)
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("src/app.py", "print(2)\n")
    repo.commit("feature work")
    repo.git("checkout", "-q", "main")
    repo.write("docs/index.md", "# main moved on\n")
    repo.commit("main work")
    repo.git("checkout", "-q", "feature")

    assert selected(repo, "--since", "main") == ["code"]
    repo.git("checkout", "-q", "main")
    assert selected(repo, "--since", "feature") == ["docs"]


# -- the commit each run records -------------------------------------------------------------


def test_history_records_the_commit_and_whether_the_tree_was_dirty(repo: Repo) -> None:
    two_workflows(repo)
    head = repo.git("rev-parse", "HEAD").strip()
    assert repo.apply()["ok"]
    repo.write("notes.txt", "untracked files do not make a tree dirty (as git describe)\n")
    repo.write("docs/index.md", "# edited, tracked\n")
    assert repo.apply()["ok"]

    runs = repo.orch_json("history")
    assert [(r["commit"], r["dirty"]) for r in runs] == [(head, True), (head, False)]
    text = repo.orch("history").stdout
    assert f"{head[:10]}+dirty" in text


def test_history_outside_git_records_no_commit(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    repo.write("wf.yaml", workflow("w", "    - name: s\n      run: echo\n"))
    assert repo.apply()["ok"]
    assert [(r["commit"], r["dirty"]) for r in repo.orch_json("history")] == [(None, None)]


def test_ref_and_since_leave_no_git_processes_behind(repo: Repo) -> None:
    """gitpython keeps cat-file helpers alive until the repository is closed."""
    import psutil

    two_workflows(repo)
    r = api.open_repo(repo.path)
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    manifests_at(r, "HEAD")
    changed_files(r, "HEAD")
    after = {c.pid for c in psutil.Process().children(recursive=True)}
    assert after - before == set()


def test_plan_ref_refuses_options_it_cannot_honour(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  steps:\n    - {name: a, run: 'true'}\n",
    )
    repo.commit("one")
    for extra in (["--force", "a"], ["--force-all"], ["--since", "HEAD"]):
        p = repo.orch("plan", "--ref", "HEAD", *extra)
        assert p.returncode == 2 and "--ref plans the manifests at REV" in p.stderr, extra


def test_since_leaves_out_excluded_inputs_and_unnamed_orch_folders(repo: Repo) -> None:
    """--since reads a path as the plan does: a ``!pattern`` exclusion is not an input, and
    ``sub/**`` does not enter a nested ``.orch/`` folder that only a pattern naming it reads."""
    repo.write(
        "wf.yaml",
        workflow(
            "code",
            '    - {name: build, run: "true", inputs: ["src/**", "!src/gen/**"]}\n',
        )
        + "---\n"
        + workflow(
            "nested",
            "    - {name: conf, run: \"true\", inputs: ['sub/*/.orch/config.yaml']}\n",
        )
        + "---\n"
        + workflow("tree", '    - {name: all, run: "true", inputs: ["tree/**"]}\n'),
    )
    repo.write("src/a.c", "a\n")
    repo.write("src/gen/x.c", "gen\n")
    repo.write("sub/x/.orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    repo.write("tree/a.txt", "a\n")
    repo.write("tree/deep/.orch/note.txt", "n\n")
    repo.commit("all")
    repo.write("src/gen/x.c", "regenerated\n")
    assert affected(repo, "HEAD") == set()
    repo.write("tree/deep/.orch/note.txt", "edited\n")
    assert affected(repo, "HEAD") == set()
    repo.write("sub/x/.orch/config.yaml", "apiVersion: orch/v1\nkind: Config\njobs: 2\n")
    assert affected(repo, "HEAD") == {"nested"}
    repo.write("src/a.c", "b\n")
    assert affected(repo, "HEAD") == {"nested", "code"}


def test_force_with_since_checks_names_against_the_named_workflows(repo: Repo) -> None:
    # --since leaving a workflow out is not a typo in --force (as for --param): the name is
    # checked against the workflows named; a name no workflow has is still refused
    two_workflows(repo)
    assert repo.apply()["ok"]
    repo.write("docs/index.md", "# changed\n")
    assert selected(repo, "--since", "HEAD", "--force", "build") == ["docs"]
    assert selected(repo, "--since", "HEAD", "--force", "code/build") == ["docs"]
    forced = repo.plan("--since", "HEAD", "--force", "site")
    assert list(forced) == [("docs", "site")] and forced["docs", "site"][1][0] == "forced"
    bad = repo.orch("plan", "--since", "HEAD", "--force", "biuld")
    assert bad.returncode != 0 and "--force biuld: no such step" in bad.stderr


def test_since_selects_a_workflow_whose_foreach_glob_gained_or_lost_a_file(repo: Repo) -> None:
    # the glob is not an input (no step lists {{ item.path }}), yet a file there is an
    # instance more or less; a glob matching nothing at all still counts
    repo.write(
        "wf.yaml",
        workflow("t", '    - {name: c, foreach: "books/*.txt", run: "echo {{ item.name }}"}\n')
        + "---\n"
        + workflow("other", '    - {name: o, run: "true"}\n'),
    )
    repo.write("books/a.txt", "a\n")
    repo.commit("one book")
    assert repo.apply()["ok"]
    assert selected(repo, "--since", "HEAD") == []
    repo.write("books/b.txt", "b\n")
    assert selected(repo, "--since", "HEAD") == ["t"]
    (repo.path / "books/b.txt").unlink()
    (repo.path / "books/a.txt").unlink()  # no instance left: the plan drops its record
    gone = repo.orch_json("plan", "--since", "HEAD")
    assert gone["removed"] == [{"workflow": "t", "step": "c[books/a.txt]"}]
    assert gone["workflows"] == ["t"]
    repo.commit("no book")
    repo.write("books/c.txt", "c\n")
    assert selected(repo, "--since", "HEAD") == ["t"]


def test_plan_ref_fans_out_over_recorded_outputs_as_plan_does(repo: Repo) -> None:
    # the manifests at REV against this checkout's state: a foreach over a step's outputs
    # has the instances the state recorded (it planned the readers as upstream-changed)
    repo.write(
        "wf.yaml",
        workflow(
            "dyn",
            """\
    - name: list
      run: echo 'files=["a", "b"]' >> "$ORCH_OUTPUT"
    - name: each
      foreach: "{{ steps.list.outputs.files }}"
      run: echo "{{ item }}"
    - name: gather
      needs: [each]
      run: echo '{{ steps.each.instances | length }}'
""",
        ),
    )
    repo.commit("dyn")
    assert repo.apply()["ok"]
    here = repo.orch_json("plan")
    at_ref = repo.orch_json("plan", "--ref", "HEAD")
    assert [(s["step"], s["action"]) for s in at_ref["steps"]] == [
        (s["step"], s["action"]) for s in here["steps"]
    ]
    assert {s["action"] for s in at_ref["steps"]} == {"up-to-date"}
    assert "each[b]" in [s["step"] for s in at_ref["steps"]]
