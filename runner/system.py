"""``orch system status|metrics|health`` as data: the host, every quota with what live
runners hold of it (the ``allocations`` table, dead runners' leftovers left out), running
tasks, breakers, recent task metrics and health checks.

Wiring only: the host comes from ``execute/host``, every number recorded from
``store/reads``, the quotas from the manifests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import OrchError
from runner.execute.host import HOST_QUOTA, check_git, current_load, host
from runner.store import reads
from runner.workspace import open_state

if TYPE_CHECKING:
    from runner.store.state import State
    from runner.workspace import Repo


def system_status(repo: Repo) -> dict[str, Any]:
    """Everything ``orch system`` shows, as data (the CLI prints it or dumps it as JSON)."""
    checks: list[dict[str, Any]] = []
    checks.append(check_git())
    m = None
    try:
        m = repo.manifests()
        checks.append({"name": "manifests", "ok": True, "detail": f"{len(m.workflows)} workflows"})
    except Exception as e:  # an invalid manifest must not hide the rest of the report
        checks.append({"name": "manifests", "ok": False, "detail": str(e).splitlines()[0]})
    state = None
    state_error = None
    try:
        state = open_state(repo, readonly=True)  # a report: never writes
        damage = state.damage()  # SQLite's quick_check: damage no query touched yet
        if damage is not None:
            raise damage
        checks.append({"name": "state.db", "ok": True, "detail": str(state.path)})
        if state.path.exists() and not state.immutable:
            mode = reads.journal_mode(state)
            checks.append({"name": "wal", "ok": mode == "wal", "detail": f"journal_mode={mode}"})
    except (OrchError, OSError) as e:
        checks.append({"name": "state.db", "ok": False, "detail": str(e).splitlines()[0]})
        state_error = str(e)  # status and metrics stop on it, with the same line
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
            used, stale = reads.allocations_in_use(state)
            quotas = _quotas(m, used, h, state)
            running = reads.running_tasks(state)
            brk = reads.breakers(state)
            metrics = reads.task_metrics(state)
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
        "state_error": state_error,
    }


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
            n = reads.recent_rate_events(state, q.name, q.rate_per)
            rate = {"runs": q.rate_runs, "per": q.rate_per, "recent": n}
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
