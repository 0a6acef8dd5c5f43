"""Path text has one meaning: globs checked at load time, a literal path that exists is that
path, a missing input is named, exclusions keep a tool's cache out of a step's outputs."""

from __future__ import annotations

import pytest

from runner import globs
from tests.conftest import Repo, workflow


def one_step(inputs: str = "", outputs: str = "", run: str = "echo ok") -> str:
    lines = f"    - name: a\n      run: {run}\n"
    if inputs:
        lines += f"      inputs: {inputs}\n"
    if outputs:
        lines += f"      outputs: {outputs}\n"
    return workflow("w", lines)


def diagnostics(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("orch: ")]


# -- the matcher ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("x[!a]y", "x/y", False),  # a class never matches "/"
        ("x[^a]y", "x/y", False),
        ("x[!a]y", "xby", True),
        ("x[/]y", "x/y", False),
        ("*", ".env", True),  # dot files: matched, as git pathspecs and DVC do
        ("src/*.py", "src/.hidden.py", True),
        ("src/**", "src/.cache/a", True),
        ("**/*.py", "a/.b/c.py", True),
        ("src/*.py", "src/a/b.py", False),
        ("src/**/*.py", "src/b.py", True),
        ("a**b", "a/b", False),  # not a whole segment: two "*"
        ("in[1].txt", "in[1].txt", True),  # spelled as the pattern: that path
        ("in[1].txt", "in1.txt", True),
        (r"in\[1\].txt", "in[1].txt", True),
        (r"in\[1\].txt", "in1.txt", False),
        ("in[[]1].txt", "in[1].txt", True),
        ("[]]x", "]x", True),
    ],
)
def test_glob_matching(pattern: str, path: str, hit: bool) -> None:
    assert globs.match(pattern, path) is hit


@pytest.mark.parametrize("bad", ["x[z-a].txt", "a[b", "a\\", "[!"])
def test_malformed_globs_raise_a_positioned_error(bad: str) -> None:
    with pytest.raises(globs.GlobError) as e:
        globs.check(bad)
    assert 0 <= e.value.col < len(bad)


# -- through the CLI ------------------------------------------------------------------------


def test_an_input_named_like_a_glob_is_that_file(repo: Repo) -> None:
    repo.write("wf.yaml", one_step('["in[1].txt"]'))
    repo.write("in[1].txt", "v1\n")
    repo.write("in1.txt", "other\n")
    assert repo.apply()["ok"]
    repo.write("in1.txt", "changed\n")  # not the file the step names
    assert repo.plan()[("w", "a")][0] == "up-to-date"
    repo.write("in[1].txt", "v2\n")
    assert repo.plan()[("w", "a")] == ("run", ["input changed: in[1].txt"])


def test_an_escaped_glob_character_is_literal(repo: Repo) -> None:
    repo.write("wf.yaml", one_step("['in\\[1\\].txt']"))
    repo.write("in[1].txt", "v1\n")
    assert repo.apply()["ok"]
    repo.write("in[1].txt", "v2\n")
    assert repo.plan()[("w", "a")] == ("run", ["input changed: in[1].txt"])


def test_malformed_glob_is_a_positioned_validation_error(repo: Repo) -> None:
    repo.write("wf.yaml", one_step('["src/x[z-a].txt"]'))
    for verb in ("validate", "plan", "apply"):
        p = repo.orch(verb)
        assert p.returncode == 1, p.stderr
        (line,) = diagnostics(p.stderr)
        assert line.startswith("wf.yaml:8:16: spec.steps[0].inputs[0]: bad glob"), line
        assert "z-a" in line and "internal error" not in p.stderr


def test_malformed_globs_in_config_and_quota_selectors_are_positioned(repo: Repo) -> None:
    repo.write(".orch/config.yaml", 'apiVersion: orch/v1\nkind: Config\nexclude: ["a[z-a]"]\n')
    p = repo.orch("validate")
    assert p.returncode == 1
    assert [ln.split(": bad glob")[0] for ln in diagnostics(p.stderr)] == [
        ".orch/config.yaml:3:11: exclude[0]"
    ]
    repo.write(".orch/config.yaml", 'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\n')
    repo.write("wf.yaml", one_step())
    repo.write(
        "q.yaml",
        "apiVersion: orch/v1\nkind: ResourceQuota\nmetadata: {name: q}\n"
        "spec:\n  limits: {cpu: 1}\n  selector: {workflows: ['w[']}\n",
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    (line,) = diagnostics(p.stderr)
    assert line.startswith("q.yaml:6:26: spec.selector.workflows[0]: bad glob"), line


def test_a_glob_in_outputs_is_a_validation_error(repo: Repo) -> None:
    repo.write("wf.yaml", one_step(outputs='["dist/*.whl"]'))
    p = repo.orch("validate")
    assert p.returncode == 1
    (line,) = diagnostics(p.stderr)
    assert line.startswith("wf.yaml:8:17: spec.steps[0].outputs[0]: an output is a path"), line


def test_a_missing_literal_input_no_step_produces_is_an_error_naming_step_and_path(
    repo: Repo,
) -> None:
    repo.write("wf.yaml", one_step("[data/raw.csv]", run="touch ran"))
    for verb in ("plan", "apply"):
        p = repo.orch(verb)
        assert p.returncode == 1, p.stderr
        (line,) = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert "step 'a'" in line and "'data/raw.csv'" in line and "does not exist" in line
    assert not repo.exists("ran")
    repo.write("data/raw.csv", "x\n")
    assert repo.apply()["ok"]


def test_a_missing_input_another_step_produces_is_fine(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - name: gen\n      run: mkdir -p gen && echo 1 > gen/a.c\n      outputs: [gen/]\n"
            "    - name: use\n      run: cat gen/a.c gen/*.c\n      inputs: [gen/a.c, 'gen/*.c']\n",
        ),
    )
    p = repo.orch("plan")
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    assert repo.apply()["ok"]


def test_a_glob_matching_nothing_is_a_warning(repo: Repo) -> None:
    repo.write("wf.yaml", one_step('["src/**/*.rs"]'))
    for verb in ("plan", "apply"):
        p = repo.orch(verb)
        assert p.returncode == 0, p.stderr
        warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("orch: warning:")]
        assert len(warnings) == 1 and "step 'a'" in warnings[0] and "src/**/*.rs" in warnings[0]


def test_exclusions_in_inputs(repo: Repo) -> None:
    repo.write("wf.yaml", one_step('["src/**", "!src/**/*.gen.c"]'))
    repo.write("src/a.c", "a\n")
    repo.write("src/sub/b.gen.c", "b\n")
    assert repo.apply()["ok"]
    repo.write("src/sub/b.gen.c", "b2\n")
    repo.write("src/sub/c.gen.c", "c\n")
    assert repo.plan()[("w", "a")][0] == "up-to-date"
    repo.write("src/a.c", "a2\n")
    assert repo.plan()[("w", "a")] == ("run", ["input changed: src/a.c"])


def test_a_tool_cache_inside_an_excluded_output_folder_does_not_rerun_the_producer(
    repo: Repo,
) -> None:
    repo.write(
        "wf.yaml",
        one_step(
            outputs='["node_modules/", "!node_modules/.cache/"]',
            run="mkdir -p node_modules && echo 1 > node_modules/pkg.js",
        ),
    )
    assert repo.apply()["ok"]
    repo.write("node_modules/.cache/babel/x.json", "{}\n")  # a later tool writes its cache
    assert repo.plan()[("w", "a")][0] == "up-to-date"
    repo.write("node_modules/pkg.js", "2\n")
    assert repo.plan()[("w", "a")] == ("run", ["output modified: node_modules/"])


def test_an_output_named_with_escapes_is_produced_and_tracked(repo: Repo) -> None:
    repo.write("wf.yaml", one_step(outputs="['out\\[1\\].txt']", run="echo 1 > 'out[1].txt'"))
    assert repo.apply()["ok"]
    assert repo.plan()[("w", "a")][0] == "up-to-date"
    (repo.path / "out[1].txt").unlink()
    assert repo.plan()[("w", "a")][0] == "run"


def test_orch_and_git_folders_are_entered_only_by_a_pattern_that_names_them(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - name: all\n      run: echo\n      inputs: ['**']\n"
            "    - name: nested\n      run: echo\n      inputs: ['sub/*/.orch/config.yaml']\n",
        ),
    )
    repo.write("sub/x/.orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    assert repo.apply()["ok"]
    repo.write("sub/x/.orch/config.yaml", "apiVersion: orch/v1\nkind: Config\njobs: 2\n")
    plan = repo.plan()
    assert plan[("w", "nested")] == ("run", ["input changed: sub/x/.orch/config.yaml"])
    assert plan[("w", "all")][0] == "up-to-date"  # ** does not enter .orch/ (nor .git/)


def test_the_root_orch_folder_is_never_an_input_or_output(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - name: a\n      run: echo\n      inputs: ['.orch/config.yaml', '.orch/**']\n"
            "      outputs: [.orch/out.txt]\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("wf.yaml:")]
    assert len(lines) == 3, p.stderr
    assert all(".orch/ is orch's own state" in ln for ln in lines), p.stderr
    sub = repo.path / "sub"
    sub.mkdir()
    repo.write("sub/wf.yaml", workflow("s", "    - {name: a, run: echo, inputs: [.orch/x.txt]}\n"))
    repo.write("sub/.orch/x.txt", "x\n")
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: echo}\n"))
    assert repo.orch("validate").returncode == 0  # sub/.orch/ is an ordinary folder
