"""Quotas across runners, validation of requests and the pure scheduler.

Priorities, fairness, quotas within one apply and the host ceiling run in-process over
the fake executor (test_engine.py); here only what needs real processes.

Overlap is proven two ways: steps that must not overlap take a ``mkdir`` lock and fail if
it is taken (so the run itself fails on a violation), and the recorded start/end times in
``orch history --json`` are checked pairwise. Steps that *must* overlap wait for each
other's flag files (a barrier with a deadline), so they can only succeed in parallel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runner.reconcile.queue import Admission, QuotaLimits, ReadyQueue, backoff_delay, request_of
from tests.conftest import Repo

# Wait (up to ~10 s) for a file; exit 7 if it never comes. Used as a barrier.
WAIT = (
    'i=0; while [ ! -e {f} ]; do sleep 0.02; i=$((i+1)); if [ "$i" -gt 500 ]; then exit 7; fi; done'
)
# Hold an exclusive slot for a moment; exit 9 if someone else holds it (an overlap).
EXCLUSIVE = (
    "mkdir {lock} 2>/dev/null || exit 9; echo $ORCH_STEP >> order.log; sleep {t}; rmdir {lock}"
)


def quota(name: str, limits: str, selector: str = "", rate: str = "") -> str:
    doc = f"apiVersion: orch/v1\nkind: ResourceQuota\nmetadata: {{name: {name}}}\nspec:\n  limits: {limits}\n"
    if rate:
        doc += f"  rate: {rate}\n"
    if selector:
        doc += f"  selector: {selector}\n"
    return doc


def wf(name: str, steps: list[dict[str, Any]], quota_name: str | None = None) -> str:
    spec: dict[str, Any] = {"steps": steps}
    if quota_name:
        spec["quota"] = quota_name
    return json.dumps(
        {"apiVersion": "orch/v1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec}
    )


def setup(repo: Repo, *docs: str) -> None:
    repo.write(".gitignore", "*.log\n*.lock/\n*.flag\n*.seen\n")
    repo.write("orch.yaml", "\n---\n".join(docs))
    repo.commit("init")


def tasks(repo: Repo) -> list[dict[str, Any]]:
    runs = repo.orch_json("history")
    return [t for r in runs for t in r["tasks"]]


def max_concurrent(ts: list[dict[str, Any]]) -> int:
    events = sorted([(t["started"], 1) for t in ts] + [(t["ended"], -1) for t in ts])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_quota_holds_across_two_runners(repo: Repo) -> None:
    """Two ``orch apply`` processes at once share one slot: allocations live in state.db."""
    docs = [quota("one", "{concurrency: 1}", '{workflows: ["*"]}')]
    for name in ("left", "right"):
        docs.append(
            wf(
                name,
                [
                    {"name": f"s{i}", "run": EXCLUSIVE.format(lock="slot.lock", t=0.05)}
                    for i in range(3)
                ],
            )
        )
    setup(repo, *docs)
    # state.db exists first: two runners *creating* it at the same instant can still get
    # "database is locked" from PRAGMA journal_mode=WAL (a state.py issue, not a quota one)
    assert repo.orch("status").returncode == 0
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-q", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("left", "right")
    ]
    for p in procs:
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    ts = tasks(repo)
    assert len(ts) == 6 and {t["status"] for t in ts} == {"succeeded"}
    assert max_concurrent(ts) == 1


# -- validation: requests no quota (or host) could ever grant ------------------------------


def test_oversize_request_is_a_validation_error_naming_step_and_quota(repo: Repo) -> None:
    steps = [{"name": "train", "run": "true", "resources": {"gpu": 2}}]
    setup(repo, quota("gpus", "{gpu: 1}"), wf("ml", steps, "gpus"))
    for verb in ("validate", "apply"):
        p = repo.orch(verb)
        assert p.returncode == 1, p.stderr
        assert "step 'train'" in p.stderr and "quota 'gpus'" in p.stderr
        assert "gpu=2" in p.stderr
    assert not (repo.path / ".orch" / "logs").exists()  # nothing ran


def test_concurrency_zero_quota_is_an_error_not_a_hang(repo: Repo) -> None:
    setup(repo, quota("none", "{concurrency: 0}"), wf("w", [{"name": "x", "run": "true"}], "none"))
    p = repo.orch("validate")
    assert p.returncode == 1
    assert "step 'x'" in p.stderr and "quota 'none'" in p.stderr


def test_request_beyond_the_host_is_a_validation_error(repo: Repo) -> None:
    from runner.execute.host import host

    cpus = host()["cpus"]
    steps = [
        {"name": "huge", "run": "true", "resources": {"cpu": cpus + 1}},
        {"name": "fat", "run": "true", "resources": {"memory": "1000Ti"}},
        {"name": "fits", "run": "true", "resources": {"cpu": cpus}},
    ]
    setup(repo, wf("w", steps))
    p = repo.orch("validate")
    assert p.returncode == 1
    assert "step 'huge'" in p.stderr and "step 'fat'" in p.stderr
    assert "step 'fits'" not in p.stderr
    assert "host" in p.stderr


# -- the pure scheduler ---------------------------------------------------------------------


def test_admission_reserves_for_a_waiting_task() -> None:
    q = {"q": QuotaLimits("q", {"cpu": 2.0, "concurrency": 10.0})}
    adm = Admission({"q": {"cpu": 1.0, "concurrency": 1.0}}, q)
    big, small = request_of({"cpu": 2.0}), request_of({"cpu": 1.0})
    assert not adm.fits(["q"], big)
    assert adm.fits(["q"], small)
    adm.reserve(["q"], big)
    assert not adm.fits(["q"], small)  # the free core is promised to the big task


def test_ready_queue_keeps_a_waiting_tasks_place() -> None:
    rq = ReadyQueue()
    rq.push("w/big", "w", 0, 5, "big")
    rq.started("w")
    rq.started("w")
    rq.push("v/small", "v", 0, 5, "small")
    order = [k for k, _ in rq.drain_in_order()]
    assert order == ["w/big", "v/small"]
    # pushed back after waiting, it keeps its original place (ageing), not a new one
    rq.push("w/big", "w", 0, 5, "big")
    rq.push("v/small2", "v", 0, 5, "small2")
    assert [k for k, _ in rq.drain_in_order()] == ["w/big", "v/small2"]


def test_backoff_grows_and_jitter_stays_in_bounds() -> None:
    from runner.model import Retry

    r = Retry(limit=5, backoff=1.0, factor=2.0, max=5.0, jitter=0.0)
    assert [backoff_delay(r, a) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    j = Retry(limit=5, backoff=1.0, factor=2.0, max=30.0, jitter=0.5)
    ds = [backoff_delay(j, 3) for _ in range(200)]
    assert all(2.0 <= d <= 6.0 for d in ds)
    assert len(set(ds)) > 1


# -- orch system status -------------------------------------------------------------------


def test_system_status_shows_host_quota_use_and_running_task(repo: Repo) -> None:
    steps = [
        {
            "name": "hold",
            "run": "touch started.flag; " + WAIT.format(f="go.flag"),
            "resources": {"gpu": 1},
        }
    ]
    setup(repo, quota("gpus", "{gpu: 1}"), wf("w", steps, "gpus"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(repo.path / "started.flag")
        data = repo.orch_json("system", "status")
        assert data["host"]["cpus"] > 0 and data["host"]["memory"] > 0
        q = {x["name"]: x for x in data["quotas"]}
        assert q["gpus"]["limits"] == {"gpu": 1.0}
        assert q["gpus"]["used"] == {"gpu": 1.0}
        assert [(t["workflow"], t["step"]) for t in data["running"]] == [("w", "hold")]
        checks = {c["name"]: c["ok"] for c in data["health"]["checks"]}
        assert checks["git"] and checks["state.db"] and checks["wal"]
        assert data["health"]["ok"]
    finally:
        (repo.path / "go.flag").touch()
        assert proc.wait(timeout=30) == 0
    data = repo.orch_json("system", "health")
    assert {x["name"]: x["used"] for x in data["quotas"]}["gpus"] == {}
    assert data["metrics"]["by_status"] == {"succeeded": 1}


def wait_for(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def test_ageing_a_low_priority_task_is_not_starved_by_a_chain() -> None:
    """A ready priority-0 task gains a point per task started while it waits: a chain of
    priority-3 tasks, each ready only once the one before it started, overtakes it 3 times."""
    rq = ReadyQueue()
    rq.push("w/low", "w", 0, 0, "low")
    order = []
    for k in range(1, 6):
        rq.push(f"w/h{k}", "w", 3, k, f"h{k}")
        key, _ = rq.pop()
        order.append(key)
        rq.started("w")
        if key == "w/low":
            break
    assert order == ["w/h1", "w/h2", "w/h3", "w/low"]


def test_low_priority_step_waits_behind_a_chain_only_as_long_as_its_priority_gap(
    repo: Repo,
) -> None:
    steps = [{"name": "low", "run": "echo $ORCH_STEP >> order.log"}]
    for k in range(1, 6):
        step = {"name": f"h{k}", "run": "echo $ORCH_STEP >> order.log", "priority": 3}
        if k > 1:
            step["needs"] = [f"h{k - 1}"]
        steps.append(step)
    setup(repo, quota("one", "{concurrency: 1}"), wf("w", steps, "one"))
    assert repo.apply()["ok"]
    assert repo.read("order.log").split() == ["h1", "h2", "h3", "low", "h4", "h5"]
