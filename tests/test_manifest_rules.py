"""Manifest rules a new user reads in docs/manifests.md, held through the real CLI: each
rule is decided once, said at the line that breaks it, and never an internal error."""

from __future__ import annotations

import pytest

from tests.conftest import Repo, workflow


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ('inputs: ["data/{{ env.TOKEN }}.txt"]', "not environment variables"),
        ("outputs: [\"{{ env.get('OUTDIR', 'out') }}/\"]", "not environment variables"),
        ('workdir: "{{ env.HOME }}"', "not environment variables"),
        ('outputs: ["out/{{ project.name }}.txt"]', "not project values"),
    ],
)
def test_a_path_that_reads_the_environment_is_one_positioned_error(
    repo: Repo, path: str, says: str
) -> None:
    """Paths are decided before anything runs, from the manifest and params alone, as
    ``git.*`` and ``steps.*`` in paths already are: validate says so at the path."""
    repo.write("wf.yaml", workflow("w", f"    - name: s\n      run: echo x\n      {path}\n"))
    for verb in ("validate", "plan", "apply"):
        p = repo.orch(verb, env={"TOKEN": "t", "OUTDIR": "elsewhere"})
        assert p.returncode == 1, (verb, p.stderr)
        errors = [line for line in p.stderr.splitlines() if says in line]
        assert len(errors) == 1 and errors[0].startswith("wf.yaml:8:"), (verb, p.stderr)
        assert "internal error" not in p.stderr
    assert not repo.exists("elsewhere") and not repo.exists(".orch/state.db")


def test_validate_of_a_path_that_names_no_manifest_is_one_line_exit_1(repo: Repo) -> None:
    """``orch validate nonexist.yaml`` said ok; a relative PATH is -C DIR's, as git -C."""
    repo.write("wf.yaml", workflow("w", "    - {name: s, run: echo x}\n"))
    (repo.path / "sub").mkdir()
    for path, says in (("nonexist.yaml", "no such file"), ("sub", "a folder")):
        p = repo.orch("validate", path)
        assert p.returncode == 1, p.stderr
        assert len(p.stderr.splitlines()) == 1 and path in p.stderr and says in p.stderr
    assert repo.orch("validate", "wf.yaml").returncode == 0


def test_validate_warns_of_a_glob_that_matches_nothing_at_its_position(repo: Repo) -> None:
    """The pre-commit hook says what plan would: a warning at the glob, exit 0; a glob
    some step's outputs could match, or that matches a file, is no warning."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - name: a\n      run: echo a\n      inputs: ["data/*.csv", "src/*.rs", "gen/*.c"]\n'
            "    - name: g\n      run: echo g\n      outputs: [gen/]\n",
        ),
    )
    repo.write("data/x.csv", "x\n")
    for verb in ("validate", "plan"):
        p = repo.orch(verb)
        assert p.returncode == 0, p.stderr
        warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("orch: warning:")]
        assert len(warnings) == 1, (verb, p.stderr)
        assert warnings[0].startswith("orch: warning: wf.yaml:8:30: step 'a': input 'src/*.rs'")
    repo.write("src/a.rs", "fn main() {}\n")
    assert "warning" not in repo.orch("validate").stderr


def test_run_time_errors_name_the_line_and_column_as_validate_does(repo: Repo) -> None:
    """A missing literal input (plan and apply) and a template that fails with a run's
    values (apply) are said at ``file:line:col`` of the field, as validate says."""
    repo.write(
        "wf.yaml",
        workflow(
            "w", "    - name: missing\n      run: echo m\n      inputs:\n        - nothere.txt\n"
        ),
    )
    for verb in ("plan", "apply"):
        p = repo.orch(verb)
        assert p.returncode == 1
        assert p.stderr.startswith(
            "orch: wf.yaml:9:11: step 'missing': input 'nothere.txt' does not exist"
        ), p.stderr
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - name: a\n      run: echo "$(( {{ params.n }} + 1 ))"\n'
            '    - name: b\n      run: "true"\n      env:\n        X: "{{ params.n | int(7, 8, 9) }}"\n',
            extra='  params: {n: "abc"}\n',
        ),
    )
    data = repo.apply()
    assert data["by_step"]["a"]["message"].startswith(
        "wf.yaml:8:12: spec.steps[0].run: template error:"
    ), data["by_step"]["a"]
    assert data["by_step"]["b"]["message"].startswith(
        "wf.yaml:12:12: spec.steps[1].env.X: template error:"
    ), data["by_step"]["b"]


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ("        - !src/gen/\n", "quote it: '!src/gen/'"),
        ('        - "in\\[1\\].txt"\n', "use single quotes"),
    ],
)
def test_a_yaml_slip_in_a_path_says_how_to_write_it(repo: Repo, entry: str, hint: str) -> None:
    """An unquoted ``!`` exclusion is a YAML tag; a glob escape in double quotes is a YAML
    escape: each error says what to write instead."""
    repo.write(
        "wf.yaml",
        workflow("w", "    - name: a\n      run: echo a\n      inputs:\n        - src/\n" + entry),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("wf.yaml:10:")]
    assert len(lines) == 1 and hint in lines[0], p.stderr


def test_an_unset_environment_variable_suggests_a_default_and_lists_no_names(
    repo: Repo,
) -> None:
    repo.write("wf.yaml", workflow("w", '    - name: a\n      run: "echo {{ env.TOKEN }}"\n'))
    env = {"ORCH_TEST_SECRET_NAME_XYZ": "1"}
    p = repo.orch("apply", env=env)
    assert p.returncode == 1
    assert "env.get('TOKEN', '')" in p.stderr, p.stderr
    assert "ORCH_TEST_SECRET_NAME_XYZ" not in p.stderr and "PATH" not in p.stderr


def test_an_orch_output_error_names_orch_output(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow("w", '    - name: a\n      run: printf "k=1\\nk=2\\n" >> "$ORCH_OUTPUT"\n'),
    )
    data = repo.apply()
    assert data["by_step"]["a"]["status"] == "failed"
    assert data["by_step"]["a"]["message"].startswith("$ORCH_OUTPUT line 2: key 'k'"), data


def test_an_env_value_yaml_retypes_is_a_warning_saying_to_quote_it(repo: Repo) -> None:
    """``1e3`` reaches the step as ``1000.0`` and ``010`` as ``10``: validate warns at
    the value (exit 0); a number that reads back as written, or a quoted one, does not."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - name: a\n      run: echo "$N $M $P $Q" > out.txt\n'
            "      env: {N: 1e3, M: 010, P: 8080, Q: '010'}\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("orch: warning:")]
    assert len(warnings) == 2, p.stderr
    assert warnings[0].startswith("orch: warning: wf.yaml:8:16: spec.steps[0].env.N:")
    assert "quote it: '1e3'" in warnings[0] and "quote it: '010'" in warnings[1]
    assert repo.apply()["ok"]
    assert repo.read("out.txt") == "1000.0 10 8080 010\n"  # what the warning said


def test_dot_dot_may_leave_the_manifests_folder_never_the_repository(repo: Repo) -> None:
    """As README says: ``..`` inside the repository is a path like any other."""
    repo.write("shared/data.csv", "1\n")
    repo.write(
        "pipelines/wf.yaml",
        workflow(
            "w",
            "    - name: a\n      run: cat ../shared/data.csv\n      inputs: [../shared/data.csv]\n",
        ),
    )
    assert repo.apply()["ok"]
    repo.write("shared/data.csv", "2\n")
    assert repo.plan()[("w", "a")] == ("run", ["input changed: shared/data.csv"])
    repo.write(
        "pipelines/wf.yaml",
        workflow("w", "    - name: a\n      run: echo a\n      inputs: [../../outside.csv]\n"),
    )
    p = repo.orch("validate")
    assert p.returncode == 1 and p.stderr.startswith("pipelines/wf.yaml:8:"), p.stderr
    assert "escapes the repository" in p.stderr


def test_read_verbs_create_nothing_in_the_orch_folder(repo: Repo) -> None:
    """docs/safety.md: nothing is created by a reader, the manifest cache included."""
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: echo a}\n"))
    before = sorted(p.relative_to(repo.path) for p in (repo.path / ".orch").rglob("*"))
    for verb in (["status"], ["history"], ["task", "list"], ["workflow", "list"], ["graph", "w"]):
        p = repo.orch(*verb)
        assert p.returncode == 0, (verb, p.stderr)
        after = sorted(p.relative_to(repo.path) for p in (repo.path / ".orch").rglob("*"))
        assert after == before, verb


SKIP_CHAIN = """\
    - name: a
      run: echo a > a.txt
      when: "{{ params.on }}"
      outputs: [a.txt]
    - name: b
      run: cat a.txt > b.txt
      inputs: [a.txt]
      outputs: [b.txt]
    - name: c
      run: echo c > c.txt
      needs: [b]
    - name: d
      run: echo "{{ steps.a.status }}" > d.txt
      when: "{{ steps.a.status == 'skipped' }}"
"""


def test_the_dependants_of_a_skipped_step_are_skipped_unless_their_condition_reads_it(
    repo: Repo,
) -> None:
    """As GitHub Actions skips the jobs that need a skipped job: b (reads a's output) and
    c (after b) are skipped, not failed for a file a never wrote; d, whose condition reads
    a's status, decides for itself. Turning a on runs the chain."""
    repo.write("wf.yaml", workflow("w", SKIP_CHAIN, extra="  params: {on: false}\n"))
    r = repo.apply()
    assert r["ok"], r
    status = {s: r["by_step"][s]["status"] for s in "abcd"}
    assert status == {"a": "skipped", "b": "skipped", "c": "skipped", "d": "succeeded"}
    assert r["by_step"]["b"]["reasons"] == ["upstream skipped: a"]
    assert repo.read("d.txt") == "skipped\n" and not repo.exists("b.txt")
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}  # it settles
    repo.write("wf.yaml", workflow("w", SKIP_CHAIN, extra="  params: {on: true}\n"))
    r = repo.apply()
    status = {s: r["by_step"][s]["status"] for s in "abcd"}
    assert status == {"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "skipped"}
    assert repo.read("b.txt") == "a\n"


def test_a_constant_false_condition_is_shown_as_skip_by_the_plan(repo: Repo) -> None:
    """``when: false`` (or a condition on params alone) said "will run: never ran", then
    apply skipped it: the plan says ``skip (when: false)``, and so for its dependants."""
    repo.write("wf.yaml", workflow("w", SKIP_CHAIN, extra="  params: {on: false}\n"))
    plan = repo.plan()
    assert plan[("w", "a")] == ("skip", ["when: false"])
    assert plan[("w", "b")] == ("skip", ["upstream skipped: a"])
    assert plan[("w", "c")] == ("skip", ["upstream skipped: b"])
    assert plan[("w", "d")][0] == "run"  # its condition reads a step's status: judged at apply
    p = repo.orch("plan")
    assert "  - a  skip (when: false)\n" in p.stdout, p.stdout
    assert "3 to skip" in p.stdout
    data = repo.apply()
    assert {s: data["by_step"][s]["status"] for s in "abc"} == dict.fromkeys("abc", "skipped")
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}
    repo.write("wf.yaml", workflow("w", SKIP_CHAIN, extra="  params: {on: true}\n"))
    plan = repo.plan()
    assert plan[("w", "a")] == ("run", ["definition changed (param on: false → true)"])
