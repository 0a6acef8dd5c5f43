"""Task rows read by the engine while it runs (the writes are ``State`` methods)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.store.state import State


def cancel_requests(state: State, run_id: int) -> list[tuple[str, str]]:
    """(workflow, step) of the running tasks of ``run_id`` that ``orch task cancel`` asked
    to end: one query, made every quarter second while tasks run."""
    rows = state.query(
        "SELECT workflow, step FROM tasks WHERE run_id=? AND status='running'"
        " AND cancel_requested=1",
        (run_id,),
    )
    return [(r["workflow"], r["step"]) for r in rows]
