"""Quotas, priorities, fairness and the host ceiling, with real processes.

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


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["started"] < b["ended"] and b["started"] < a["ended"]


def max_concurrent(ts: list[dict[str, Any]]) -> int:
    events = sorted([(t["started"], 1) for t in ts] + [(t["ended"], -1) for t in ts])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {f"{s['workflow']}/{s['step']}": s["status"] for s in data["steps"]}


def test_concurrency_1_never_overlaps_while_free_steps_run_in_parallel(repo: Repo) -> None:
    serial = [{"name": f"s{i}", "run": EXCLUSIVE.format(lock="slot.lock", t=0.1)} for i in range(3)]
    free = [
        {"name": "p1", "run": "touch p1.flag; " + WAIT.format(f="p2.flag")},
        {"name": "p2", "run": "touch p2.flag; " + WAIT.format(f="p1.flag")},
    ]
    setup(repo, quota("one", "{concurrency: 1}"), wf("serial", serial, "one"), wf("free", free))
    r = repo.apply("-j", "8")
    assert r["ok"], r["steps"]
    assert set(statuses(r).values()) == {"succeeded"}
    ts = {t["step"]: t for t in tasks(repo)}
    for a, b in (("s0", "s1"), ("s0", "s2"), ("s1", "s2")):
        assert not overlap(ts[a], ts[b]), (a, b)
    assert overlap(ts["p1"], ts["p2"])


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


def test_gpu_quota_serialises_gpu_steps_only(repo: Repo) -> None:
    gpu_run = EXCLUSIVE.format(lock="gpu.lock", t=0).replace(
        "; sleep 0;", "; touch g.seen; " + WAIT.format(f="n.flag") + ";"
    )
    steps = [
        {"name": "g1", "run": gpu_run, "resources": {"gpu": 1}},
        {"name": "g2", "run": gpu_run, "resources": {"gpu": 1}},
        {"name": "n1", "run": "touch n.flag; " + WAIT.format(f="g.seen")},
    ]
    setup(repo, quota("gpus", "{gpu: 1}", '{workflows: ["ml*"]}'), wf("ml", steps))
    r = repo.apply("-j", "8")
    assert r["ok"], r["steps"]
    ts = {t["step"]: t for t in tasks(repo)}
    assert not overlap(ts["g1"], ts["g2"])
    assert overlap(ts["n1"], ts["g1"]) or overlap(ts["n1"], ts["g2"])


def test_priority_order_under_contention(repo: Repo) -> None:
    prios = {"a": 0, "b": 0, "c": 10, "d": 5, "e": -1}
    steps = [
        {"name": n, "run": "echo $ORCH_STEP >> order.log", "priority": p} for n, p in prios.items()
    ]
    setup(repo, quota("one", "{concurrency: 1}"), wf("w", steps, "one"))
    r = repo.apply("-j", "4")
    assert r["ok"]
    assert repo.read("order.log").split() == ["c", "d", "a", "b", "e"]
    recorded = [t["step"] for t in sorted(tasks(repo), key=lambda t: t["started"])]
    assert recorded == ["c", "d", "a", "b", "e"]


def test_big_task_is_not_starved_by_later_small_ones(repo: Repo) -> None:
    """cpu 2: s1 and s2 run; 'big' (cpu 2) reserves what frees up, so s3.. wait behind it."""
    small = "echo $ORCH_STEP >> order.log; sleep 0.2"
    steps = [{"name": "s1", "run": small, "resources": {"cpu": "500m"}}]
    steps.append({"name": "s2", "run": small, "resources": {"cpu": "500m"}})
    steps.append({"name": "big", "run": small, "resources": {"cpu": 1}})
    steps += [{"name": f"t{i}", "run": small, "resources": {"cpu": "500m"}} for i in range(3)]
    setup(repo, quota("cpu", "{cpu: 1}"), wf("w", steps, "cpu"))
    r = repo.apply("-j", "8")
    assert r["ok"]
    order = repo.read("order.log").split()
    assert sorted(order[:2]) == ["s1", "s2"]
    assert order[2] == "big"
    ts = {t["step"]: t for t in tasks(repo)}
    assert all(not overlap(ts["big"], ts[o]) for o in ts if o != "big")


def test_workflows_take_turns(repo: Repo) -> None:
    """Under one slot, no workflow gets a second task before every other ready one had one."""
    docs = [quota("one", "{concurrency: 1}", '{workflows: ["*"]}')]
    # w1 declares more steps at index 0..2; w2/w3 become ready at the same moment
    for name in ("w1", "w2", "w3"):
        docs.append(
            wf(
                name,
                [{"name": f"x{i}", "run": "echo $ORCH_WORKFLOW >> order.log"} for i in range(3)],
            )
        )
    setup(repo, *docs)
    assert repo.apply()["ok"]
    order = repo.read("order.log").split()
    assert order == ["w1", "w2", "w3"] * 3


def test_many_workflows_in_one_apply(repo: Repo) -> None:
    docs = [quota("four", "{concurrency: 4}", '{workflows: ["*"]}')]
    for i in range(120):
        docs.append(
            wf(
                f"wf-{i:03d}",
                [
                    {"name": "a", "run": "true"},
                    {"name": "b", "run": "true", "needs": ["a"]},
                ],
            )
        )
    setup(repo, *docs)
    p = repo.orch("apply", "--json", "-j", "8", timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads(p.stdout)
    assert data["counts"] == {"succeeded": 240}
    runs = repo.orch_json("history", "--limit", "1")
    assert len(runs[0]["tasks"]) == 240
    assert max_concurrent(runs[0]["tasks"]) <= 4
    # fair: every workflow's first step starts before any workflow's second
    ts = sorted(runs[0]["tasks"], key=lambda t: t["started"])
    firsts = [t["step"] for t in ts[:120]]
    assert firsts.count("a") >= 110  # b of the first workflows may slip in as slots free


def test_rate_limit_spaces_starts(repo: Repo) -> None:
    steps = [{"name": f"r{i}", "run": "true"} for i in range(4)]
    setup(
        repo,
        quota("slow", "{}", '{workflows: ["w"]}', rate="{runs: 2, per: 1s}"),
        wf("w", steps),
    )
    assert repo.apply("-j", "4")["ok"]
    starts = sorted(t["started"] for t in tasks(repo))
    # at most 2 starts in any 1 s window; unthrottled, all four start within milliseconds.
    # Slack: a task's recorded start trails its admission by thread scheduling (a busy box)
    assert starts[2] - starts[0] >= 0.6
    assert starts[3] - starts[1] >= 0.6


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
    from runner.inventory import host

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


def test_host_is_the_ceiling_of_the_scheduler(repo: Repo) -> None:
    """Two steps each asking for every CPU of the host never run at once, quota or not."""
    from runner.inventory import host

    cpus = host()["cpus"]
    steps = [
        {
            "name": f"h{i}",
            "run": EXCLUSIVE.format(lock="cpu.lock", t=0.1),
            "resources": {"cpu": cpus},
        }
        for i in range(2)
    ]
    steps.append({"name": "free", "run": "true"})
    setup(repo, wf("w", steps))
    r = repo.apply("-j", "8")
    assert r["ok"], r["steps"]
    ts = {t["step"]: t for t in tasks(repo)}
    assert not overlap(ts["h0"], ts["h1"])


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
