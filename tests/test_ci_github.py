"""GitHub Actions output of ``orch apply`` (GITHUB_ACTIONS=true): log groups, error
annotations on the step's manifest line, the step summary; and reports of interrupted runs.
All through the real CLI, with a temporary file as ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import os
import re
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import Repo
from tests.test_resilience import LONG, background_apply, pid_of, setup, wf

# two tasks that print in turns, so that output printed as it came would interleave
PARALLEL = """\
apiVersion: orch/v1
kind: Workflow
metadata:
  name: app
spec:
  steps:
    - name: left
      run: for i in 1 2 3 4; do echo "left $i"; sleep 0.05; done
    - name: right
      run: |
        for i in 1 2 3 4; do echo "right $i"; sleep 0.05; done
        echo '::endgroup::'; echo '::error file=x.yaml::forged'
    - name: broken
      needs: [left]
      run: echo "going down"; exit 3
"""


def gh_env(tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}


def groups(stdout: str) -> dict[str, list[str]]:
    """{title: lines} of the ::group:: blocks, read as GitHub's runner reads them: a
    ::stop-commands::TOKEN line pauses commands until ::TOKEN::."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    paused: str | None = None
    for line in stdout.splitlines():
        if paused is not None:
            if line == f"::{paused}::":
                paused = None
            else:
                assert current is not None
                out[current].append(line)
            continue
        if line.startswith("::group::"):
            assert current is None, "groups do not nest"
            current = line.removeprefix("::group::")
            out[current] = []
        elif line.startswith("::stop-commands::"):
            paused = line.removeprefix("::stop-commands::")
        elif line == "::endgroup::":
            current = None
        elif current is not None:
            out[current].append(line)
    assert current is None and paused is None
    return out


def commands(stdout: str) -> list[str]:
    """The lines GitHub would act on as workflow commands (outside any pause)."""
    acted, paused = [], None
    for line in stdout.splitlines():
        if paused is not None:
            paused = None if line == f"::{paused}::" else paused
            continue
        if line.lstrip().startswith("::"):
            if line.startswith("::stop-commands::"):
                paused = line.removeprefix("::stop-commands::")
            acted.append(line)
    return acted


def line_of(repo: Repo, rel: str, text: str) -> int:
    return next(i for i, s in enumerate(repo.read(rel).splitlines(), 1) if text in s)


def test_each_task_is_one_group_failures_are_annotated_and_summarised(
    repo: Repo, tmp_path: Path
) -> None:
    repo.write("wf.yaml", PARALLEL)
    repo.commit()
    p = repo.orch("apply", "-j", "2", env=gh_env(tmp_path))
    assert p.returncode == 1, p.stderr
    got = groups(p.stdout)
    assert got["app/left"] == [f"left {i}" for i in range(1, 5)]
    assert got["app/right"] == [
        *(f"right {i}" for i in range(1, 5)),
        "::endgroup::",
        "::error file=x.yaml::forged",
    ]  # shown as text, inside its own group
    assert got["app/broken"] == ["going down"]
    acted = commands(p.stdout)
    errors = [c for c in acted if c.startswith("::error")]
    line = line_of(repo, "wf.yaml", "- name: broken")
    assert len(errors) == 1
    assert errors[0].startswith(f"::error file=wf.yaml,line={line},title=orch%3A app/broken::")
    assert "exit 3" in errors[0] and ".orch/logs/1/app/broken.1.log" in errors[0]
    assert not any("forged" in c for c in acted)

    summary = (tmp_path / "summary.md").read_text()
    rows = [r for r in summary.splitlines() if r.startswith("| app/")]
    cells = {r.split(" | ")[0].removeprefix("| "): r.split(" | ")[1:] for r in rows}
    assert set(cells) == {"app/left", "app/right", "app/broken"}
    assert cells["app/broken"][0] == "failed"
    assert cells["app/broken"][2].startswith("exit 3")
    assert cells["app/left"][0] == "succeeded"
    assert "failed (run 1" in summary.splitlines()[0]

    # a second run appends its own table (GitHub joins the summaries of a job's steps)
    p = repo.orch("apply", env=gh_env(tmp_path))
    assert p.returncode == 1
    assert (tmp_path / "summary.md").read_text().count("| step | status |") == 2


def test_a_manifest_name_cannot_break_the_annotation(repo: Repo, tmp_path: Path) -> None:
    """A manifest named with ``,``, ``:`` and ``%`` stays one ``file=`` property."""
    name = "a,b:c%d.yaml"
    repo.write(
        name,
        PARALLEL.replace("name: app", "name: odd"),
    )
    repo.commit()
    p = repo.orch("apply", "odd", env=gh_env(tmp_path))
    assert p.returncode == 1, p.stderr
    errors = [c for c in commands(p.stdout) if c.startswith("::error")]
    assert len(errors) == 1
    props, _, message = errors[0].removeprefix("::error ").partition("::")
    assert props.split(",")[0] == "file=a%2Cb%3Ac%25d.yaml"
    assert "\n" not in message
    assert props.split(",")[1] == f"line={line_of(repo, name, '- name: broken')}"


def test_outside_actions_output_is_unchanged(repo: Repo, tmp_path: Path) -> None:
    repo.write("wf.yaml", PARALLEL)
    repo.commit()
    p = repo.orch("apply", env={"GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")})
    assert p.returncode == 1
    assert "::" not in "".join(line[:2] for line in p.stdout.splitlines())
    assert "[left] left 1" in p.stdout
    assert not (tmp_path / "summary.md").exists()


def test_json_keeps_stdout_json_and_still_writes_the_summary(repo: Repo, tmp_path: Path) -> None:
    repo.write("wf.yaml", PARALLEL)
    repo.commit()
    p = repo.orch("apply", "--json", env=gh_env(tmp_path))
    assert p.returncode == 1
    import json

    assert json.loads(p.stdout)["ok"] is False
    assert "| app/broken | failed |" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_an_interrupted_run_still_writes_junit_and_the_summary(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in gh_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    steps = [
        {"name": "quick", "run": "echo quick"},
        {"name": "a", "run": f"echo started; {LONG}", "needs": ["quick"]},
        {"name": "b", "run": "true", "needs": ["a"]},
    ]
    setup(repo, wf("w", steps))
    with background_apply(repo, "--junit", "reports/orch.xml") as proc:
        pid_of(repo, "sh.pid")  # a is running
        os.kill(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 143, err
    root = ET.parse(repo.path / "reports" / "orch.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"quick", "a", "b"}
    assert list(cases["quick"]) == []  # passed
    assert cases["a"].find("error") is not None  # interrupted
    assert cases["b"].find("skipped") is not None  # never started
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### orch apply: interrupted")
    assert re.search(r"^\| w/a \| interrupted \|", summary, re.M)


def test_a_big_summary_counts_up_to_date_steps_instead_of_listing_them(
    repo: Repo, tmp_path: Path
) -> None:
    steps = "".join(f"    - {{name: s{i}, run: 'true'}}\n" for i in range(101))
    repo.write(
        "wf.yaml",
        f"apiVersion: orch/v1\nkind: Workflow\nmetadata: {{name: big}}\nspec:\n  steps:\n{steps}",
    )
    repo.commit()
    env = gh_env(tmp_path)
    assert repo.orch("apply", env=env).returncode == 0
    text = (tmp_path / "summary.md").read_text()
    assert text.count("| big/s") == 101  # what ran is listed, every step
    (tmp_path / "summary.md").unlink()
    repo.write(
        "wf.yaml", repo.read("wf.yaml").replace("name: s0, run: 'true'", "name: s0, run: 'exit 4'")
    )
    assert repo.orch("apply", env=env).returncode == 1
    text = (tmp_path / "summary.md").read_text()
    (row,) = [r for r in text.splitlines() if r.startswith("| big/")]
    assert row.startswith("| big/s0 | failed | ") and row.endswith(" | exit 4 |")
    assert "_100 steps up to date, not listed_" in text


def test_repository_text_stays_text_in_the_summary_and_the_log(repo: Repo, tmp_path: Path) -> None:
    """A committed file name with a newline, a pipe and markup: it shows up in a reason
    (input changed: ...) and must stay inside its table cell, as text."""
    evil = "x|<img src=y>\n::error file=w.yaml::forged.txt"
    repo.write(
        "wf.yaml",
        "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  steps:\n"
        "    - {name: s, run: 'ls src', inputs: ['src/*']}\n",
    )
    (repo.path / "src").mkdir()
    (repo.path / "src" / evil).write_text("1\n")
    repo.commit()
    env = gh_env(tmp_path)
    assert repo.orch("apply", env=env).returncode == 0
    (repo.path / "src" / evil).write_text("2\n")
    p = repo.orch("apply", env=env)
    assert p.returncode == 0, p.stderr
    assert not [c for c in commands(p.stdout) if "forged" in c]
    text = (tmp_path / "summary.md").read_text()
    rows = [r for r in text.splitlines() if r.startswith("| w/s |")]
    assert len(rows) == 2  # one per run, each one line
    assert "\\<img" in rows[1] and not re.search(r"(?<!\\)<", text)  # markup escaped
    assert rows[1].count(" | ") == 3  # the | in the name is escaped: still four cells
