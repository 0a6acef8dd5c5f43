"""``orch apply|watch --events``: versioned JSON lines, validated against schemas/events.json."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import Repo, workflow

SCHEMA = json.loads((Path(__file__).parent.parent / "schemas" / "events.json").read_text())
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse(text: str) -> list[dict[str, Any]]:
    """Every line one event, each valid against the schema."""
    validator = Draft202012Validator(SCHEMA)
    events = [json.loads(line) for line in text.splitlines()]
    for ev in events:
        errors = [e.message for e in validator.iter_errors(ev)]
        assert errors == [], (ev, errors)
        assert ev["v"] == 1 and ISO_UTC.match(ev["time"])
    return events


STEPS = """\
    - name: a
      run: echo made > a.txt
      outputs: [a.txt]
    - name: b
      needs: [a]
      run: exit 3
      retry: {limit: 1, backoff: 0.01}
    - name: c
      needs: [b]
      run: "true"
    - name: d
      when: "false"
      run: "true"
"""


def test_apply_writes_each_kind_of_event_with_the_run_id(repo: Repo) -> None:
    repo.write("orch.yaml", workflow("w", STEPS))
    p = repo.orch("apply", "--events", "ev.jsonl")
    assert p.returncode == 1, p.stderr
    events = parse(repo.read("ev.jsonl"))
    kinds = [(e["type"], e.get("step")) for e in events]
    assert kinds[0] == ("run.started", None)
    assert [k for k in kinds if k[0] == "step.planned"] == [("step.planned", s) for s in "abcd"]
    assert kinds[-1] == ("run.finished", None)
    run = events[0]["run"]
    assert isinstance(run, int) and all(e["run"] == run for e in events)
    by = {(e["type"], e.get("step"), e.get("attempt")): e for e in events}
    assert by[("task.retrying", "b", 1)]["exit_code"] == 3
    assert by[("task.retrying", "b", 1)]["delay"] is not None
    assert by[("task.finished", "b", 2)]["status"] == "failed"
    assert by[("task.finished", "a", 1)]["exit_code"] == 0
    assert by[("step.finished", "a", None)]["status"] == "succeeded"
    assert by[("step.blocked", "c", None)]["reasons"] == ["upstream failed: b"]
    assert by[("step.skipped", "d", None)]["status"] == "skipped"
    end = events[-1]
    assert end["ok"] is False and end["counts"] == {
        "succeeded": 1,
        "failed": 1,
        "blocked": 1,
        "skipped": 1,
    }
    # each task started before it finished, each step planned before it started
    order = [(e["type"], e.get("step")) for e in events]
    assert order.index(("step.planned", "a")) < order.index(("step.started", "a"))
    assert order.index(("task.started", "a")) < order.index(("task.finished", "a"))
    # matches what the state recorded
    hist = repo.orch_json("history")
    assert hist[0]["id"] == run


def test_events_to_stdout_leave_nothing_else_there(repo: Repo) -> None:
    repo.write("orch.yaml", workflow("w", "    - name: a\n      run: echo task-output\n"))
    p = repo.orch("apply", "--events", "-")
    assert p.returncode == 0, p.stderr
    events = parse(p.stdout)  # every line of stdout is an event
    assert [e["type"] for e in events][-1] == "run.finished"
    assert "task-output" not in p.stdout
    # a no-op apply: no run began, one run.finished saying so
    again = parse(repo.orch("apply", "--events", "-").stdout)
    assert [(e["type"], e["run"], e["ok"]) for e in again] == [("run.finished", None, True)]


def test_events_are_appended_and_relative_to_dash_c(repo: Repo, tmp_path: Path) -> None:
    repo.write("orch.yaml", workflow("w", "    - name: a\n      run: 'true'\n"))
    out = subprocess.run(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "--events", "e.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    first = len(parse(repo.read("e.jsonl")))
    assert repo.orch("apply", "--force-all", "--events", "e.jsonl").returncode == 0
    events = parse(repo.read("e.jsonl"))
    assert len(events) > first and [e["type"] for e in events].count("run.started") == 2


def test_secrets_and_control_characters_are_data_never_raw(repo: Repo) -> None:
    tok = "hunter2-secret-value"
    steps = """\
    - name: a
      secrets: [TOK]
      run: echo "no equals sign $TOK" >> $ORCH_OUTPUT
    - name: b
      inputs: ["in/*"]
      run: "true"
"""
    repo.write("orch.yaml", workflow("w", steps))
    odd = "in/\x1b[31mred\u00e9\nline"
    repo.write(odd, "x")
    assert repo.orch("apply", env={"TOK": tok}).returncode == 1
    repo.write(odd, "changed")
    p = repo.orch("apply", "--events", "-", env={"TOK": tok})
    assert tok not in p.stdout and "\x1b" not in p.stdout
    assert all(line.isascii() for line in p.stdout.splitlines())
    events = parse(p.stdout)
    a = next(e for e in events if e["type"] == "step.finished" and e["step"] == "a")
    assert "no equals sign ***" in a["message"]
    b = next(e for e in events if e["type"] == "step.planned" and e["step"] == "b")
    assert any(odd in r for r in b["reasons"])  # the name, whole, as JSON data


def test_an_unwritable_events_file_is_one_line_and_changes_nothing(repo: Repo) -> None:
    repo.write("orch.yaml", workflow("w", "    - name: a\n      run: touch ran\n"))
    p = repo.orch("apply", "--events", "no/such/dir/e.jsonl")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--events no/such/dir/e.jsonl" in lines[0]
    assert not repo.exists("ran") and not repo.exists(".orch/state.db")
    j = repo.orch("apply", "--events", "no/such/dir/e.jsonl", "--json")
    assert j.returncode == 1 and json.loads(j.stdout)["exit"] == 1


def test_an_apply_that_fails_to_load_ends_the_stream_with_its_error(repo: Repo) -> None:
    repo.write("orch.yaml", workflow("w", "    - name: a\n      run: [\n"))
    p = repo.orch("apply", "--events", "e.jsonl")
    assert p.returncode == 1
    events = parse(repo.read("e.jsonl"))
    assert [(e["type"], e["run"], e["ok"]) for e in events] == [("run.finished", None, False)]
    assert "orch.yaml" in events[0]["error"]


def test_an_apply_the_machine_refuses_ends_the_stream_with_the_clis_line(repo: Repo) -> None:
    """A read-only ``.orch/``: ``run.finished``'s ``error`` is the one line orch prints
    (what failed and what to do), not a Python exception's repr."""
    from tests.test_environment import read_only

    repo.write("orch.yaml", workflow("w", "    - name: a\n      run: touch ran\n"))
    assert repo.orch("plan").returncode == 0  # .orch/ exists
    with read_only(repo.path / ".orch"):
        p = repo.orch("apply", "--events", "-")
    assert p.returncode == 1
    finished = json.loads(p.stdout.splitlines()[0])
    assert (finished["type"], finished["ok"]) == ("run.finished", False)
    assert finished["error"] == p.stderr.strip().removeprefix("orch: ")
    assert "Errno" not in finished["error"] and "writable" in finished["error"]


@pytest.mark.slow
def test_watch_streams_each_cycle(repo: Repo) -> None:
    repo.write("orch.yaml", workflow("w", "    - name: a\n      run: 'true'\n"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "watch", "--events", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if '"run.finished"' in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=30)
    events = parse("".join(lines) + rest)
    end = next(e for e in events if e["type"] == "run.finished")
    assert end["cycle"] == 1 and end["ok"] is True and end["changed"] == []
    assert "watch: cycle 1" in err  # the watch's own lines went to stderr
    # the audit log has its start (no exit code yet) and its stop
    rows = repo.orch_json("audit")
    assert [(r["argv"][-3:], r["exit_code"]) for r in rows] == [
        (["watch", "--events", "-"], None),
        (["watch", "--events", "-"], 0),
    ]
