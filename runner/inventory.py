"""What this machine has, and what orch holds of it: the ceiling of every quota.

``host()`` is what validation and the scheduler compare requests against, so it counts
what a task can really get, not what the hardware has: the CPUs this process may run on
(affinity), lowered by a cgroup CPU quota, and physical memory lowered by a cgroup memory
limit (a container with 2 CPUs on a 64-core box must not admit 64 one-core tasks).

``system_status(repo)`` backs ``orch system status|metrics|health``: the host, every
quota with what live runners hold of it (the ``allocations`` table, dead runners'
leftovers left out), running tasks, breakers, recent task metrics and health checks.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.api import Repo
    from runner.store.state import State

HOST_QUOTA = "@host"  # the scheduler's name for the host ceiling ('@' is not a valid quota name)
CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED = 1 << 60  # cgroup v1 writes ~2**63 for "no limit"


@functools.lru_cache(maxsize=1)
def host() -> dict[str, Any]:
    """cpus (cores, may be fractional under a cgroup quota), memory (bytes), load average.

    Cached for the life of the process: limits do not change under a running orch, and
    validation asks once per step.
    """
    import psutil

    cpus: float = float(_affinity_cpus())
    cg_cpu = _cgroup_cpus()
    if cg_cpu is not None:
        cpus = min(cpus, cg_cpu)
    vm = psutil.virtual_memory()
    memory = int(vm.total)
    cg_mem = _cgroup_memory()
    if cg_mem is not None:
        memory = min(memory, cg_mem)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        load = []
    return {
        "cpus": cpus,
        "cpus_physical": psutil.cpu_count(logical=True) or 1,
        "memory": memory,
        "memory_physical": int(vm.total),
        "load": load,
    }


def current_load() -> dict[str, Any]:
    """Not cached: load and free memory right now (for status, not for decisions)."""
    import psutil

    vm = psutil.virtual_memory()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"load": load, "memory_available": int(vm.available)}


def _affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cgroup_dirs(controller: str) -> list[Path]:
    """Where this process's cgroup files may be, most specific first (v2, then v1)."""
    out: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _hid, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        rel = path.lstrip("/")
        if ctrls == "":  # v2 unified
            out += [CGROUP_ROOT / rel, CGROUP_ROOT]
        elif controller in ctrls.split(","):
            base = CGROUP_ROOT / ctrls
            out += [base / rel, base]
    out += [CGROUP_ROOT / controller, CGROUP_ROOT]
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def _read(p: Path) -> str | None:
    try:
        return p.read_text().strip()
    except OSError:
        return None


def _cgroup_cpus() -> float | None:
    for d in _cgroup_dirs("cpu"):
        v2 = _read(d / "cpu.max")
        if v2:
            quota, _, period = v2.partition(" ")
            if quota == "max":
                return None
            return max(int(quota) / int(period or 100000), 0.01)
        quota_s = _read(d / "cpu.cfs_quota_us")
        period_s = _read(d / "cpu.cfs_period_us")
        if quota_s is not None and period_s:
            quota_us = int(quota_s)
            return None if quota_us <= 0 else max(quota_us / int(period_s), 0.01)
    return None


def _cgroup_memory() -> int | None:
    for d in _cgroup_dirs("memory"):
        for name in ("memory.max", "memory.limit_in_bytes"):
            v = _read(d / name)
            if v is None:
                continue
            if v == "max" or int(v) >= _UNLIMITED:
                return None
            return int(v)
    return None


def host_limits() -> dict[str, float]:
    """The host as a quota's limits: what the scheduler may hand out in total."""
    h = host()
    return {"cpu": float(h["cpus"]), "memory": float(h["memory"])}


# -- orch system status|metrics|health ---------------------------------------------------


def system_status(repo: Repo) -> dict[str, Any]:
    """Everything ``orch system`` shows, as data (the CLI prints it or dumps it as JSON)."""
    from runner import api

    checks: list[dict[str, Any]] = []
    checks.append(_check_git())
    m = None
    try:
        m = repo.manifests()
        checks.append({"name": "manifests", "ok": True, "detail": f"{len(m.workflows)} workflows"})
    except Exception as e:  # an invalid manifest must not hide the rest of the report
        checks.append({"name": "manifests", "ok": False, "detail": str(e).splitlines()[0]})
    state = None
    try:
        state = api.open_state(repo)
        state.query("SELECT count(*) FROM runs")
        checks.append({"name": "state.db", "ok": True, "detail": str(state.path)})
        mode = state.query("PRAGMA journal_mode")[0][0]
        checks.append({"name": "wal", "ok": mode == "wal", "detail": f"journal_mode={mode}"})
    except Exception as e:
        checks.append({"name": "state.db", "ok": False, "detail": str(e).splitlines()[0]})
        if state is not None:
            state.close()
        state = None
    try:
        h = {**host(), **current_load()}
        if state is None:
            quotas: list[dict[str, Any]] = []
            running: list[dict[str, Any]] = []
            brk: list[dict[str, Any]] = []
            metrics: dict[str, Any] = {}
        else:
            used, stale = _allocations(state)
            quotas = _quotas(m, used, h, state)
            running = _running(state)
            brk = [dict(r) for r in state.query("SELECT * FROM breakers ORDER BY name")]
            metrics = _metrics(state)
            checks.append(
                {
                    "name": "allocations",
                    "ok": True,
                    "detail": f"{stale} stale row(s) of dead runners, ignored"
                    if stale
                    else "no stale rows",
                }
            )
    finally:
        if state is not None:
            state.close()
    return {
        "host": h,
        "quotas": quotas,
        "running": running,
        "breakers": brk,
        "metrics": metrics,
        "health": {"ok": all(c["ok"] for c in checks), "checks": checks},
    }


def _check_git() -> dict[str, Any]:
    import shutil
    import subprocess

    git = shutil.which("git")
    if not git:
        return {"name": "git", "ok": False, "detail": "git not found on PATH"}
    try:
        out = subprocess.run([git, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"name": "git", "ok": False, "detail": str(e)}
    return {"name": "git", "ok": out.returncode == 0, "detail": out.stdout.strip() or git}


def _allocations(state: State) -> tuple[dict[str, dict[str, float]], int]:
    """What live runners hold, per quota and resource; and how many rows are stale."""
    rows = state.query("SELECT run_id, quota, resource, amount FROM allocations")
    alive: dict[int, bool] = {}
    used: dict[str, dict[str, float]] = {}
    stale = 0
    for r in rows:
        rid = r["run_id"]
        if rid not in alive:
            alive[rid] = state.run_alive(rid)
        if not alive[rid]:
            stale += 1
            continue
        q = used.setdefault(r["quota"], {})
        q[r["resource"]] = q.get(r["resource"], 0.0) + r["amount"]
    return used, stale


def _quotas(
    m: Any, used: dict[str, dict[str, float]], h: dict[str, Any], state: State
) -> list[dict[str, Any]]:
    out = [
        {
            "name": HOST_QUOTA,
            "limits": {"cpu": float(h["cpus"]), "memory": float(h["memory"])},
            "used": used.get(HOST_QUOTA, {}),
            "rate": None,
            "selector": {"workflows": ["*"], "projects": []},
        }
    ]
    for q in sorted(m.quotas.values(), key=lambda q: q.name) if m is not None else []:
        rate = None
        if q.rate_runs and q.rate_per:
            n = state.query(
                "SELECT count(*) FROM rate_events WHERE quota=? AND at > ?",
                (q.name, time.time() - q.rate_per),
            )[0][0]
            rate = {"runs": q.rate_runs, "per": q.rate_per, "recent": int(n)}
        out.append(
            {
                "name": q.name,
                "limits": dict(q.limits),
                "used": used.get(q.name, {}),
                "rate": rate,
                "selector": {"workflows": list(q.workflows), "projects": list(q.projects)},
            }
        )
    return out


def _running(state: State) -> list[dict[str, Any]]:
    rows = state.query(
        "SELECT id, run_id, workflow, step, attempt, started, pid FROM tasks"
        " WHERE status='running' ORDER BY id"
    )
    alive: dict[int, bool] = {}
    out = []
    now = time.time()
    for r in rows:
        rid = r["run_id"]
        if rid not in alive:
            alive[rid] = state.run_alive(rid)
        if alive[rid]:
            t = dict(r)
            t["elapsed"] = round(now - r["started"], 3) if r["started"] else None
            out.append(t)
    return out


def _metrics(state: State, window: float = 86400.0) -> dict[str, Any]:
    """Task metrics over the last day: counts by status, wall and CPU time, peak RSS."""
    since = time.time() - window
    rows = state.query(
        "SELECT status, count(*) AS n, sum(ended - started) AS wall, sum(cpu_time) AS cpu,"
        " max(peak_rss) AS rss FROM tasks WHERE started > ? GROUP BY status",
        (since,),
    )
    by_status = {r["status"]: int(r["n"]) for r in rows}
    return {
        "window_seconds": window,
        "tasks": sum(by_status.values()),
        "by_status": by_status,
        "wall_time": round(sum(r["wall"] or 0.0 for r in rows), 3),
        "cpu_time": round(sum(r["cpu"] or 0.0 for r in rows), 3),
        "peak_rss_max": max((r["rss"] or 0 for r in rows), default=0),
    }
