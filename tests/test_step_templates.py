"""``StepTemplate`` and ``uses:``/``with:``: a step written once, used by many, each use
planned, fingerprinted and run as if its fields were written in the step."""

from __future__ import annotations

import pytest

from tests.conftest import Repo, workflow

TEMPLATE = """\
apiVersion: orch/v1
kind: StepTemplate
metadata: {name: count}
spec:
  description: count what is in one book
  params:
    book:
    flags: {default: "-w", description: what wc counts}
  run: mkdir -p counts && wc {{ params.flags }} < books/{{ params.book }}.txt | tr -d ' ' > counts/{{ params.book }}.n
  inputs: ["books/{{ params.book }}.txt"]
  outputs: ["counts/{{ params.book }}.n"]
  env: {FROM_TEMPLATE: t, SHARED: template}
"""
USES = workflow(
    "w",
    """\
    - {name: a, uses: count, with: {book: a}}
    - name: b
      uses: count
      with: {book: b, flags: -c}
      env: {SHARED: step}
      outputs: [counts/b.env]
      run: >-
        mkdir -p counts && wc {{ params.flags }} < books/b.txt | tr -d ' ' > counts/b.n
        && echo "$FROM_TEMPLATE $SHARED" > counts/b.env
    - {name: plain, run: "echo plain > plain.txt", outputs: [plain.txt]}
""",
)


@pytest.fixture
def books(repo: Repo) -> Repo:
    repo.write("books/a.txt", "one two three\n")
    repo.write("books/b.txt", "four five\n")
    repo.write("templates/count.yaml", TEMPLATE)
    repo.write("wf.yaml", USES)
    repo.write(".gitignore", "counts/\nplain.txt\n")
    done = repo.apply()
    assert done["ok"] and done["ran"] == ["a", "b", "plain"], done
    return repo


def _runs(repo: Repo, *args: str) -> list[str]:
    return sorted(s for (_w, s), (a, _r) in repo.plan(*args).items() if a != "up-to-date")


def test_uses_with_defaults_and_overrides(books: Repo) -> None:
    repo = books
    assert repo.read("counts/a.n") == "3\n"  # the default flags: words
    assert repo.read("counts/b.n") == "10\n"  # with: flags -c: bytes
    # the step's env merges over the template's; its outputs extend the template's
    assert repo.read("counts/b.env") == "t step\n"
    assert _runs(repo) == []


def test_editing_the_template_re_runs_exactly_its_users(books: Repo) -> None:
    repo = books
    repo.write("templates/count.yaml", TEMPLATE.replace("tr -d ' '", "tr -d ' \\t'"))
    plan = repo.plan()
    # b writes its own run: only a takes the template's
    assert plan[("w", "a")] == ("run", ["definition changed (run)"])
    assert _runs(repo) == ["a"]
    repo.write("templates/count.yaml", TEMPLATE.replace('default: "-w"', 'default: "-l"'))
    # the default is read by a (b gives its own flags)
    assert _runs(repo) == ["a"]
    repo.write("templates/count.yaml", TEMPLATE.replace("SHARED: template", "SHARED: other"))
    assert _runs(repo) == ["a"]  # b's own SHARED wins: its definition is unchanged
    repo.write("templates/count.yaml", TEMPLATE.replace("FROM_TEMPLATE: t", "FROM_TEMPLATE: u"))
    assert _runs(repo) == ["a", "b"]
    assert repo.apply()["ran"] == ["a", "b"]
    assert repo.read("counts/b.env") == "u step\n"


def test_a_changed_template_file_is_seen_by_since(books: Repo) -> None:
    repo = books
    repo.write("other.yaml", workflow("other", '    - {name: o, run: "echo o"}\n'))
    repo.commit("all")
    repo.apply()
    repo.write("templates/count.yaml", TEMPLATE.replace("FROM_TEMPLATE: t", "FROM_TEMPLATE: u"))
    data = repo.orch_json("plan", "--since", "HEAD")
    assert data["workflows"] == ["w"]


def _invalid(repo: Repo, manifest: str, says: str, where: str) -> None:
    """One positioned diagnostic naming the problem; nothing runs, no state is written."""
    before = repo.orch_json("status")["steps"]
    repo.write("bad.yaml", manifest)
    p = repo.orch("validate")
    assert p.returncode == 1, p.stderr
    hits = [line for line in p.stderr.splitlines() if says in line]
    assert len(hits) == 1, p.stderr
    # that one line alone: no error that merely follows from it
    assert [line for line in p.stderr.splitlines() if not line.startswith("orch:")] == hits
    assert hits[0].startswith(where), hits[0]
    assert "internal error" not in p.stderr
    assert repo.orch("apply").returncode == 1
    (repo.path / "bad.yaml").unlink()
    assert repo.orch_json("status")["steps"] == before  # nothing ran, nothing recorded


def _steps(body: str) -> str:
    return workflow("bad", body)


@pytest.mark.parametrize(
    ("body", "says", "where"),
    [
        (
            "    - {name: x, uses: cuont, with: {book: a}}\n",
            "no StepTemplate named 'cuont' (did you mean 'count'?)",
            "bad.yaml:6:",
        ),
        (
            "    - {name: x, uses: count, with: {book: a, flgs: -l}}\n",
            "StepTemplate 'count' has no param 'flgs' (did you mean 'flags'?)",
            "bad.yaml:6:",
        ),
        (
            "    - {name: x, uses: count, with: {flags: -l}}\n",
            "StepTemplate 'count' needs param 'book'",
            "bad.yaml:6:",
        ),
        (
            '    - {name: x, uses: count, with: {book: "{{ params.b }}"}}\n',
            "with: values are data, not templates",
            "bad.yaml:6:",
        ),
        ("    - {name: x}\n", "missing required field 'run'", "bad.yaml:6:"),
        ("    - {name: x, uses: 5}\n", "expected a string", "bad.yaml:6:"),
        ("    - {name: x, uses: count, with: [a]}\n", "expected a mapping", "bad.yaml:6:"),
        (
            "    - {name: x, uses: count, with: {}}\n    - {name: y, uses: count, with: {book: ''}}\n",
            "needs param 'book'",
            "bad.yaml:6:",
        ),
    ],
)
def test_a_bad_use_is_one_positioned_error(books: Repo, body: str, says: str, where: str) -> None:
    _invalid(books, _steps(body), says, where)


def test_a_misspelt_param_inside_the_template_is_reported_at_each_use(books: Repo) -> None:
    books.write("templates/count.yaml", TEMPLATE.replace("params.flags", "params.flgs"))
    p = books.orch("validate")
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if "no param named 'flgs'" in line]
    # only a: b writes its own run, which does not read it
    assert [line.split(":")[0:2] for line in lines] == [["wf.yaml", "6"]]
    assert "from StepTemplate 'count'" in lines[0]


def test_a_template_that_uses_another_is_refused(books: Repo) -> None:
    nested = TEMPLATE.replace("name: count", "name: nested") + "  uses: count\n"
    _invalid(books, nested, "templates do not nest", "bad.yaml:")


def test_a_duplicate_template_name_is_refused(books: Repo) -> None:
    _invalid(books, TEMPLATE, "duplicate StepTemplate name 'count'", "")


def test_a_template_syntax_error_is_positioned_in_the_template(books: Repo) -> None:
    broken = TEMPLATE.replace("name: count", "name: broken").replace(
        "run: mkdir", "run: echo {{ params.book\n  # mkdir"
    )
    _invalid(books, broken, "template error", "bad.yaml:")


def test_an_unknown_template_field_gets_a_suggestion(books: Repo) -> None:
    bad = TEMPLATE.replace("name: count", "name: other").replace("  inputs:", "  inptus:")
    _invalid(books, bad, "unknown field 'inptus' (did you mean 'inputs'?)", "bad.yaml:")


@pytest.mark.parametrize(
    "broken", ["{{ params.flags", "${{ params.flags }}"], ids=["syntax", "unquotable spot"]
)
def test_an_error_in_a_used_templates_run_is_said_once(books: Repo, broken: str) -> None:
    books.write("templates/count.yaml", TEMPLATE.replace("{{ params.flags }}", broken))
    p = books.orch("validate")
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if "template error" in line]
    assert len(lines) == 1 and lines[0].startswith("templates/count.yaml:9:"), p.stderr


def test_a_bad_name_in_a_merged_env_value_says_it_is_the_templates(books: Repo) -> None:
    """b has an env of its own: the template's FROM_TEMPLATE still comes from the template."""
    books.write(
        "templates/count.yaml",
        TEMPLATE.replace("FROM_TEMPLATE: t", 'FROM_TEMPLATE: "{{ params.nope }}"'),
    )
    p = books.orch("validate")
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if "no param named 'nope'" in line]
    assert len(lines) == 2 and all("from StepTemplate 'count'" in line for line in lines), lines
