"""`orch apply --junit`: the report CI systems render, parsed back and checked; and the
rest of the CI contract (JSON on stdout, exit codes, no colour when piped)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from runner.junit import write_junit
from runner.reconcile.results import ApplyResult, StepResult
from tests.conftest import Repo, workflow

NASTY = r"""printf 'bad \033[31mred\033[0m \001 & <tag> "q" ]]> \377\n'"""

APP = (
    workflow(
        "app",
        f"""\
    - name: build
      run: echo built
    - name: test
      needs: [build]
      run: for i in $(seq 1 200); do echo "line $i"; done; {NASTY}; exit 3
    - name: deploy
      needs: [test]
      run: echo deployed
    - name: docs
      run: echo docs
      when: false
""",
    )
    + "---\n"
    + workflow("lint", "    - name: ruff\n      run: echo clean\n")
)


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {f"{c.get('classname')}/{c.get('name')}": c for c in root.iter("testcase")}


def test_junit_report_of_a_failing_apply(repo: Repo) -> None:
    repo.write("wf.yaml", APP)
    repo.commit()
    p = repo.orch("apply", "--junit", "reports/junit.xml", "--json")
    assert p.returncode == 1, p.stderr
    assert json.loads(p.stdout)["ok"] is False
    assert "\x1b" not in p.stderr  # not a terminal: no colour

    root = ET.parse(repo.path / "reports" / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert [s.get("name") for s in root.iter("testsuite")] == ["app", "lint"]
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "0",
        "skipped": "2",
    }
    app = root.find("testsuite[@name='app']")
    assert app is not None and app.get("failures") == "1" and app.get("skipped") == "2"
    by = cases(root)
    assert sorted(by) == ["app/build", "app/deploy", "app/docs", "app/test", "lint/ruff"]
    assert list(by["app/build"]) == [] and list(by["lint/ruff"]) == []
    assert float(by["app/test"].get("time") or -1) >= 0

    failure = by["app/test"].find("failure")
    assert failure is not None and failure.get("type") == "failed"
    message = failure.get("message") or ""
    assert message.startswith("failed, exit 3 (log: .orch/logs/")
    log = repo.path / message.split("(log: ")[1].rstrip(")")
    assert log.is_file()
    tail = (failure.text or "").splitlines()
    assert "line 200" in tail and "line 1" not in tail and "line 150" not in tail
    assert 'bad red \\x01 & <tag> "q" ]]> \ufffd' in tail  # escapes gone, text intact

    blocked = by["app/deploy"].find("skipped")
    assert blocked is not None and (blocked.get("message") or "").startswith("blocked")
    skipped = by["app/docs"].find("skipped")
    assert skipped is not None and (skipped.get("message") or "").startswith("skipped")


def test_junit_of_an_up_to_date_apply_skips_every_step(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - name: a\n      run: echo a\n"))
    repo.commit()
    assert repo.orch("apply", "-q").returncode == 0
    out = repo.path / "junit.xml"
    out.write_text("old report\n")
    p = repo.orch("apply", "--junit", str(out))
    assert p.returncode == 0, p.stderr
    root = ET.parse(out).getroot()
    (case,) = root.iter("testcase")
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == "up-to-date"
    assert root.get("skipped") == "1" and root.find(".//properties") is None
    assert [f for f in os.listdir(repo.path) if f.endswith(".tmp")] == []


def test_status_mapping_and_escaping(tmp_path: Path) -> None:
    """Built from data: every status the reconciler can report lands where CI expects it."""
    (tmp_path / "t.log").write_bytes(b"".join(b"x%d\n" % i for i in range(100)) + b"\xff\x00end\n")
    weird = "w<&>\"'\x1b[1m\x07\ud800"
    result = ApplyResult(
        7,
        [
            StepResult(weird, "ok", "succeeded", duration=1.25),
            StepResult(weird, "slow", "timed_out", exit_code=None, message="timed out after 1s"),
            StepResult(weird, "flaky", "failed", exit_code=75, attempts=3, log_path="t.log"),
            StepResult(
                weird,
                "gone",
                "failed",
                exit_code=1,
                log_path="missing.log",
                log_tail=["from memory"],
            ),  # fmt: skip
            StepResult(weird, "stopped", "cancelled"),
            StepResult(weird, "ctrl-c", "interrupted"),
            StepResult(weird, "open", "circuit_open", reasons=["breaker api is open"]),
        ],
        duration=2.0,
    )
    out = tmp_path / "deep" / "dir" / "r.xml"
    write_junit(out, result, tmp_path)
    root = ET.parse(out).getroot()
    (suite,) = root.iter("testsuite")
    assert suite.get("name") == "w<&>\"'\\x07\\xd800"
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "7",
        "failures": "3",
        "errors": "2",
        "skipped": "1",
    }
    assert root.get("time") == "2.000" and suite.get("time") == "1.250"
    prop = suite.find("properties/property")
    assert prop is not None and prop.get("value") == "7"
    by = {c.get("name"): c for c in suite.iter("testcase")}
    kinds = {n: [(e.tag, e.get("type")) for e in c] for n, c in by.items()}
    assert kinds == {
        "ok": [],
        "slow": [("failure", "timed_out")],
        "flaky": [("failure", "failed")],
        "gone": [("failure", "failed")],
        "stopped": [("error", "cancelled")],
        "ctrl-c": [("error", "interrupted")],
        "open": [("skipped", None)],
    }
    flaky = by["flaky"][0]
    assert flaky.get("message") == "failed, exit 75, after 3 attempts (log: t.log)"
    assert (flaky.text or "").splitlines()[-2:] == ["x99", "\ufffd\\x00end"]
    assert len((flaky.text or "").splitlines()) == 50
    assert by["gone"][0].text == "from memory"
    assert by["slow"][0].get("message") == "timed out: timed out after 1s"
    assert by["open"][0].get("message") == "circuit open: breaker api is open"


def test_junit_replaces_a_report_whole(tmp_path: Path) -> None:
    out = tmp_path / "r.xml"
    out.write_text("previous")
    write_junit(out, ApplyResult(None, [], 0.0), tmp_path)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "0" and list(root) == []
    assert sorted(os.listdir(tmp_path)) == ["r.xml"]


# -- the rest of the CI contract ----------------------------------------------------------


def test_validate_github_annotations(repo: Repo) -> None:
    repo.write("good.yaml", workflow("good", "    - name: s\n      run: echo\n"))
    p = repo.orch("validate", "--format", "github")
    assert (p.returncode, p.stdout) == (0, "")

    repo.write("a,b:c.yaml", workflow("a", "    - name: s\n      run: echo\n      re%try: 1\n"))
    repo.write("d.yaml", workflow("d", "    - name: s\n      run: echo\n      needs: [nope]\n"))
    p = repo.orch("validate", "--format", "github")
    assert p.returncode == 1
    assert p.stdout.splitlines() == [
        # a ',' or ':' would end the file property; '%' starts an escape
        "::error file=a%2Cb%3Ac.yaml,line=8,col=7,title=orch validate::"
        "spec.steps[0].re%25try: unknown field 're%25try' (did you mean 'retry'?)",
        "::error file=d.yaml,line=8,col=15,title=orch validate::"
        "spec.steps[0].needs[0]: no step named 'nope'",
    ]


def test_exit_codes_json_and_colour(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - name: a\n      run: echo a\n"))
    repo.commit()
    assert repo.orch("plan", "--no-such-flag").returncode == 2
    p = repo.orch("apply")
    assert p.returncode == 0 and "ok w/a" in p.stderr and "\x1b" not in p.stdout + p.stderr
    assert repo.orch_json("status")["steps"][0]["status"] == "succeeded"
    assert [r["status"] for r in repo.orch_json("history")] == ["succeeded"]
    p = repo.orch("apply", "--force-all", env={"FORCE_COLOR": "1"})
    assert "\x1b[32mok w/a" in p.stderr  # the same output on a terminal is coloured
