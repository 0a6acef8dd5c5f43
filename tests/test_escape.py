"""Processes that try to escape: a runner ended by SIGTERM or SIGHUP, a grandchild that
clears its environment, double-forks and calls ``setsid``, a runner killed while another
waits for its step, and ``on:`` handlers. All through real ``orch`` processes."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.conftest import Repo
from tests.test_resilience import (
    LONG,
    alive,
    background_apply,
    pid_of,
    setup,
    wait_until,
    wf,
)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_end_a_run_as_ctrl_c_does(repo: Repo, sig: int, code: int) -> None:
    steps = [{"name": "a", "run": LONG}, {"name": "b", "run": "true", "needs": ["a"]}]
    handlers = {
        "always": [{"run": "echo always {{ workflow.status }} >> notify.log"}],
        "failure": [{"run": "echo failure >> notify.log"}],
    }
    setup(repo, wf("w", steps, on=handlers))
    with background_apply(repo) as proc:
        pids = [pid_of(repo, "bg.pid"), pid_of(repo, "sh.pid")]
        os.kill(proc.pid, sig)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == code, err
    assert not any(alive(p) for p in pids)
    status = {s["step"]: s["status"] for s in repo.orch_json("status")["steps"]}
    assert status == {"a": "interrupted", "b": "never-ran"}
    (run,) = repo.orch_json("history")
    assert run["status"] == "interrupted"
    assert [t["status"] for t in run["tasks"]] == ["interrupted"]
    # handlers told, as for Ctrl-C, that the run was interrupted (it said "succeeded")
    assert repo.read("notify.log").split() == ["always", "interrupted"]


def test_a_failing_on_handler_is_reported_not_ignored(repo: Repo) -> None:
    on = {"success": [{"run": "exit 3"}, {"run": "true"}], "always": [{"run": "exit 4"}]}
    setup(repo, wf("w", [{"name": "a", "run": "true"}], on=on))
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr  # a hook changes nothing of the apply's result
    assert "w: on: success handler 1 failed (exit 3)" in p.stderr
    assert ".orch/logs/1/w/on-success.1.log" in p.stderr
    assert "w: on: always handler 1 failed (exit 4)" in p.stderr
    assert "handler 2" not in p.stderr
    data = repo.orch_json("apply", "--force-all")
    assert [line.split(" (")[0] for line in data["hooks_failed"]] == [
        "workflow w: on: success handler 1 failed",
        "workflow w: on: always handler 1 failed",
    ]


def test_a_handler_that_leaves_a_background_process_does_not_hold_apply(repo: Repo) -> None:
    on = {"always": [{"run": "sleep 60 & echo $! > hbg.pid"}]}
    setup(repo, wf("w", [{"name": "a", "run": "true"}], on=on))
    p = repo.orch("apply", timeout=30)  # would wait 60 s for the sleep otherwise
    assert p.returncode == 0, p.stderr
    assert not alive(pid_of(repo, "hbg.pid"))


ESCAPEE = (
    "env -i sh -c 'echo $$ > orphan.pid; sleep 4; echo finished > orphan.txt' & "
    "echo $$ > hold.pid; wait"
)


@pytest.mark.slow
def test_a_claim_outlives_a_killed_runner_while_its_task_runs(repo: Repo) -> None:
    """Runner 1 is killed; its task's orphan (which cleared its environment, so no token
    finds it) still runs the step. Runner 2 must wait for it, not run the step beside it."""
    second = "test -e orphan.txt && echo after > second.txt || echo beside > second.txt"
    setup(repo, wf("w", [{"name": "a", "run": ESCAPEE}]))
    orphan = None
    try:
        with background_apply(repo) as proc:
            orphan = pid_of(repo, "orphan.pid")
            pid_of(repo, "hold.pid")
            proc.kill()  # kill -9: no cleanup of any kind
            proc.wait(timeout=10)
        repo.write("orch.yaml", wf("w", [{"name": "a", "run": second}]))
        p = repo.orch("apply", "--json", timeout=60)
        assert p.returncode == 0, p.stderr
        assert repo.read("second.txt").strip() == "after"
    finally:
        if orphan is not None and alive(orphan):
            os.kill(orphan, signal.SIGKILL)


DAEMON = """\
import os, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open("esc.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename("esc.tmp", "esc.pid")
time.sleep(60)
"""


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["timeout", "exit"])
def test_a_daemon_that_clears_its_environment_and_calls_setsid_is_swept(
    repo: Repo, ending: str
) -> None:
    """env -i (no token), a double fork (its parents gone before any sample) and setsid
    (out of the session): orch, the child subreaper, gets it back and ends it."""
    import sys

    wait = "sleep 30" if ending == "timeout" else "true"
    run = f"env -i {sys.executable} -c '{DAEMON}'; while [ ! -e esc.pid ]; do sleep 0.05; done; {wait}"
    setup(repo, wf("w", [{"name": "a", "run": run, "timeout": "2s"}]))
    # the sweep's own rule, not a task cgroup (which would end it anyway, where there is one)
    p = repo.orch("apply", "--json", timeout=60, env={"ORCH_CGROUPS": "off"})
    esc = None
    try:
        esc = pid_of(repo, "esc.pid")
        assert not alive(esc), p.stderr
    finally:
        if esc is not None and alive(esc):
            os.kill(esc, signal.SIGKILL)


def test_asking_about_a_claim_we_hold_keeps_it(tmp_path) -> None:
    from runner.store.state import State

    ours, other = State(tmp_path / ".orch"), State(tmp_path / ".orch")
    assert ours.try_claim("w/a")
    assert not ours.is_held_elsewhere("w/a")
    assert not other.try_claim("w/a")  # still ours
    assert other.is_held_elsewhere("w/a")
    ours.release("w/a")
    assert other.try_claim("w/a")


CLOSER = DAEMON.replace("os.setsid()", "os.setsid()\nos.closerange(0, 65536)")


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["timeout", "exit"])
def test_in_a_task_cgroup_a_daemon_that_also_closes_every_descriptor_is_ended(
    repo: Repo, ending: str
) -> None:
    """The one escape the sweep cannot see (env -i, double fork, setsid and every
    inherited descriptor closed: no token, no session, no marker) stays in the task's
    cgroup, and cgroup.kill ends it. Only where orch may make cgroups."""
    import sys

    from runner.execute import cgroups

    if cgroups.base() is None:
        pytest.skip("no writable cgroup v2 with cgroup.kill here")
    wait = "sleep 30" if ending == "timeout" else "true"
    run = f"env -i {sys.executable} -c '{CLOSER}'; while [ ! -e esc.pid ]; do sleep 0.05; done; {wait}"
    setup(repo, wf("w", [{"name": "a", "run": run, "timeout": "2s"}]))
    # the run's own pid names its cgroups: other runners (parallel test workers, other
    # checkouts on this machine) may hold cgroups of their own at the same time
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = proc.communicate(timeout=60)
    esc = None
    try:
        esc = pid_of(repo, "esc.pid")
        assert not alive(esc), err
        left = list(cgroups.base().glob(f"{cgroups.PREFIX}{proc.pid}-*"))
        assert not left, "task cgroups left"
    finally:
        if esc is not None and alive(esc):
            os.kill(esc, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("during", ["retry backoff", "on: handler"])
def test_sigterm_during_a_retry_backoff_or_an_on_handler_ends_the_run_cleanly(
    repo: Repo, during: str
) -> None:
    """The two waits outside a step's own process: a backoff between attempts (attempt 2
    recorded interrupted, never started) and an ``on:`` handler (its tree ended)."""
    if during == "retry backoff":
        steps = [
            {
                "name": "a",
                "run": "echo $$ > a.pid; exit 1",
                "retry": {"limit": 3, "backoff": "60s"},
            },
            {"name": "b", "run": LONG},
        ]
        on = {"always": [{"run": "echo always >> notify.log"}]}
    else:
        steps = [{"name": "a", "run": "echo $$ > a.pid"}]
        on = {"always": [{"run": "sleep 60 & echo $! > bg.pid; echo $$ > sh.pid; wait"}]}
    setup(repo, wf("w", steps, on=on))
    with background_apply(repo, "-j", "2") as proc:
        pid_of(repo, "a.pid")
        pids = [pid_of(repo, "bg.pid"), pid_of(repo, "sh.pid")]
        if during == "retry backoff":  # attempt 1 recorded failed: the backoff has begun
            wait_until(
                lambda: any(
                    t["step"] == "a" and t["status"] == "failed"
                    for t in repo.orch_json("task", "list")
                ),
                "attempt 1 failed",
            )
        os.kill(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
    assert not any(alive(p) for p in pids)
    (run,) = repo.orch_json("history")
    assert run["status"] == "interrupted"
    assert "running" not in [t["status"] for t in run["tasks"]]
    if during == "retry backoff":
        tries = sorted((t["step"], t["attempt"], t["status"]) for t in run["tasks"])
        assert tries == [("a", 1, "failed"), ("a", 2, "interrupted"), ("b", 1, "interrupted")]
        assert repo.read("notify.log").split() == ["always"]
