"""``orch system status|metrics|health`` as data: the host, every quota with what live
runners hold of it (the ``allocations`` table, dead runners' leftovers left out), running
tasks, breakers, recent task metrics and health checks.

Wiring only: the host comes from ``execute/host``, every number recorded from
``store/reads``, the quotas from the manifests.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from runner.errors import OrchError
from runner.execute.host import HOST_QUOTA, check_git, current_load, host
from runner.store import reads
from runner.workspace import open_state

if TYPE_CHECKING:
    from runner.store.state import State
    from runner.workspace import Repo


def system_status(repo: Repo, cluster: bool = False) -> dict[str, Any]:
    """Everything ``orch system`` shows, as data (the CLI prints it or dumps it as JSON).
    ``cluster``: also ask the configured Dask scheduler for its workers (``"cluster"``,
    see ``dask_cluster``); None otherwise."""
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
        "cluster": dask_cluster(repo) if cluster else None,
    }


def dask_cluster(repo: Repo) -> dict[str, Any] | None:
    """The Dask cluster runs would use, with its workers; None when the executor is local
    (nothing about Dask is imported then). A dask executor is configured by
    ``$ORCH_DASK_ADDRESS`` or ``.orch/config.yaml``'s ``executor:``, the address found as
    ``apply`` finds it (the variable first). Shape: {"executor": "dask", "address": str |
    None (None: each run starts a LocalCluster of its own), "workers": [...] (see
    ``execute.dask.cluster_workers``), "error": one line when the scheduler cannot be
    asked, else None}."""
    from runner.manifests.load import read_config

    conf = read_config(repo.root)[0].executor or {}
    env_address = os.environ.get("ORCH_DASK_ADDRESS")
    if conf.get("kind") != "dask" and not env_address:
        return None
    address = env_address or conf.get("address") or None
    out: dict[str, Any] = {"executor": "dask", "address": address, "workers": [], "error": None}
    if address is None:
        return out
    from runner.execute.dask import cluster_workers

    try:
        out["workers"] = cluster_workers(address)
    except OrchError as e:
        out["error"] = str(e).splitlines()[0]
    return out


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
