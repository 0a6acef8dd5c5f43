"""The audit log: who ran which state-changing command, where, and how it ended.

Recorded for ``apply`` (and ``run``, ``workflow run``) when a run began or it failed,
``task cancel``, ``state reset``, ``project create|archive|restore``, ``workflow
create``, ``watch`` (a row when it starts, one when it stops), and each MCP call that acts
(``apply``). Read verbs (plan, status, history, logs, validate, ...) are not recorded,
nor is a no-op apply: it begins no run and writes nothing, and a write to ``state.db``
would spoil the no-op witness (``runner.noop``), making the next no-op a full plan.

A row: when (UTC), user, host, pid, the repository's commit and dirty flag, the command
line (argv, secrets masked) and its outcome (exit code, the error line). Stored in
``state.db`` (``runner.store.audit``); kept by ``.orch/config.yaml``'s ``audit: {max_rows,
max_age}`` (defaults 10000 rows, 90 days), pruned when a row is added. A failing command
never creates ``state.db`` only to record its failure, and an audit row that cannot be
written (a read-only ``.orch/``, a full disk) is a warning: it never changes the
command's own exit code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# runner.cli targets ("module:function") of the verbs that change state
AUDITED = frozenset(
    {
        "run:apply",
        "records:task_cancel",
        "records:state_reset",
        "cache:gc",
        "cache:clear",
        "projects:project_create",
        "projects:project_archive",
        "projects:project_restore",
        "projects:workflow_create",
        "watch:watch",
    }
)


def who() -> tuple[str | None, str | None]:
    """(user, host): the login name as ``getpass`` finds it (``$LOGNAME``, ``$USER``...,
    then the password database), else the uid; the host name."""
    import getpass
    import socket

    try:
        user: str | None = getpass.getuser()
    except Exception:  # no such variable and no passwd entry (a container's uid)
        user = str(os.getuid()) if hasattr(os, "getuid") else None
    try:
        host: str | None = socket.gethostname()
    except OSError:
        host = None
    return user, host


def record(
    root: Path,
    argv: list[str],
    exit_code: int | None,
    error: str | None,
    mask: Callable[[Any], Any],
    now: float | None = None,
    into: Path | None = None,
) -> None:
    """Append one row to ``root``'s audit log and prune it. ``mask`` hides secrets in
    argv and the error line. Only for a command that succeeded (or is starting) is
    ``state.db`` created; raises StateError/OSError when it cannot be written.
    ``into``: another state file (the backup ``orch state reset`` just made: the reset
    is the last row of the log it moved aside, and leaves no ``state.db`` behind)."""
    from runner.manifests.load import read_config
    from runner.manifests.sources import git_commit_state
    from runner.store.audit import AuditRecord, append
    from runner.store.state import open_state

    state_db = into or root / ".orch" / "state.db"
    if exit_code not in (0, None) and not state_db.exists():
        return
    config, _diags = read_config(root)  # a broken config: the defaults
    commit, dirty = git_commit_state(root)
    user, host = who()
    rec = AuditRecord(
        at=time.time() if now is None else now,
        user=user,
        host=host,
        pid=os.getpid(),
        commit=commit,
        dirty=dirty,
        argv=[str(a) for a in mask(list(argv))],
        exit_code=exit_code,
        error=None if error is None else str(mask(error)),
    )
    state = open_state(root / ".orch", path=into)
    try:
        append(
            state,
            rec,
            max_rows=config.audit_max_rows,
            max_age=config.audit_max_age,
            now=rec.at,
        )
    finally:
        state.close()
