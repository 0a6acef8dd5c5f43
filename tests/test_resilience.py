"""Timeouts, cancel, Ctrl-C and killed runners, end to end with real processes.

Retries and circuit breakers are decided by the engine alone: they run in-process over
the fake executor in test_engine.py.

Every process a step starts writes its pid to a file, so the tests can check that the
whole tree is gone afterwards (a zombie waiting for init counts as gone). Runners that the
test kills or interrupts run in their own session, so a signal reaches only them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from tests.conftest import Repo


def wf(name: str, steps: list[dict[str, Any]], **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "orch/v1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {**spec, "steps": steps},
        }
    )


def setup(repo: Repo, *docs: str) -> None:
    repo.write(".gitignore", "*.pid\n*.log\nmode\ncount\n")
    repo.write("orch.yaml", "\n---\n".join(docs))
    repo.commit("init")


def wait_until(cond: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pid_of(repo: Repo, name: str) -> int:
    p = repo.path / name
    wait_until(lambda: p.exists() and p.read_text().strip(), name)
    return int(p.read_text())


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextmanager
def background_apply(repo: Repo, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``orch apply`` in its own session; killed (with its tree) if the test fails early."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def history_tasks(repo: Repo) -> list[dict[str, Any]]:
    return [t for r in repo.orch_json("history") for t in r["tasks"]]


def by_step(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in data["steps"]}


# -- timeouts -------------------------------------------------------------------------------

STUBBORN = """\
sh -c 'trap "" TERM; echo $$ > gc.pid; exec sleep 60' &
setsid sh -c 'echo $$ > detached.pid; exec sleep 60' &
echo $$ > child.pid
wait
"""


def test_timeout_ends_the_whole_tree_even_a_grandchild_ignoring_sigterm(repo: Repo) -> None:
    steps = [
        {"name": "stubborn", "run": STUBBORN},  # the workflow default timeout applies
        {"name": "after", "run": "true", "needs": ["stubborn"]},
        {"name": "quick", "run": "true"},
    ]
    setup(repo, wf("w", steps, defaults={"timeout": "1s"}))
    r = by_step(repo.apply())
    assert r["stubborn"]["status"] == "timed_out"
    assert r["after"]["status"] == "blocked"
    assert r["quick"]["status"] == "succeeded"
    pids = [pid_of(repo, n) for n in ("child.pid", "gc.pid", "detached.pid")]
    wait_until(lambda: not any(alive(p) for p in pids), "the tree to be gone", timeout=5)
    status = {s["step"]: s for s in repo.orch_json("status")["steps"]}
    assert status["stubborn"]["status"] == "timed_out"


# -- task control ---------------------------------------------------------------------------

LONG = "sleep 60 & echo $! > bg.pid; echo $$ > sh.pid; wait"


def test_cancel_from_another_process_ends_the_tree_and_blocks_descendants(repo: Repo) -> None:
    steps = [{"name": "long", "run": LONG}, {"name": "after", "run": "true", "needs": ["long"]}]
    setup(repo, wf("w", steps))
    with background_apply(repo) as proc:
        pids = [pid_of(repo, "bg.pid"), pid_of(repo, "sh.pid")]
        listed = repo.orch_json("task", "list")
        (task,) = [t for t in listed if t["step"] == "long" and t["status"] == "running"]
        p = repo.orch("task", "cancel", str(task["id"]))
        assert p.returncode == 0, p.stderr
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 1, err
    r = by_step(json.loads(out))
    assert (r["long"]["status"], r["after"]["status"]) == ("cancelled", "blocked")
    assert repo.orch_json("task", "status", str(task["id"]))["status"] == "cancelled"
    wait_until(lambda: not any(alive(p) for p in pids), "the tree to be gone", timeout=5)
    p = repo.orch("task", "cancel", str(task["id"]))
    assert p.returncode == 1 and "not running" in p.stderr


def test_killed_runner_allocation_is_reclaimed(repo: Repo) -> None:
    quota = (
        "apiVersion: orch/v1\nkind: ResourceQuota\nmetadata: {name: one}\n"
        'spec:\n  limits: {concurrency: 1}\n  selector: {workflows: ["*"]}\n'
    )
    hold = [{"name": "hold", "run": "echo $$ > hold.pid; exec sleep 60"}]
    setup(repo, quota, wf("holder", hold), wf("second", [{"name": "go", "run": "true"}]))
    orphan = None
    try:
        with background_apply(repo, "holder") as proc:
            orphan = pid_of(repo, "hold.pid")
            used = {q["name"]: q["used"] for q in repo.orch_json("system", "status")["quotas"]}
            assert used["one"] == {"concurrency": 1.0}
            proc.kill()  # kill -9: no cleanup of any kind
            proc.wait(timeout=10)
        p = repo.orch("apply", "--json", "second", timeout=30)  # would wait forever otherwise
        assert p.returncode == 0, p.stderr
        assert by_step(json.loads(p.stdout))["go"]["status"] == "succeeded"
        held = [t for t in repo.orch_json("task", "list") if t["step"] == "hold"]
        assert [t["status"] for t in held] == ["interrupted"]
        used = {q["name"]: q["used"] for q in repo.orch_json("system", "status")["quotas"]}
        assert used["one"] == {}
    finally:
        if orphan is not None and alive(orphan):  # the dead runner's task outlives it
            os.kill(orphan, signal.SIGKILL)


def test_ctrl_c_interrupts_running_tasks_and_exits_130(repo: Repo) -> None:
    steps = [{"name": "a", "run": LONG}, {"name": "b", "run": "true", "needs": ["a"]}]
    setup(repo, wf("w", steps))
    with background_apply(repo) as proc:
        pids = [pid_of(repo, "bg.pid"), pid_of(repo, "sh.pid")]
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
    assert not any(alive(p) for p in pids)
    status = {s["step"]: s["status"] for s in repo.orch_json("status")["steps"]}
    assert status == {"a": "interrupted", "b": "never-ran"}
    (run,) = repo.orch_json("history")
    assert run["status"] == "interrupted"
    assert [t["status"] for t in run["tasks"]] == ["interrupted"]
    # the next apply runs it again, saying why
    plan = repo.plan()
    assert plan[("w", "a")] == ("run", ["interrupted"])


def test_ctrl_c_during_retry_backoff_records_interrupted_not_failed(repo: Repo) -> None:
    retry = {"limit": 2, "backoff": "30s", "jitter": 0}
    setup(repo, wf("w", [{"name": "a", "run": "echo $$ > a.pid; exit 1", "retry": retry}]))
    with background_apply(repo) as proc:
        pid_of(repo, "a.pid")
        wait_until(
            lambda: [t["status"] for t in repo.orch_json("task", "list")] == ["failed"],
            "the first attempt to fail",
        )
        os.kill(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
    (run,) = repo.orch_json("history")
    assert [(t["attempt"], t["status"], t["delay"]) for t in run["tasks"]] == [
        (1, "failed", 30.0),
        (2, "interrupted", None),
    ]
    assert {s["step"]: s["status"] for s in repo.orch_json("status")["steps"]} == {
        "a": "interrupted"
    }


# -- metrics --------------------------------------------------------------------------------


def test_task_metrics_cover_the_whole_tree(repo: Repo) -> None:
    code = 'import time; b = b"x" * (80 << 20); sum(range(3_000_000)); time.sleep(0.3)'
    heavy = f"{sys.executable} -c '{code}' & wait"  # a child of the step's shell
    setup(repo, wf("w", [{"name": "heavy", "run": heavy}]))
    assert repo.apply()["ok"]
    (t,) = history_tasks(repo)
    assert t["peak_rss"] >= 70 << 20  # the python grandchild's 80 MiB, not the shell's
    assert t["cpu_time"] > 0.02
    assert t["ended"] - t["started"] >= 0.3
    (s,) = repo.orch_json("status")["steps"]
    assert s["peak_rss"] == t["peak_rss"] and s["cpu_time"] == t["cpu_time"]
    assert s["duration"] >= 0.3
