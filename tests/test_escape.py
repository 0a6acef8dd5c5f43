"""Processes that try to escape: a runner ended by SIGTERM or SIGHUP, a grandchild that
clears its environment, double-forks and calls ``setsid``, a runner killed while another
waits for its step, and ``on:`` handlers. All through real ``orch`` processes."""

from __future__ import annotations

import os
import signal

import pytest

from tests.conftest import Repo
from tests.test_resilience import (
    LONG,
    alive,
    background_apply,
    pid_of,
    setup,
    wf,
)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_end_a_run_as_ctrl_c_does(repo: Repo, sig: int, code: int) -> None:
    steps = [{"name": "a", "run": LONG}, {"name": "b", "run": "true", "needs": ["a"]}]
    handlers = {
        "always": [{"run": "echo always >> notify.log"}],
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
    assert repo.read("notify.log").split() == ["always"]  # handlers told, as for Ctrl-C
