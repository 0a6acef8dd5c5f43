"""What running tasks hold of each quota, across every live runner on a repository.

Allocations live in the state store so a second ``orch apply`` sees the first one's
tasks; a runner that died (its kernel lock is gone) holds nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.store.state import State


def held_by_others(state: State, run_id: int) -> dict[str, dict[str, float]]:
    """What live runners other than ``run_id`` hold: {quota: {resource: amount}}."""
    rows = state.query(
        "SELECT run_id, quota, resource, amount FROM allocations WHERE run_id != ?", (run_id,)
    )
    out: dict[str, dict[str, float]] = {}
    alive: dict[int, bool] = {}
    for r in rows:
        rid = r["run_id"]
        if rid not in alive:
            alive[rid] = state.run_alive(rid)
        if not alive[rid]:
            continue
        q = out.setdefault(r["quota"], {})
        q[r["resource"]] = q.get(r["resource"], 0.0) + r["amount"]
    return out


def allocate(
    state: State,
    run_id: int,
    task_key: str,
    qnames: list[str],
    req: dict[str, float],
    quotas: dict[str, Any],
) -> bool:
    """Take ``req`` in every quota, or nothing. Checked against what every live runner
    holds and written in one write transaction, so two runners can never both take
    the last slot; rows of dead runners do not count (that is how they are reclaimed)."""
    rows = [(q, r, req[r]) for q in qnames for r in quotas[q].limits if req.get(r)]
    rated = [q for q in qnames if quotas[q].rate_runs and quotas[q].rate_per]
    if not rows and not rated:
        return True
    now = time.time()
    with state.tx() as c:
        if rows:
            used: dict[tuple[str, str], float] = {}
            alive: dict[int, bool] = {run_id: True}
            marks = ",".join("?" * len(qnames))
            for rid, q, r, amount in c.execute(
                f"SELECT run_id, quota, resource, amount FROM allocations WHERE quota IN ({marks})",
                tuple(qnames),
            ).fetchall():
                if rid not in alive:
                    alive[rid] = state.run_alive(rid)
                if alive[rid]:
                    used[(q, r)] = used.get((q, r), 0.0) + amount
            for q, r, amount in rows:
                if used.get((q, r), 0.0) + amount > quotas[q].limits[r] + 1e-9:
                    return False
        for q in rated:
            per = quotas[q].rate_per
            c.execute("DELETE FROM rate_events WHERE quota=? AND at <= ?", (q, now - per))
            n = c.execute("SELECT count(*) FROM rate_events WHERE quota=?", (q,)).fetchone()[0]
            if n >= quotas[q].rate_runs:
                return False
        c.executemany(
            "INSERT INTO allocations (run_id, task_key, quota, resource, amount, since) VALUES (?,?,?,?,?,?)",
            [(run_id, task_key, q, r, amount, now) for q, r, amount in rows],
        )
        c.executemany(
            "INSERT INTO rate_events (quota, at) VALUES (?, ?)", [(q, now) for q in rated]
        )
    return True


def free(state: State, run_id: int, task_key: str) -> None:
    """Give back every allocation of ``task_key`` in run ``run_id``. The step's kernel claim
    is not touched: its holder releases it (``State.release``)."""
    with state.tx() as c:
        c.execute("DELETE FROM allocations WHERE run_id=? AND task_key=?", (run_id, task_key))


def recent_starts(state: State, quota: str, per: float) -> int:
    """Tasks started under ``quota`` in the last ``per`` seconds (its rate limit)."""
    rows = state.query(
        "SELECT count(*) AS n FROM rate_events WHERE quota=? AND at > ?",
        (quota, time.time() - per),
    )
    return int(rows[0]["n"])
