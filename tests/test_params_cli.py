"""``--param KEY=VALUE`` on plan, apply and watch: a workflow param set for one run,
fingerprinted like any param, so exactly the steps that read it run again."""

from __future__ import annotations

import pytest

from tests.conftest import Repo, workflow

PARAMS = workflow(
    "w",
    """\
    - name: greet
      run: echo "{{ params.greeting }}" > greet.txt
      outputs: [greet.txt]
    - name: double
      run: echo "{{ params.n * 2 }} {{ 'fast' if params.fast else 'slow' }}" > double.txt
      outputs: [double.txt]
    - name: plain
      run: echo plain > plain.txt
      outputs: [plain.txt]
""",
    extra='  params: {greeting: hello, n: 3, fast: false, version: "1.0", tags: [a]}\n',
)


@pytest.fixture
def applied(repo: Repo) -> Repo:
    repo.write("wf.yaml", PARAMS)
    done = repo.apply()
    assert done["ok"] and done["ran"] == ["double", "greet", "plain"]
    return repo


def _runs(plan: dict[tuple[str, str], tuple[str, list[str]]]) -> list[str]:
    return sorted(s for (_w, s), (action, _r) in plan.items() if action != "up-to-date")


def test_a_param_re_runs_exactly_the_steps_that_read_it(applied: Repo) -> None:
    repo = applied
    plan = repo.plan("--param", "greeting=hi")
    assert _runs(plan) == ["greet"]
    assert plan[("w", "greet")][1] == ["definition changed (param greeting: hello → hi)"]
    assert _runs(repo.plan("--param", "n=4")) == ["double"]
    done = repo.apply("--param", "greeting=hi", "--param", "n=4")
    assert done["ran"] == ["double", "greet"]
    assert repo.read("greet.txt") == "hi\n"
    assert repo.read("double.txt") == "8 slow\n"  # typed as the manifest's 3: a number
    # the same values again: up to date; the manifest's own values: run again
    assert _runs(repo.plan("--param", "greeting=hi", "--param", "n=4")) == []
    assert _runs(repo.plan()) == ["double", "greet"]


def test_values_are_typed_as_the_params_value_in_the_manifest(applied: Repo) -> None:
    repo = applied
    done = repo.apply("--param", "fast=yes", "--param", "n=5")
    assert done["ran"] == ["double"]
    assert repo.read("double.txt") == "10 fast\n"
    # a later KEY wins, as in make
    repo.apply("--param", "n=1", "--param", "n=2")
    assert repo.read("double.txt") == "4 slow\n"


def test_a_string_param_keeps_the_text_as_given(repo: Repo) -> None:
    """``1.10`` is a version, not the number 1.1: text stays text where the param is text."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - {name: v, run: "echo {{ params.version }} > v.txt", outputs: [v.txt]}\n',
            extra='  params: {version: "1.0"}\n',
        ),
    )
    assert repo.apply("--param", "version=1.10")["ok"]
    assert repo.read("v.txt") == "1.10\n"


def test_dry_run_and_workflow_run_take_params(applied: Repo) -> None:
    repo = applied
    p = repo.orch("apply", "--dry-run", "--param", "greeting=hey")
    assert p.returncode == 0, p.stderr
    assert "greet  will run" in p.stdout
    p = repo.orch("workflow", "run", "w", "-q", "--param", "greeting=hey")
    assert p.returncode == 0, p.stderr
    assert repo.read("greet.txt") == "hey\n"


def test_a_param_of_one_workflow_leaves_the_other_alone(applied: Repo) -> None:
    repo = applied
    repo.write(
        "other.yaml",
        workflow("other", '    - {name: o, run: "echo {{ params.n }} > o.txt", outputs: [o.txt]}\n',
                 extra="  params: {m: 1, n: 1}\n"),
    )  # fmt: skip
    repo.apply()
    assert _runs(repo.plan("--param", "greeting=x")) == ["greet"]
    assert repo.plan("w", "--param", "greeting=x")  # selected: fine
    # a param only another (unselected) workflow has is unknown to this selection
    p = repo.orch("plan", "w", "--param", "m=2")
    assert p.returncode == 2
    assert "no selected workflow has a param 'm'" in p.stderr


def _refused(repo: Repo, *args: str) -> str:
    before = repo.orch_json("status")["steps"]
    p = repo.orch(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    errors = p.stderr.strip().splitlines()
    assert len(errors) == 1 and "internal error" not in p.stderr, p.stderr
    assert repo.orch_json("status")["steps"] == before  # nothing ran, nothing recorded
    return errors[0]


@pytest.mark.parametrize("verb", ["plan", "apply", "watch"])
def test_an_unknown_param_is_refused_with_a_suggestion(applied: Repo, verb: str) -> None:
    line = _refused(applied, verb, "--param", "greting=hi")
    assert "--param greting" in line and "did you mean 'greeting'?" in line


@pytest.mark.parametrize("verb", ["plan", "apply", "watch"])
def test_a_param_without_equals_is_a_usage_error(applied: Repo, verb: str) -> None:
    assert "--param greeting" in _refused(applied, verb, "--param", "greeting")
    assert "--param =x" in _refused(applied, verb, "--param", "=x")


@pytest.mark.parametrize(
    ("pair", "says"),
    [("n=many", "whole number"), ("fast=maybe", "true or false"), ("tags=a", "JSON list")],
)
def test_a_value_of_the_wrong_type_is_refused(applied: Repo, pair: str, says: str) -> None:
    line = _refused(applied, "apply", "--param", pair)
    assert f"--param {pair}" in line and says in line
    assert applied.read("double.txt") == "6 slow\n"


def test_a_list_param_takes_json(applied: Repo) -> None:
    repo = applied
    repo.write(
        "tags.yaml",
        workflow("t", '    - {name: t, run: "echo {{ params.tags | join(\',\') }} > t.txt"}\n',
                 extra="  params: {tags: [a]}\n"),
    )  # fmt: skip
    assert repo.apply("t", "--param", 'tags=["x", "y"]')["ok"]
    assert repo.read("t.txt") == "x,y\n"


def test_watch_applies_with_the_params(applied: Repo) -> None:
    from tests.test_watch import Watch

    w = Watch(applied, "-q", "--param", "greeting=from-watch")
    try:
        w.expect(r"^watch: cycle 1: start -> 1 ran, 0 failed")
        assert applied.read("greet.txt") == "from-watch\n"
    finally:
        w.close()


def test_a_steps_own_param_and_a_templates_param_are_not_overridden(repo: Repo) -> None:
    """--param sets the workflow's param: a step's own ``params:`` (and a StepTemplate's
    declared param) are the step's constants and still win for that step."""
    repo.write(
        "t.yaml",
        "apiVersion: orch/v1\nkind: StepTemplate\nmetadata: {name: t}\n"
        "spec:\n  params: {x: from-template}\n"
        '  run: "echo {{ params.x }} > t.txt"\n  outputs: [t.txt]\n',
    )
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - {name: wf, run: "echo {{ params.x }} > wf.txt", outputs: [wf.txt]}\n'
            '    - {name: own, run: "echo {{ params.x }} > own.txt", outputs: [own.txt],'
            " params: {x: own}}\n"
            "    - {name: tpl, uses: t}\n",
            extra="  params: {x: manifest}\n",
        ),
    )
    assert repo.apply("--param", "x=cli")["ok"]
    got = {f: repo.read(f"{f}.txt") for f in ("wf", "own", "t")}
    assert got == {"wf": "cli\n", "own": "own\n", "t": "from-template\n"}


def test_handlers_see_the_params_too(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - {name: s, run: "echo {{ params.who }} > s.txt", outputs: [s.txt]}\n',
            extra='  params: {who: manifest}\n  on:\n    success: [{run: "echo {{ params.who }} > hook.txt"}]\n',
        ),
    )
    assert repo.apply("--param", "who=cli")["ok"]
    assert (repo.read("s.txt"), repo.read("hook.txt")) == ("cli\n", "cli\n")


def test_a_param_with_since_where_nothing_changed_is_no_error(applied: Repo) -> None:
    repo = applied
    repo.commit("all")
    p = repo.orch("apply", "--since", "HEAD", "--param", "greeting=x")
    assert p.returncode == 0, p.stderr
    assert repo.read("greet.txt") == "hello\n"  # not selected: not run
