"""Task rows read by the engine while it runs (the writes are ``State`` methods)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.store.state import State


# tasks.cancel_requested: 1 this task (orch task cancel ID), 2 its whole run (--run)
CANCEL_TASK = 1
CANCEL_RUN = 2


def cancel_requests(state: State, run_id: int) -> list[tuple[str, str, bool]]:
    """(workflow, step, whole run?) of the tasks of ``run_id`` that ``orch task cancel``
    asked to end: running ones, and attempts whose step waits out a retry back-off (the
    row of the failed attempt carries the request until the next attempt's row exists).
    One query, made every quarter second while tasks run."""
    rows = state.query(
        "SELECT workflow, step, cancel_requested FROM tasks WHERE run_id=?"
        " AND (status IN ('running', 'queued') OR delay IS NOT NULL) AND cancel_requested>0",
        (run_id,),
    )
    return [(r["workflow"], r["step"], r["cancel_requested"] == CANCEL_RUN) for r in rows]


def waiting_retry(state: State, row: dict[str, Any]) -> bool:
    """Whether task ``row`` is a failed attempt whose step waits out its retry back-off
    now: it has a back-off ``delay``, no later attempt exists yet, and its runner lives."""
    if row.get("delay") is None or row["status"] not in ("failed", "timed_out"):
        return False
    later = state.query(
        "SELECT 1 FROM tasks WHERE run_id=? AND workflow=? AND step=? AND id>? LIMIT 1",
        (row["run_id"], row["workflow"], row["step"], row["id"]),
    )
    return not later and state.run_alive(row["run_id"])


def cancellable(state: State, run_id: int) -> list[dict[str, Any]]:
    """The tasks of ``run_id`` a cancel can reach: running or queued, or waiting out a
    retry back-off."""
    rows = [dict(r) for r in state.query("SELECT * FROM tasks WHERE run_id=?", (run_id,))]
    return [r for r in rows if r["status"] in ("running", "queued") or waiting_retry(state, r)]
