"""Circuit breakers shared by every runner on a repository, kept in the state store.

Steps that call the same service name one breaker; N consecutive failures open it for a
cooldown, then one trial task decides whether it closes again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runner.status import Status

if TYPE_CHECKING:
    from runner.store.state import State


def gate(
    state: State, breaker: Any, run_id: int, task_key: str, timeout: float | None
) -> tuple[str, float | None]:
    """'go', ('open', until) or 'wait', decided in one write transaction::

        closed ──N failures──> open ──cooldown over: one task is the trial──> half-open
          ^                      ^                                            |
          └───── trial succeeds ─┴──────────── trial fails ──────────────────┘

    While a trial is in flight the others wait for its result. Its owner is the run
    in the last ``breaker-trial`` event; if that runner died, or the trial outlived
    its lease (its timeout + 30s, or an hour), the next task becomes the trial.
    """
    now = time.time()
    with state.tx() as c:
        row = c.execute(
            "SELECT state, opened_until FROM breakers WHERE name=?", (breaker.name,)
        ).fetchone()
        if row is None or row[0] == "closed":
            return "go", None
        phase, until = row[0], row[1] or 0.0
        if phase == "open" and until > now:
            return "open", until
        if phase == "half-open" and until > now:
            holder = c.execute(
                "SELECT run_id FROM events WHERE kind='breaker-trial' AND subject=?"
                " ORDER BY id DESC LIMIT 1",
                (breaker.name,),
            ).fetchone()
            if holder and state.run_alive(holder[0], {run_id}):
                return "wait", None
        lease = now + (timeout + 30.0 if timeout else 3600.0)
        c.execute(
            "UPDATE breakers SET state='half-open', opened_until=?, updated=? WHERE name=?",
            (lease, now, breaker.name),
        )
        c.execute(
            "INSERT INTO events (at, run_id, kind, subject, detail) VALUES (?,?,?,?,?)",
            (now, run_id, "breaker-trial", breaker.name, task_key),
        )
    return "go", None


def record_result(state: State, breaker: Any, status: str) -> None:
    """Count a finished task. A cancelled or interrupted one says nothing about the
    service: it changes no count, and a stopped trial lets the next task try at once."""
    now = time.time()
    with state.tx() as c:
        if status not in (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT):
            c.execute(
                "UPDATE breakers SET state='open', opened_until=?, updated=?"
                " WHERE name=? AND state='half-open'",
                (now, now, breaker.name),
            )
            return
        row = c.execute(
            "SELECT failures, state FROM breakers WHERE name=?", (breaker.name,)
        ).fetchone()
        failures = row[0] if row else 0
        phase = row[1] if row else "closed"
        if status == Status.SUCCEEDED:
            failures, phase, until = 0, "closed", None
        else:
            failures += 1
            if phase == "half-open" or failures >= breaker.threshold:
                phase, until = "open", now + breaker.cooldown
            else:
                until = None
        c.execute(
            "INSERT OR REPLACE INTO breakers (name, failures, opened_until, state, updated) VALUES (?,?,?,?,?)",
            (breaker.name, failures, until, phase, now),
        )
