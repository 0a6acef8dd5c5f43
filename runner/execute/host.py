"""What this machine has: the ceiling of every quota, and the tools orch needs on it.

``host()`` is what validation and the scheduler compare requests against, so it counts
what a task can really get, not what the hardware has: the CPUs this process may run on
(affinity), lowered by a cgroup CPU quota, and physical memory lowered by a cgroup memory
limit (a container with 2 CPUs on a 64-core box must not admit 64 one-core tasks).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

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


def check_git() -> dict[str, Any]:
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
