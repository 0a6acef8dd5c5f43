"""The audit log's rows in ``state.db`` (table ``audit``, state version 5).

Appended to, never updated: ``append`` adds one row and prunes, in one transaction, and
``prune`` is the only DELETE (retention by age and count, as journald's
``MaxRetentionSec``/``SystemMaxUse`` or Kubernetes' audit ``maxage``/``maxbackup``). No
orch verb edits a row. ``rows`` reads them; a state written before version 5 (read-only,
not upgraded) reads as an empty log.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from runner.store.state import State


class AuditRecord(NamedTuple):
    """One state-changing command. ``at``: seconds since the epoch (UTC); ``argv``: the
    command line after ``orch``, masked; ``exit_code``: None for a start (``watch``
    begins), else how it ended; ``error``: its one error line, masked."""

    at: float
    user: str | None
    host: str | None
    pid: int
    commit: str | None
    dirty: bool | None
    argv: list[str]
    exit_code: int | None
    error: str | None


def append(
    state: State, rec: AuditRecord, *, max_rows: int, max_age: float | None, now: float
) -> int:
    """Add ``rec`` and prune (``prune``), in one transaction; returns the row's id."""
    with state.tx() as c:
        cur = c.execute(
            "INSERT INTO audit (at, user, host, pid, git_commit, dirty, argv, exit_code, error)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (
                rec.at,
                rec.user,
                rec.host,
                rec.pid,
                rec.commit,
                None if rec.dirty is None else int(rec.dirty),
                json.dumps(rec.argv),
                rec.exit_code,
                rec.error,
            ),
        )
        _prune(c, max_rows, max_age, now)
        return int(cur.lastrowid or 0)


def _prune(c: Any, max_rows: int, max_age: float | None, now: float) -> None:
    """Retention: rows older than ``max_age`` seconds (None: no age limit), then all but
    the newest ``max_rows``."""
    if max_age is not None:
        c.execute("DELETE FROM audit WHERE at < ?", (now - max_age,))
    c.execute(
        "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (max_rows,),
    )


def rows(state: State, since: float | None = None) -> list[dict[str, Any]]:
    """The log, oldest first, from ``since`` (seconds since the epoch) on: JSON-able dicts
    with ``id, at, user, host, pid, commit, dirty, argv, exit_code, error``."""
    have = state.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='audit'")
    if not have:
        return []
    found = state.query(
        "SELECT * FROM audit WHERE at >= ? ORDER BY id", (since if since is not None else 0.0,)
    )
    return [
        {
            "id": r["id"],
            "at": r["at"],
            "user": r["user"],
            "host": r["host"],
            "pid": r["pid"],
            "commit": r["git_commit"],
            "dirty": None if r["dirty"] is None else bool(r["dirty"]),
            "argv": json.loads(r["argv"]),
            "exit_code": r["exit_code"],
            "error": r["error"],
        }
        for r in found
    ]
