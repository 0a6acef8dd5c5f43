"""The engine in-process, over the FakeExecutor: scheduling, quotas, retries, breakers,
cancel, early cutoff and what the executor is handed. No task process is started; the
state store is the real SQLite in tmp_path. End-to-end twins through real processes
stay in test_scheduling.py, test_resilience.py and test_reconcile.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runner import api
from tests.conftest import Repo
from tests.fakes import Exit, FakeExecutor, apply


def quota(name: str, limits: str, selector: str = "", rate: str = "") -> str:
    doc = f"apiVersion: orch/v1\nkind: ResourceQuota\nmetadata: {{name: {name}}}\nspec:\n  limits: {limits}\n"
    if rate:
        doc += f"  rate: {rate}\n"
    if selector:
        doc += f"  selector: {selector}\n"
    return doc


def wf(name: str, steps: list[dict[str, Any]], quota_name: str | None = None, **spec: Any) -> str:
    spec = {**spec, "steps": steps}
    if quota_name:
        spec["quota"] = quota_name
    return json.dumps(
        {"apiVersion": "orch/v1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec}
    )


def setup(repo: Repo, *docs: str) -> Path:
    repo.write("orch.yaml", "\n---\n".join(docs))
    repo.commit("init")
    return repo.path


def statuses(result: Any) -> dict[str, str]:
    return {f"{r.workflow}/{r.step}": r.status for r in result.results}


def tasks(path: Path) -> list[dict[str, Any]]:
    return [t for r in api.history(api.open_repo(path)) for t in r["tasks"]]


def overlapped(fake: FakeExecutor, a: str, b: str) -> bool:
    by = {s.key: s for s in fake.started}
    return b in by[a].during or a in by[b].during


def meet(fake: FakeExecutor, *keys: str) -> Exit:
    """An attempt that exits 0 only once one of ``keys`` has started (a barrier): it can
    only succeed in parallel with it; exit 7 after 10 s."""

    def wait(_spec: Any) -> None:
        deadline = time.monotonic() + 10
        while not set(keys) & set(fake.keys):
            if time.monotonic() > deadline:
                raise AssertionError(f"{keys} never started")
            time.sleep(0.005)

    return Exit(then=wait, hold=0.02)


# -- quotas, priorities, fairness -------------------------------------------------------


def test_concurrency_1_never_overlaps_while_free_steps_run_in_parallel(repo: Repo) -> None:
    serial = [{"name": f"s{i}", "run": "true"} for i in range(3)]
    free = [{"name": "p1", "run": "true"}, {"name": "p2", "run": "true"}]
    path = setup(
        repo, quota("one", "{concurrency: 1}"), wf("serial", serial, "one"), wf("free", free)
    )
    fake = FakeExecutor(hold=0.03)
    fake.script = {"free/p1": [meet(fake, "free/p2")], "free/p2": [meet(fake, "free/p1")]}
    r = apply(path, fake, jobs=8)
    assert r.ok and set(statuses(r).values()) == {"succeeded"}
    assert fake.max_concurrent({"serial/s0", "serial/s1", "serial/s2"}) == 1
    assert overlapped(fake, "free/p1", "free/p2")
    assert sorted(fake.keys) == ["free/p1", "free/p2", "serial/s0", "serial/s1", "serial/s2"]


def test_gpu_quota_serialises_gpu_steps_only(repo: Repo) -> None:
    steps = [
        {"name": "g1", "run": "true", "resources": {"gpu": 1}},
        {"name": "g2", "run": "true", "resources": {"gpu": 1}},
        {"name": "n1", "run": "true"},
    ]
    path = setup(repo, quota("gpus", "{gpu: 1}", '{workflows: ["ml*"]}'), wf("ml", steps))
    fake = FakeExecutor()
    fake.script = {
        "ml/g1": [meet(fake, "ml/n1")],
        "ml/g2": [meet(fake, "ml/n1")],
        "ml/n1": [meet(fake, "ml/g1", "ml/g2")],
    }
    r = apply(path, fake, jobs=8)
    assert r.ok, r.results
    assert not overlapped(fake, "ml/g1", "ml/g2")
    assert overlapped(fake, "ml/n1", "ml/g1") or overlapped(fake, "ml/n1", "ml/g2")


def test_priority_order_under_contention(repo: Repo) -> None:
    prios = {"a": 0, "b": 0, "c": 10, "d": 5, "e": -1}
    steps = [{"name": n, "run": "true", "priority": p} for n, p in prios.items()]
    path = setup(repo, quota("one", "{concurrency: 1}"), wf("w", steps, "one"))
    fake = FakeExecutor()
    assert apply(path, fake, jobs=4).ok
    assert fake.keys == ["w/c", "w/d", "w/a", "w/b", "w/e"]
    recorded = [t["step"] for t in sorted(tasks(path), key=lambda t: t["started"])]
    assert recorded == ["c", "d", "a", "b", "e"]


def test_big_task_is_not_starved_by_later_small_ones(repo: Repo) -> None:
    """cpu 1: s1 and s2 run; 'big' (cpu 1) reserves what frees up, so t0.. wait behind it."""
    steps = [{"name": n, "run": "true", "resources": {"cpu": "500m"}} for n in ("s1", "s2")]
    steps.append({"name": "big", "run": "true", "resources": {"cpu": 1}})
    steps += [{"name": f"t{i}", "run": "true", "resources": {"cpu": "500m"}} for i in range(3)]
    path = setup(repo, quota("cpu", "{cpu: 1}"), wf("w", steps, "cpu"))
    fake = FakeExecutor(hold=0.05)
    assert apply(path, fake, jobs=8).ok
    assert sorted(fake.keys[:2]) == ["w/s1", "w/s2"]
    assert fake.keys[2] == "w/big"
    assert all(not overlapped(fake, "w/big", k) for k in fake.keys if k != "w/big")


def test_workflows_take_turns(repo: Repo) -> None:
    """Under one slot, no workflow gets a second task before every other ready one had one."""
    docs = [quota("one", "{concurrency: 1}", '{workflows: ["*"]}')]
    for name in ("w1", "w2", "w3"):
        docs.append(wf(name, [{"name": f"x{i}", "run": "true"} for i in range(3)]))
    path = setup(repo, *docs)
    fake = FakeExecutor()
    assert apply(path, fake).ok
    assert [k.split("/")[0] for k in fake.keys] == ["w1", "w2", "w3"] * 3


def test_many_workflows_in_one_apply(repo: Repo) -> None:
    docs = [quota("four", "{concurrency: 4}", '{workflows: ["*"]}')]
    for i in range(120):
        steps = [{"name": "a", "run": "true"}, {"name": "b", "run": "true", "needs": ["a"]}]
        docs.append(wf(f"wf-{i:03d}", steps))
    path = setup(repo, *docs)
    fake = FakeExecutor(hold=0.002)
    r = apply(path, fake, jobs=8)
    assert r.ok and r.counts() == {"succeeded": 240}
    (run,) = api.history(api.open_repo(path), limit=1)
    assert len(run["tasks"]) == 240
    assert fake.max_concurrent() <= 4
    # fair: every workflow's first step starts before any workflow's second
    firsts = [k.split("/")[1] for k in fake.keys[:120]]
    assert firsts.count("a") >= 110  # b of the first workflows may slip in as slots free


@pytest.mark.slow
def test_rate_limit_spaces_starts(repo: Repo) -> None:
    steps = [{"name": f"r{i}", "run": "true"} for i in range(4)]
    path = setup(
        repo, quota("slow", "{}", '{workflows: ["w"]}', rate="{runs: 2, per: 1s}"), wf("w", steps)
    )
    fake = FakeExecutor()
    assert apply(path, fake, jobs=4).ok
    starts = sorted(s.at for s in fake.started)
    # at most 2 starts in any 1 s window; unthrottled, all four start within milliseconds
    assert starts[2] - starts[0] >= 0.6
    assert starts[3] - starts[1] >= 0.6


def test_host_is_the_ceiling_of_the_scheduler(repo: Repo) -> None:
    """Two steps each asking for every CPU of the host never run at once, quota or not."""
    from runner.execute.host import host

    cpus = host()["cpus"]
    steps = [{"name": f"h{i}", "run": "true", "resources": {"cpu": cpus}} for i in range(2)]
    steps.append({"name": "free", "run": "true"})
    path = setup(repo, wf("w", steps))
    fake = FakeExecutor(hold=0.05)
    r = apply(path, fake, jobs=8)
    assert r.ok, r.results
    assert not overlapped(fake, "w/h0", "w/h1")


# -- retries ------------------------------------------------------------------------------


def test_retry_fails_twice_then_succeeds_with_growing_delays(repo: Repo) -> None:
    steps = [
        {"name": "flaky", "run": "true"},  # retry from spec.defaults
        {"name": "picky", "run": "true", "retry": {"limit": 3, "backoff": "50ms", "on": [75]}},
    ]
    retry = {"limit": 3, "backoff": "100ms", "factor": 2, "jitter": 0}
    path = setup(repo, wf("w", steps, defaults={"retry": retry}))
    fake = FakeExecutor({"w/flaky": [Exit(1), Exit(1), Exit(0)], "w/picky": [Exit(1)]})
    r = {x.step: x for x in apply(path, fake).results}
    assert (r["flaky"].status, r["flaky"].attempts) == ("succeeded", 3)
    assert (r["picky"].status, r["picky"].attempts) == ("failed", 1)  # 1 is not in `on`
    attempts = sorted((t for t in tasks(path) if t["step"] == "flaky"), key=lambda t: t["id"])
    assert [t["attempt"] for t in attempts] == [1, 2, 3]
    assert [t["exit_code"] for t in attempts] == [1, 1, 0]
    assert [t["status"] for t in attempts] == ["failed", "failed", "succeeded"]
    assert [t["delay"] for t in attempts] == [0.1, 0.2, None]
    for before, after in zip(attempts, attempts[1:], strict=False):
        assert after["started"] >= before["ended"] + before["delay"] - 1e-3  # it really waited
    # each attempt has a log of its own, named by its number
    logs = [s.spec.log_path.name for s in fake.started if s.key == "w/flaky"]
    assert logs == ["flaky.1.log", "flaky.2.log", "flaky.3.log"]


# -- circuit breakers ---------------------------------------------------------------------


def test_breaker_opens_skips_and_closes_after_a_successful_trial(repo: Repo) -> None:
    # the cooldown must outlast the two applies below on a loaded machine (a 300 ms one
    # ran out between them under load 19 and the held step was tried)
    brk = {"name": "api", "threshold": 2, "cooldown": "2s"}
    path = setup(
        repo, wf("w", [{"name": f"s{i}", "run": "true", "breaker": brk} for i in (1, 2, 3)])
    )
    down = {f"w/s{i}": [Exit(1)] for i in (1, 2, 3)}

    def breaker() -> dict[str, Any]:
        (b,) = api.breakers(api.open_repo(path))
        return b

    # two failures open it; the third step is not started
    fake = FakeExecutor(down)
    r = {x.step: x for x in apply(path, fake, jobs=1).results}
    assert fake.keys == ["w/s1", "w/s2"]
    assert [r[s].status for s in ("s1", "s2", "s3")] == ["failed", "failed", "circuit_open"]
    assert re.fullmatch(r"skipped: circuit open until \d\d:\d\d:\d\d", r["s3"].reasons[0])
    b = breaker()
    assert (b["name"], b["state"], b["failures"]) == ("api", "open", 2)
    # a step held back by the open breaker is not success, even with nothing downstream
    fake = FakeExecutor(down)
    alone = apply(path, fake, "w", jobs=1, force=["s3"])
    assert not alone.ok and fake.keys == []
    held = {x.step: x for x in alone.results}["s3"]
    assert held.status == "circuit_open" and held.message.startswith("circuit api open until")

    # cooldown over: exactly one trial runs while the others wait for it; it fails: open again
    while time.time() <= b["opened_until"]:
        time.sleep(0.02)
    fake = FakeExecutor(down, hold=0.05)
    r = {x.step: x for x in apply(path, fake, jobs=4).results}
    assert len(fake.keys) == 1
    assert sorted(s.status for s in r.values()) == ["circuit_open", "circuit_open", "failed"]
    b = breaker()
    assert (b["state"], b["failures"]) == ("open", 3)

    # the service is back: the trial succeeds, closes it, and the others run
    while time.time() <= b["opened_until"]:
        time.sleep(0.02)
    fake = FakeExecutor()
    r = {x.step: x for x in apply(path, fake, jobs=4).results}
    assert sorted(fake.keys) == ["w/s1", "w/s2", "w/s3"]
    assert {s.status for s in r.values()} == {"succeeded"}
    b = breaker()
    assert (b["state"], b["failures"]) == ("closed", 0)


# -- cancel, stop, fail-fast --------------------------------------------------------------


def test_cancel_request_ends_the_task_and_blocks_descendants(repo: Repo) -> None:
    steps = [{"name": "long", "run": "true"}, {"name": "after", "run": "true", "needs": ["long"]}]
    path = setup(repo, wf("w", steps))
    asked: list[int] = []

    def cancel_me(_spec: Any) -> None:  # what `orch task cancel ID` does, from outside
        (t,) = [t for t in api.tasks(api.open_repo(path)) if t["status"] == "running"]
        api.cancel_task(api.open_repo(path), t["id"])
        asked.append(t["id"])

    fake = FakeExecutor({"w/long": [Exit(until_cancelled=True, then=cancel_me)]})
    r = apply(path, fake)
    assert statuses(r) == {"w/long": "cancelled", "w/after": "blocked"}
    assert fake.keys == ["w/long"]
    assert api.task(api.open_repo(path), asked[0])["status"] == "cancelled"


def test_stop_event_interrupts_running_tasks_and_does_not_start_more(repo: Repo) -> None:
    steps = [{"name": "a", "run": "true"}, {"name": "b", "run": "true", "needs": ["a"]}]
    path = setup(repo, wf("w", steps))
    stop = threading.Event()
    fake = FakeExecutor({"w/a": [Exit(until_cancelled=True, then=lambda _s: stop.set())]})
    r = apply(path, fake, stop=stop)
    assert statuses(r) == {"w/a": "interrupted", "w/b": "blocked"}
    assert fake.keys == ["w/a"]


def test_fail_fast_starts_nothing_after_the_first_failure(repo: Repo) -> None:
    steps = [{"name": f"s{i}", "run": "true"} for i in range(4)]
    path = setup(repo, wf("w", steps))
    fake = FakeExecutor({"w/s0": [Exit(3)]})
    r = apply(path, fake, jobs=1, fail_fast=True)
    assert fake.keys == ["w/s0"]
    assert statuses(r) == {
        "w/s0": "failed",
        "w/s1": "not-started",
        "w/s2": "not-started",
        "w/s3": "not-started",
    }


# -- early cutoff, recording --------------------------------------------------------------

PIPE = [
    {"name": "gen", "run": "true", "inputs": ["src.txt"], "outputs": ["mid.txt"]},
    {"name": "use", "run": "true", "inputs": ["mid.txt"], "needs": ["gen"]},
]


def test_identical_output_stops_the_ripple_early_cutoff(repo: Repo) -> None:
    repo.write("src.txt", "v1\n")
    path = setup(repo, wf("p", PIPE))
    same = {"p/gen": [Exit(files={"mid.txt": "same\n"})]}
    assert statuses(apply(path, FakeExecutor(same))) == {"p/gen": "succeeded", "p/use": "succeeded"}
    repo.write("src.txt", "v2\n")
    fake = FakeExecutor(same)
    r = {x.step: x for x in apply(path, fake).results}
    assert fake.keys == ["p/gen"]
    assert (r["use"].status, list(r["use"].reasons)) == (
        "up-to-date",
        ["early cutoff: upstream outputs unchanged"],
    )
    # a different output does reach the step downstream
    repo.write("src.txt", "v3\n")
    fake = FakeExecutor({"p/gen": [Exit(files={"mid.txt": "other\n"})]})
    assert statuses(apply(path, fake)) == {"p/gen": "succeeded", "p/use": "succeeded"}
    assert fake.keys == ["p/gen", "p/use"]


def test_success_without_a_declared_output_is_recorded_failed(repo: Repo) -> None:
    repo.write("src.txt", "v1\n")
    path = setup(repo, wf("p", PIPE))
    r = {x.step: x for x in apply(path, FakeExecutor()).results}
    assert r["gen"].status == "failed"
    assert r["gen"].message == "declared output not produced: mid.txt"
    assert r["use"].status == "blocked"
    plan = api.plan(api.open_repo(path))
    assert {s["step"]: s["reasons"] for s in plan["steps"]}["gen"] == ["last run failed"]


def test_outputs_flow_to_templates_of_the_step_downstream(repo: Repo) -> None:
    steps = [
        {"name": "count", "run": "true"},
        {"name": "say", "run": "echo {{ steps.count.outputs.n }}", "needs": ["count"]},
    ]
    path = setup(repo, wf("v", steps))
    fake = FakeExecutor({"v/count": [Exit(outputs={"n": "42"})]})
    assert apply(path, fake).ok
    assert fake.specs[1].command == "echo 42"


# -- the seam: what the executor is handed -------------------------------------------------


def test_the_executor_gets_the_whole_task_and_nothing_of_the_engine(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", "s3cret")
    steps = [
        {
            "name": "build",
            "run": ["make", "{{ params.target }}"],
            "workdir": "sub",
            "env": {"MODE": "{{ params.target }}-x"},
            "secrets": ["TOKEN"],
            "timeout": "7s",
        }
    ]
    repo.write("sub/.keep", "")
    path = setup(repo, wf("w", steps, params={"target": "all"}))
    fake = FakeExecutor()
    assert apply(path, fake).ok
    (spec,) = fake.specs
    assert spec.key == "w/build"
    assert spec.command == ["make", "all"]
    assert spec.cwd == path / "sub"
    assert spec.timeout == 7.0
    assert spec.mask == ("s3cret",)
    assert spec.env["MODE"] == "all-x" and spec.env["TOKEN"] == "s3cret"
    assert {k: spec.env[k] for k in ("ORCH_WORKFLOW", "ORCH_STEP", "ORCH_ROOT", "ORCH_ENV")} == {
        "ORCH_WORKFLOW": "w",
        "ORCH_STEP": "build",
        "ORCH_ROOT": str(path),
        "ORCH_ENV": "",
    }
    (t,) = tasks(path)
    assert spec.env["ORCH_RUN_ID"] and spec.log_path == path / t["log"]


def test_on_hooks_run_through_the_same_executor(repo: Repo) -> None:
    steps = [{"name": "x", "run": "true"}]
    on = {"failure": [{"run": "echo failed {{ workflow.name }}"}], "always": [{"run": "echo done"}]}
    path = setup(repo, wf("w", steps, on=on))
    fake = FakeExecutor({"w/x": [Exit(2)]})
    lines: list[str] = []
    assert not apply(path, fake, echo=lines.append).ok
    assert fake.keys == ["w/x", "w:on", "w:on"]
    assert [s.command for s in fake.specs[1:]] == ["echo failed w", "echo done"]
    assert fake.specs[1].cwd == path


def test_no_op_apply_imports_no_executor_code(repo: Repo) -> None:
    import subprocess
    import sys

    path = setup(repo, wf("w", [{"name": "x", "run": "true"}]))
    assert apply(path, FakeExecutor()).ok
    code = (  # the engine itself, not api's no-op witness (which never reaches it)
        "import sys; from runner import api; from runner.reconcile.results import ApplyOptions;"
        "from runner.reconcile import flow; from runner.reconcile.selection import Selection;"
        f"repo = api.open_repo({str(path)!r}); m = repo.manifests(); wfs = list(m.workflows.values());"
        "r, _ = flow.apply(repo.root, m, api.open_state(repo), wfs, Selection(['w']), ApplyOptions());"
        "assert r.run_id is None and [x.status for x in r.results] == ['up-to-date'], r;"
        "print(sorted(m for m in sys.modules if m in ('runner.execute.local', 'runner.execute.proctree', 'psutil')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_step_that_waited_for_its_claim_starts_once_and_keeps_its_result(repo: Repo) -> None:
    """Bug: a step that waited for its claim (another orch held it) and then for its quota
    was queued again on every pass while still counted as waiting; its copies, started
    after it, re-decided it "up-to-date" and overwrote its result."""
    import subprocess
    import sys

    steps = [{"name": "x", "run": "true", "priority": 10}, {"name": "y", "run": "true"}]
    path = setup(repo, quota("one", "{concurrency: 1}"), wf("w", steps, "one"))
    hold = (
        "import sys; from pathlib import Path; from runner.store.state import State;"
        "s = State(Path(sys.argv[1])); assert s.try_claim('w/x'); print('held', flush=True);"
        "sys.stdin.read()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", hold, str(path / ".orch")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"

        def then_release(_spec: Any) -> None:
            time.sleep(0.4)  # several passes with x both waiting and queued
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=10)

        fake = FakeExecutor({"w/y": [Exit(then=then_release)]})
        events: list[dict[str, Any]] = []
        try:
            r = apply(path, fake, jobs=4, report=events.append)
        finally:
            if holder.poll() is None:
                holder.kill()
    assert fake.keys == ["w/y", "w/x"]
    assert statuses(r) == {"w/x": "succeeded", "w/y": "succeeded"}
    finished = [(e["step"], e["status"]) for e in events if e["event"] == "finished"]
    assert sorted(finished) == [("x", "succeeded"), ("y", "succeeded")]


# -- beside another orch process --------------------------------------------------------


def test_plan_names_a_step_another_orch_is_running(repo: Repo) -> None:
    """The one override of the plain rules, made in decide: a step recorded "running" by a
    live run of another orch is "running in another orch", not "interrupted"."""
    import subprocess
    import sys

    hold = 'touch started.flag; i=0; while [ ! -e go.flag ] && [ "$i" -lt 500 ]; do sleep 0.02; i=$((i+1)); done'
    path = setup(repo, wf("w", [{"name": "hold", "run": hold}]))
    other = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(path), "apply", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not (path / "started.flag").exists():
            assert time.monotonic() < deadline, "the other orch never started its task"
            time.sleep(0.02)
        (run,) = api.history(api.open_repo(path))
        (step,) = api.plan(api.open_repo(path))["steps"]
        assert (step["action"], step["reasons"]) == (
            "run",
            [f"running in another orch (run {run['id']})"],
        )
    finally:
        (path / "go.flag").touch()
        assert other.wait(timeout=30) == 0
    # that run is over: the step is up to date, whoever ran it
    (step,) = api.plan(api.open_repo(path))["steps"]
    assert (step["action"], step["reasons"]) == ("up-to-date", [])


def test_freeing_allocations_leaves_the_step_claim_to_its_holder(tmp_path: Path) -> None:
    """store.allocations.free gives back quota rows only; the claim is released by whoever
    took it (Start.give_back), so freeing can never let a second runner in early."""
    import subprocess
    import sys

    from runner.reconcile.queue import QuotaLimits
    from runner.store import allocations
    from runner.store.state import State

    orch = tmp_path / ".orch"
    orch.mkdir()
    state = State(orch)
    limits = {"q": QuotaLimits("q", {"concurrency": 1.0})}
    assert state.try_claim("w/x")
    assert allocations.allocate(state, 7, "w/x", ["q"], {"concurrency": 1.0}, limits)
    assert state.query("SELECT count(*) AS n FROM allocations")[0]["n"] == 1
    allocations.free(state, 7, "w/x")
    assert state.query("SELECT count(*) AS n FROM allocations")[0]["n"] == 0
    probe = (
        "import sys; from pathlib import Path; from runner.store.state import State;"
        "print(State(Path(sys.argv[1])).is_held_elsewhere('w/x'))"
    )
    held = subprocess.run(
        [sys.executable, "-c", probe, str(orch)], capture_output=True, text=True, check=True
    )
    assert held.stdout.strip() == "True"
    state.release("w/x")
    held = subprocess.run(
        [sys.executable, "-c", probe, str(orch)], capture_output=True, text=True, check=True
    )
    assert held.stdout.strip() == "False"
    state.close()


def test_an_executor_that_loses_its_cluster_ends_the_run_as_interrupted(repo: Repo) -> None:
    from runner.errors import Interrupted

    steps = [{"name": n, "run": "true"} for n in ("a", "b", "c")]
    path = setup(repo, wf("w", steps))

    class Losing(FakeExecutor):
        lost: str | None = None

    fake = Losing()

    def lose(_spec: Any) -> None:  # once b runs, the cluster goes away under a
        deadline = time.monotonic() + 10
        while "w/b" not in fake.keys:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        fake.lost = "lost the cluster"

    # held 5 s unless cancelled: without the stop, both succeed and c starts after them
    fake.script = {"w/a": [Exit(then=lose, hold=5.0)], "w/b": [Exit(hold=5.0)]}
    with pytest.raises(Interrupted, match="lost the cluster"):
        apply(path, fake, jobs=2)
    assert sorted(fake.keys) == ["w/a", "w/b"]  # nothing more was started
    [run] = api.history(api.open_repo(path))
    assert run["status"] == "interrupted"
    assert {t["step"]: t["status"] for t in run["tasks"]} == {
        "a": "interrupted",
        "b": "interrupted",
    }
