"""Text from the repository never prints raw (fault kind 11): no forged lines, no escapes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from runner.render import paint, shown, table
from tests.conftest import Repo, workflow

EVIL = "x\n::error file=w.yaml::forged\x1b]0;pwned\x07"


def forged(*outputs: str) -> list[str]:
    """Lines a CI runner or terminal would take for commands: a workflow command or an
    escape sequence anywhere."""
    lines = [line for out in outputs for line in out.splitlines()]
    return [line for line in lines if line.startswith("::") or "\x1b]" in line]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain/path.txt", "plain/path.txt"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("bell\x07esc\x1b[2Jdel\x7fc1\x85", "bell\\x07esc\\x1b[2Jdel\\x7fc1\\x85"),
        ("\u202eevil\u2066 \u2028", "\\u202eevil\\u2066 \\u2028"),
        ("caf\udcff", "caf\\xff"),  # a byte that is not UTF-8, as os.fsdecode keeps it
        ("ünïcödé 名前", "ünïcödé 名前"),
    ],
)
def test_shown_escapes_control_characters_only(raw: str, expected: str) -> None:
    assert shown(raw) == expected
    assert "\n" not in shown(raw)


def test_paint_shows_its_text_and_tables_show_every_cell() -> None:
    assert paint("a\nb", "red", True) == "\x1b[31ma\\nb\x1b[0m"
    assert shown(paint("ok", "green", True)) == "\x1b[32mok\x1b[0m"  # our colours stay
    out = table([["a\nb", paint("c", "red", True)]], ["X", "Y"])
    assert out.splitlines()[1] == "a\\nb  \x1b[31mc\x1b[0m"


def test_a_glob_matches_a_file_name_with_a_newline() -> None:
    from runner.globs import match

    assert match("src/**", "src/x\n::error::y")
    assert match("src/*.txt", "src/a\nb.txt")


@pytest.fixture
def evil_repo(repo: Repo) -> Repo:
    repo.write(
        "w.yaml",
        workflow(
            "w",
            "    - {name: a, run: 'test ! -e src/fail', inputs: ['src/**']}\n"
            "    - {name: b, run: 'true', needs: [a]}\n",
        ),
    )
    repo.write("src/ok.txt", "1\n")
    repo.commit()
    assert repo.orch("apply").returncode == 0
    repo.write(f"src/{EVIL}", "2\n")
    repo.commit("a file named to forge a line")
    return repo


def test_plan_apply_status_history_never_print_a_forged_line(evil_repo: Repo) -> None:
    p = evil_repo.orch("plan")
    assert p.returncode == 0, p.stderr
    assert "input changed: src/x\\n::error file=w.yaml::forged\\x1b]0;pwned\\x07" in p.stdout
    outs = [p.stdout, p.stderr]
    evil_repo.write("src/fail", "")
    for verb in (["apply"], ["status"], ["history", "--tasks"], ["task", "list"]):
        p = evil_repo.orch(*verb)
        outs += [p.stdout, p.stderr]
    assert forged(*outs) == []


def test_json_keeps_the_exact_text(evil_repo: Repo) -> None:
    data = evil_repo.orch_json("plan")
    (a,) = [s for s in data["steps"] if s["step"] == "a"]
    assert f"input changed: src/{EVIL}" in a["reasons"]


def test_junit_messages_are_shown(tmp_path: Path) -> None:
    from runner.junit import write_junit
    from runner.reconcile.results import ApplyResult, StepResult

    results = [
        StepResult("w", "a", "failed", exit_code=1, message=f"cannot read src/{EVIL}"),
        StepResult("w", "b", "skipped", reasons=[f"input changed: src/{EVIL}"]),
    ]
    write_junit(tmp_path / "r.xml", ApplyResult(1, results, 1.0), tmp_path)
    root = ET.parse(tmp_path / "r.xml").getroot()
    messages = [el.get("message", "") for el in root.iter() if el.tag in ("failure", "skipped")]
    assert len(messages) == 2
    for m in messages:
        assert "src/x\\n::error file=w.yaml::forged" in m, m
        assert "\n" not in m and "\x1b" not in m


def test_github_annotations_never_carry_a_forged_command(repo: Repo) -> None:
    name = "x\n::error file=w.yaml::forged.yaml"
    repo.write(
        name, "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: w}\nspec: {stepz: []}\n"
    )
    p = repo.orch("validate", "--format", "github")
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines and all(line.startswith("::error file=x\\n%3A%3Aerror") for line in lines), lines


def test_error_lines_show_repository_text(repo: Repo) -> None:
    repo.write(
        "w.yaml", workflow("w", "    - {name: a, run: 'true', needs: [\"b\\n::error::x\"]}\n")
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    assert forged(p.stdout, p.stderr) == []
    assert "b\\n::error::x" in p.stderr


def test_graph_escapes_quotes_for_dot_and_mermaid(repo: Repo) -> None:
    repo.write(
        "w.yaml",
        workflow("w", "    - {name: a, run: 'true'}\n    - {name: b, run: 'true', needs: [a]}\n"),
    )
    p = repo.orch("graph", "w", "--format", "dot")
    assert p.returncode == 0, p.stderr
    assert '"a" -> "b"' in p.stdout
