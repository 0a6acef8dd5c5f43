"""``orch logs -f`` and ``--attempt``, ``orch task cancel --run``, and a cancel that
reaches a task waiting out its retry back-off; all through real ``orch`` processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo
from tests.test_resilience import background_apply, setup, wait_until, wf

COUNTED = "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; echo attempt-$n"


def tasks(repo: Repo) -> list[dict[str, Any]]:
    return repo.orch_json("task", "list")


def test_logs_attempt_picks_one_try_of_a_retried_step(repo: Repo) -> None:
    step = {"name": "s", "run": f"{COUNTED}; exit 1", "retry": {"limit": 2, "backoff": "10ms"}}
    setup(repo, wf("w", [step]))
    assert repo.orch("apply").returncode == 1
    for n in (1, 2, 3):
        p = repo.orch("logs", "w", "s", "--attempt", str(n))
        assert p.returncode == 0, p.stderr
        assert [x for x in p.stdout.splitlines() if not x.startswith("# orch:")] == [f"attempt-{n}"]
    assert "attempt-3" in repo.orch("logs", "w", "s").stdout  # the last, by default
    data = repo.orch_json("logs", "w", "s", "--attempt", "2")
    assert (data["attempt"], data["run_id"], data["status"]) == (2, 1, "failed")
    p = repo.orch("logs", "w", "s", "--attempt", "4")
    assert p.returncode == 1
    assert p.stderr == "orch: w/s has no attempt 4 in run 1 (see orch history --tasks w)\n"
    p = repo.orch("logs", "w", "s", "-f", "--json")
    assert p.returncode == 2 and p.stderr.count("\n") == 1


@pytest.mark.slow
def test_logs_follow_prints_until_the_task_ends(repo: Repo) -> None:
    run = "echo one; while [ ! -e go ]; do sleep 0.05; done; echo two; sleep 0.2; echo three"
    setup(repo, wf("w", [{"name": "s", "run": run}]))
    with background_apply(repo) as apply:
        log = repo.path / ".orch" / "logs" / "1" / "w" / "s.1.log"
        wait_until(lambda: log.exists() and "one" in log.read_text(), "the first line")
        follow = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "logs", "w", "s", "-f"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            (repo.path / "go").touch()
            out, err = follow.communicate(timeout=30)  # ends by itself with the task
        finally:
            if follow.poll() is None:
                follow.kill()
        assert follow.returncode == 0, err
        lines = out.splitlines()
        assert [x for x in lines if not x.startswith("# orch:")] == ["one", "two", "three"]
        assert lines[-1].startswith("# orch: exit 0")  # read to the end of the log
        apply.communicate(timeout=30)
        assert apply.returncode == 0


@pytest.mark.slow
def test_logs_follow_goes_on_into_the_next_attempt_after_a_retry(repo: Repo) -> None:
    """``logs -f`` follows the step, not one row: a failed attempt that will be retried
    is followed by the retry's log, until the last attempt ends."""
    run = f"{COUNTED}; while [ ! -e go ]; do sleep 0.05; done; [ $n -ge 2 ]"
    step = {"name": "s", "run": run, "retry": {"limit": 2, "backoff": "300ms"}}
    setup(repo, wf("w", [step]))
    with background_apply(repo) as apply:
        log = repo.path / ".orch" / "logs" / "1" / "w" / "s.1.log"
        wait_until(lambda: log.exists() and "attempt-1" in log.read_text(), "the first try")
        follow = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "logs", "w", "s", "-f"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert follow.stdout is not None
            head = [follow.stdout.readline() for _ in range(2)]  # "# orch: ...", attempt-1
            assert head[1] == "attempt-1\n", head
            (repo.path / "go").touch()  # attempt 1 fails (n=1), attempt 2 succeeds
            out, err = follow.communicate(timeout=30)
            out = "".join(head) + out
        finally:
            if follow.poll() is None:
                follow.kill()
        assert follow.returncode == 0, err
        apply.communicate(timeout=30)
        assert apply.returncode == 0
    lines = [x for x in out.splitlines() if not x.startswith("# orch:")]
    assert lines == ["attempt-1", "attempt-2"], out
    assert "attempt 2" in err  # where the retry's log begins, said on stderr


@pytest.mark.slow
def test_a_task_waiting_out_its_retry_backoff_can_be_cancelled(repo: Repo) -> None:
    step = {"name": "s", "run": f"{COUNTED}; exit 1", "retry": {"limit": 3, "backoff": "60s"}}
    setup(repo, wf("w", [step]))
    with background_apply(repo) as proc:
        wait_until(lambda: any(t["delay"] for t in tasks(repo)), "the back-off")
        (t,) = tasks(repo)
        assert t["status"] == "failed"
        p = repo.orch("task", "cancel", str(t["id"]))
        assert p.returncode == 0, p.stderr
        out, err = proc.communicate(timeout=30)  # long before the 60 s back-off ends
        assert proc.returncode == 1, err
    (res,) = json.loads(out)["steps"]
    assert res["status"] == "cancelled"
    assert repo.read("n") == "1\n"  # no second attempt ran
    p = repo.orch("task", "cancel", str(t["id"]))
    assert p.returncode == 1 and "is not running" in p.stderr  # nothing left to cancel


@pytest.mark.slow
def test_cancel_run_ends_every_task_and_starts_no_more(repo: Repo) -> None:
    steps = [
        {"name": "a", "run": "echo $$ > a.pid; sleep 60"},
        {"name": "b", "run": "echo $$ > b.pid; sleep 60"},
        {"name": "c", "run": "touch c.ran"},
    ]
    setup(repo, wf("w", steps))
    with background_apply(repo, "-j", "2") as proc:
        wait_until(lambda: repo.exists("a.pid") and repo.exists("b.pid"), "a and b running")
        p = repo.orch("task", "cancel", "--run", "1", "--json")
        assert p.returncode == 0, p.stderr
        asked = json.loads(p.stdout)
        assert sorted(t["step"] for t in asked["tasks"]) == ["a", "b"]
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, err
    status = {s["step"]: s["status"] for s in json.loads(out)["steps"]}
    assert status == {"a": "cancelled", "b": "cancelled", "c": "cancelled"}  # c: never started
    assert not repo.exists("c.ran")
    (run,) = repo.orch_json("history")
    assert run["status"] == "failed"
    p = repo.orch("task", "cancel", "--run", "1")
    assert p.returncode == 1
    assert p.stderr == "orch: run 1 has no running task (it is failed)\n"


@pytest.mark.slow
def test_cancel_run_reaches_steps_waiting_on_a_quota(repo: Repo) -> None:
    """A run whose steps all wait (a quota another runner holds) has no task row yet:
    ``task cancel --run`` must still end it, starting none of them."""
    quota = (
        "apiVersion: orch/v1\nkind: ResourceQuota\nmetadata: {name: one}\n"
        'spec:\n  limits: {concurrency: 1}\n  selector: {workflows: ["*"]}\n'
    )
    hold = [{"name": "hold", "run": "echo $$ > hold.pid; exec sleep 60"}]
    waiting = [{"name": "go", "run": "touch go.ran"}, {"name": "then", "run": "true"}]
    setup(repo, quota, wf("holder", hold), wf("second", waiting))
    with background_apply(repo, "holder") as holder:
        wait_until(lambda: repo.exists("hold.pid"), "the holder running")
        with background_apply(repo, "second") as second:
            wait_until(lambda: len(repo.orch_json("history")) == 2, "the second run begun")
            run_id = max(r["id"] for r in repo.orch_json("history"))
            p = repo.orch("task", "cancel", "--run", str(run_id), "--json")
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout) == {"cancel_requested": True, "run_id": run_id, "tasks": []}
            out, err = second.communicate(timeout=30)
            assert second.returncode == 1, (out, err)
        assert holder.poll() is None  # the other run is not touched
        repo.orch("task", "cancel", "--run", "1")
        holder.communicate(timeout=30)
    status = {s["step"]: s["status"] for s in json.loads(out)["steps"]}
    assert status == {"go": "cancelled", "then": "cancelled"}
    assert not repo.exists("go.ran")
    runs = {r["id"]: r["status"] for r in repo.orch_json("history")}
    assert runs[run_id] == "failed"
    p = repo.orch("task", "cancel", "--run", str(run_id))
    assert p.returncode == 1  # ended: nothing left to cancel


def test_cancel_usage_errors(repo: Repo) -> None:
    setup(repo, wf("w", [{"name": "a", "run": "true"}]))
    for args in (["task", "cancel"], ["task", "cancel", "3", "--run", "1"]):
        p = repo.orch(*args)
        assert p.returncode == 2, args
        assert p.stderr.count("\n") == 1 and "--run" in p.stderr
    p = repo.orch("task", "cancel", "--run", "9")
    assert p.returncode == 1
    assert p.stderr == "orch: no run with id 9 (see orch history)\n"
    big = str(2**63)  # past SQLite's 64-bit integers: no row, not an OverflowError
    p = repo.orch("task", "cancel", "--run", big)
    assert (p.returncode, p.stderr) == (1, f"orch: no run with id {big} (see orch history)\n")


def test_cancel_of_an_unknown_run_writes_nothing(tmp_path: Path) -> None:
    """Outside any repository (or before the first apply) there is no run to cancel:
    one line, exit 1, and no ``.orch/`` made on the way."""
    p = subprocess.run(
        [sys.executable, "-m", "runner", "-C", str(tmp_path), "task", "cancel", "--run", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_system_status_text_shows_memory_and_rate_limits_as_json_does(repo: Repo) -> None:
    from runner.units import format_bytes

    quota = json.dumps(
        {
            "apiVersion": "orch/v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "small"},
            "spec": {
                "limits": {"cpu": 2, "memory": "1Gi"},
                "rate": {"runs": 5, "per": "1h"},
                "selector": {"workflows": ["w"]},
            },
        }
    )
    step = {"name": "a", "run": "echo $$ > a.pid; sleep 60", "resources": {"memory": "256Mi"}}
    setup(repo, wf("w", [step]), quota)
    with background_apply(repo) as proc:
        wait_until(lambda: repo.exists("a.pid"), "a running")
        data = repo.orch_json("system", "status")
        text = repo.orch("system", "status").stdout
        proc.terminate()
    q = next(q for q in data["quotas"] if q["name"] == "small")
    used, limit = q["used"]["memory"], q["limits"]["memory"]
    assert used > 0 and q["rate"]["recent"] >= 1
    line = next(x for x in text.splitlines() if x.startswith("quota small:"))
    assert f"memory {format_bytes(int(used))}/{format_bytes(int(limit))}" in line
    assert f"rate {q['rate']['recent']}/5 per 1h" in line
