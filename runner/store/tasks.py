"""Task rows read by the engine while it runs (the writes are ``State`` methods)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.store.state import State


# tasks.cancel_requested: 1 this task (orch task cancel ID), 2 its whole run (--run)
CANCEL_TASK = 1
CANCEL_RUN = 2
# events.kind of ``orch task cancel --run``: the run itself is asked to end, so it reaches
# steps that have no task row yet (waiting on another runner's lock, a quota, a rate)
RUN_CANCEL_EVENT = "cancel-run"


def request_run_cancel(state: State, run_id: int) -> None:
    """Ask run ``run_id``'s runner to end it: its running tasks and every step it has not
    started, those waiting on locks or quotas included (``cancel_requests`` reads it)."""
    import time

    with state.tx() as c:
        c.execute(
            "INSERT INTO events (at, run_id, kind, subject, detail) VALUES (?,?,?,?,?)",
            (time.time(), run_id, RUN_CANCEL_EVENT, f"run {run_id}", "orch task cancel --run"),
        )


def cancel_requests(state: State, run_id: int) -> list[tuple[str, str, bool]]:
    """(workflow, step, whole run?) of the tasks of ``run_id`` that ``orch task cancel``
    asked to end: running ones, and attempts whose step waits out a retry back-off (the
    row of the failed attempt carries the request until the next attempt's row exists);
    and ``("", "", True)`` when the whole run was asked to end (``request_run_cancel``).
    Two small queries, made every quarter second while the run goes on."""
    rows = state.query(
        "SELECT workflow, step, cancel_requested FROM tasks WHERE run_id=?"
        " AND (status IN ('running', 'queued') OR delay IS NOT NULL) AND cancel_requested>0",
        (run_id,),
    )
    out = [(r["workflow"], r["step"], r["cancel_requested"] == CANCEL_RUN) for r in rows]
    if state.query(
        "SELECT 1 FROM events WHERE run_id=? AND kind=? LIMIT 1", (run_id, RUN_CANCEL_EVENT)
    ):
        out.append(("", "", True))  # the run as a whole, with or without a task running
    return out


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
