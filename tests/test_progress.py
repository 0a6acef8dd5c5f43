"""The live progress display of apply (runner.cli.progress) under a real pseudo-terminal,
the plain lines everywhere else, and apply's -q and -v."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from tests.conftest import Repo, workflow

STEPS = (
    '    - {name: first, run: "sleep 0.3; echo from-first"}\n'
    '    - {name: second, run: "echo from-second", needs: [first]}\n'
)
FAILING = '    - {name: bad, run: "echo boom; exit 3"}\n'
SGR = re.compile(r"\x1b\[[0-9;]*m")  # colours and styles


def on_terminal(repo: Repo, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``orch -C repo ARGS`` with a pseudo-terminal as stdout and stderr (a person at a
    terminal): its exit code and all it wrote."""
    leader, follower = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "GITHUB_ACTIONS")}
    full_env |= {"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40", **(env or {})}
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=full_env,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            if p.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = p.wait(timeout=30)
    os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_gets_a_live_display_above_the_plain_summary(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    code, out = on_terminal(repo, "apply")
    assert code == 0, out
    assert "0/2 done" in out  # the display, drawn when the run started
    assert "running w/first" in out  # a running task with its elapsed time
    assert "from-first" in out  # the task's output scrolled above it
    assert re.search(r"Run \d+ .*ok.* in [0-9.]+s: 2 succeeded\.", out)


def test_the_eta_comes_from_recorded_durations(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    assert repo.orch("apply").returncode == 0  # records how long each step took
    code, out = on_terminal(repo, "apply", "--force-all")
    assert code == 0, out
    assert re.search(r"0/2 done, ETA ~\d+s", out), out


def test_a_failure_shows_as_it_happens_and_in_the_count(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", FAILING))
    code, out = on_terminal(repo, "apply")
    assert code == 1
    assert "!! w/bad: failed, exit 3" in out
    assert "1/1 done, 1 failed" in out  # counted in the display
    assert "FAILED" in out


def test_no_color_draws_the_display_without_colour(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    code, out = on_terminal(repo, "apply", env={"NO_COLOR": "1"})
    assert code == 0, out
    assert "0/2 done" in out
    assert not SGR.search(out), repr(out)


def test_with_color_the_terminal_gets_styles(repo: Repo) -> None:
    """The other side of the NO_COLOR test: a terminal without it is painted."""
    repo.write("wf.yaml", workflow("w", STEPS))
    code, out = on_terminal(repo, "apply")
    assert code == 0, out
    assert SGR.search(out)


def test_not_a_terminal_prints_the_plain_lines_without_escape_codes(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout + p.stderr
    assert "done" not in p.stderr  # no display
    lines = p.stderr.splitlines()
    assert lines[0].startswith("> w/first (")
    assert "ok w/first " in p.stderr and "ok w/second " in p.stderr


def test_github_actions_keeps_the_ci_output_on_a_terminal(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    code, out = on_terminal(repo, "apply", env={"GITHUB_ACTIONS": "true"})
    assert code == 0, out
    assert "::group::" in out
    assert "done" not in out.replace("Run", "")


RICH_LOADED = """
import sys
from runner.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
sys.stderr.write(f"\\nrich loaded: {'rich' in sys.modules}\\n")
"""


@pytest.mark.parametrize("args", [["--version"], ["plan"], ["apply"]])
def test_rich_is_not_imported_off_a_terminal(repo: Repo, args: list[str]) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    p = subprocess.run(
        [sys.executable, "-c", RICH_LOADED, "-C", str(repo.path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "rich loaded: False" in p.stderr, p.stderr


def test_rich_is_not_imported_by_a_no_op_apply_on_a_terminal(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    assert repo.orch("apply").returncode == 0
    code, out = on_terminal(repo, "apply")  # a no-op: nothing to draw
    assert code == 0, out
    assert "Up to date" in out
    leader, follower = pty.openpty()
    try:
        p = subprocess.run(
            [sys.executable, "-c", RICH_LOADED, "-C", str(repo.path), "apply"],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert "rich loaded: False" in p.stderr, p.stderr


def test_quiet_prints_only_failures_and_the_summary(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS + FAILING))
    p = repo.orch("apply", "-q")
    assert p.returncode == 1
    assert p.stdout == ""  # no task output
    lines = [line for line in p.stderr.splitlines() if line]
    assert lines[0].startswith("!! w/bad: failed, exit 3")
    assert lines[1].startswith("Run ") and "FAILED" in lines[1]
    assert len(lines) == 2, p.stderr


def test_verbose_adds_each_attempt_and_quiet_steps(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    assert repo.orch("apply").returncode == 0
    repo.write(
        "wf.yaml",
        workflow("w", STEPS + '    - {name: third, run: "echo third", needs: [second]}\n'),
    )
    plain = repo.orch("apply")
    assert "= w/first" not in plain.stderr and "attempt" not in plain.stderr
    repo.write(
        "wf.yaml",
        workflow("w", STEPS + '    - {name: third, run: "echo 3rd", needs: [second]}\n'),
    )
    p = repo.orch("apply", "-v")
    assert p.returncode == 0, p.stderr
    assert "= w/first: up to date" in p.stderr
    assert "$ echo 3rd" in p.stderr  # the command as rendered
    assert "$ echo" not in plain.stderr
    assert re.search(r"w/third attempt 1: succeeded, exit 0, [0-9.]+s", p.stderr), p.stderr


def test_watch_draws_the_display_on_a_terminal_and_stops_cleanly(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS))
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "GITHUB_ACTIONS")}
    p = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "watch", "-v"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env | {"TERM": "xterm-256color", "COLUMNS": "100"},
    )
    os.close(follower)
    out = ""
    try:
        deadline = time.monotonic() + 60
        while "watch: cycle 1" not in out and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                out += os.read(leader, 65536).decode("utf-8", "replace")
        p.send_signal(2)  # Ctrl-C: an orderly stop
        assert p.wait(timeout=30) == 0
        while select.select([leader], [], [], 0.5)[0]:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            out += data.decode("utf-8", "replace")
    finally:
        if p.poll() is None:
            p.kill()
        os.close(leader)
    assert "0/2 done" in out and "running w/first" in out  # the display
    assert re.search(r"w/first attempt 1: succeeded, exit 0", out)  # -v
    assert "watch: cycle 1: start -> 2 ran, 0 failed" in out
    assert "watch: stopped after 1 cycle" in out


def test_the_eta_spreads_over_the_jobs_the_run_has() -> None:
    """The ETA divides the work left over the run's slots, as ``run-started`` gives them
    (``-j``, else the config's ``jobs:``, else the CPUs), not over ``-j`` alone."""
    from runner.cli.progress import Display

    keys = [("w", f"s{i}") for i in range(4)]
    shown = {}
    for jobs in (1, 4):
        d = Display(False, 0, lambda: dict.fromkeys(keys, 10.0))  # -j not given
        d.event({"event": "run-started", "run": 1, "jobs": jobs})
        for w, s in keys:
            d.event({"event": "planned", "workflow": w, "step": s, "action": "run"})
        shown[jobs] = d.eta(time.monotonic())
    assert shown == {1: "~40s", 4: "~10s"}


@pytest.mark.parametrize(("config", "args", "jobs"), [(3, [], 3), (3, ["-j", "2"], 2)])
def test_run_started_carries_the_runs_jobs(
    repo: Repo, config: int, args: list[str], jobs: int
) -> None:
    import json

    repo.write(".orch/config.yaml", f"apiVersion: orch/v1\nkind: Config\njobs: {config}\n")
    repo.write("wf.yaml", workflow("w", STEPS))
    p = repo.orch("apply", "--events", "-", *args)
    assert p.returncode == 0, p.stderr
    started = [e for e in map(json.loads, p.stdout.splitlines()) if e["type"] == "run.started"]
    assert [e["jobs"] for e in started] == [jobs]
