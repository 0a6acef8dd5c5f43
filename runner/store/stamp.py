"""The state store's stamp for the no-op witness (``runner.noop``): what the recorded state
says, in a few numbers, read without opening a ``State`` (no lock, no migration, no WAL
checkpoint -- the no-op path must stay a handful of syscalls).

A stat of ``state.db`` would not do: SQLite rewrites its files on checkpoints without a
change of content, and another orch's write may sit in the WAL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def state_key(root: Path) -> tuple[Any, ...] | None:
    """(last run id, last task id, last step update, step count), or None when there is no
    state yet or it cannot be read. Any run, task or step record written by any orch
    process moves one of them. Read-only."""
    import sqlite3

    db = root / ".orch" / "state.db"
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return tuple(
                conn.execute(
                    "SELECT (SELECT max(id) FROM runs), (SELECT max(id) FROM tasks),"
                    " (SELECT max(updated) FROM steps), (SELECT count(*) FROM steps)"
                ).fetchone()
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return None
