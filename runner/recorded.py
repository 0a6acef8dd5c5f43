"""The recorded state through an opened ``Repo``: the readers behind ``api.status``,
``history``, ``run``, ``tasks``, ``task``, ``log_task``... and the cancel requests.

Readers open the state store read-only and never write: a row still ``running`` in a run
whose runner died reads as ``interrupted`` (``as_seen``), what the next writer records;
a record that reads as missing from a damaged store says the damage (``raise_damage``).
Shapes and errors: ``runner.api``'s docstrings (docs/api.md).
"""

from __future__ import annotations

from typing import Any

from runner.errors import OrchError
from runner.status import LIVE, Status
from runner.workspace import Repo, open_state


def status(
    repo: Repo, workflows: list[str] | None = None, project: str | None = None
) -> list[dict[str, Any]]:
    """``api.status``: its docstring says what and which errors."""
    from runner.reconcile.selection import select_workflows
    from runner.store import reads

    m = repo.manifests()
    wfs = select_workflows(m, list(workflows or []), project)
    state = open_state(repo, readonly=True)  # readers never reap or write
    try:
        dead = set(state.dead_runs())
        rows = [r for wf in wfs for r in reads.step_status(state, wf.name, wf.step_names)]
    finally:
        state.close()
    for r in rows:
        as_seen(r, r["run_id"], dead)
    return rows


def step_durations(repo: Repo) -> dict[tuple[str, str], float]:
    """``api.step_durations``: its docstring says what and which errors."""
    from runner.store import reads

    state = open_state(repo, readonly=True)
    try:
        return reads.step_durations(state)
    finally:
        state.close()


def breakers(repo: Repo) -> list[dict[str, Any]]:
    """``api.breakers``: its docstring says what and which errors."""
    from runner.store import reads

    state = open_state(repo, readonly=True)
    try:
        return reads.breakers(state)
    finally:
        state.close()


def audit(repo: Repo, since: float | None = None) -> list[dict[str, Any]]:
    """``api.audit``: its docstring says what and which errors."""
    from runner.events import iso_utc
    from runner.store import audit as store

    state = open_state(repo, readonly=True)
    try:
        rows = store.rows(state, since)
    finally:
        state.close()
    return [{"id": r["id"], "time": iso_utc(r["at"]), **r} for r in rows]


def history(
    repo: Repo, workflows: list[str] | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """``api.history``: its docstring says what and which errors."""
    from runner.store import reads

    state = open_state(repo, readonly=True)
    try:
        dead = set(state.dead_runs())
        runs = reads.history(state, workflows, limit)
    finally:
        state.close()
    for r in runs:
        as_seen(r, r["id"], dead)
        for t in r["tasks"]:
            as_seen(t, r["id"], dead)
    return runs


def run(repo: Repo, run_id: int) -> dict[str, Any]:
    """``api.run``: its docstring says what and which errors."""
    from runner.store import reads

    r, dead = read_row(
        repo, lambda st: reads.run(st, run_id), f"no run with id {run_id} (see orch history)"
    )
    as_seen(r, r["id"], dead)
    for t in r["tasks"]:
        as_seen(t, r["id"], dead)
    return r


def log_task(
    repo: Repo, workflow: str, step: str, run: int | None = None, attempt: int | None = None
) -> dict[str, Any]:
    """``api.log_task``: its docstring says what and which errors."""
    from runner.store import reads

    m = repo.manifests()
    wf = m.workflow(workflow)
    if step in wf.groups:
        from runner.render import shown

        names = ", ".join(shown(n) for n in wf.groups[step][:3])
        raise OrchError(
            f"step '{step}' fans out: name one instance ({names}{', ...' if len(wf.groups[step]) > 3 else ''})"
        )
    if step not in wf.step_names:
        from runner.errors import did_you_mean

        raise OrchError(
            f"workflow '{workflow}' has no step '{step}' ({did_you_mean(step, wf.step_names) or 'see orch graph ' + workflow})"
        )
    state = open_state(repo, readonly=True)
    try:
        if attempt is not None and run is None:  # attempt N of the latest run of the step
            last = reads.last_log_task(state, workflow, step, None)
            run = last["run_id"] if last else None
        row = reads.last_log_task(state, workflow, step, run, attempt)
        if row is None:
            raise_damage(state)
    finally:
        state.close()
    if row is None:
        if attempt is not None:
            raise OrchError(
                f"{workflow}/{step} has no attempt {attempt}"
                + (f" in run {run}" if run else "")
                + f" (see orch history --tasks {workflow})"
            )
        raise OrchError(
            f"{workflow}/{step} has no log yet"
            + (f" in run {run}" if run else "")
            + " (run orch apply first)"
        )
    return row


def tasks(repo: Repo, limit: int = 20) -> list[dict[str, Any]]:
    """``api.tasks``: its docstring says what and which errors."""
    from runner.store import reads

    state = open_state(repo, readonly=True)
    try:
        dead = set(state.dead_runs())
        rows = reads.tasks(state, limit)
    finally:
        state.close()
    for t in rows:
        as_seen(t, t["run_id"], dead)
    return rows


def task(repo: Repo, task_id: int) -> dict[str, Any]:
    """``api.task``: its docstring says what and which errors."""
    from runner.store import reads

    t, dead = read_row(
        repo,
        lambda st: reads.task(st, task_id),
        f"no task with id {task_id} (see orch task list)",
    )
    as_seen(t, t["run_id"], dead)
    return t


def read_row(repo: Repo, read: Any, missing: str) -> tuple[dict[str, Any], set[int]]:
    """``read(state)``'s row from the read-only state, with the runs found dead (for
    ``as_seen``); OrchError ``missing`` when there is none (or the store's damage, when
    that is why)."""
    state = open_state(repo, readonly=True)
    try:
        dead = set(state.dead_runs())
        row = read(state)
        if row is None:
            raise_damage(state)
    finally:
        state.close()
    if row is None:
        raise OrchError(missing)
    return row, dead


def retry_pending(repo: Repo, task_id: int) -> bool:
    """``api.retry_pending``: its docstring says what and which errors."""
    from runner.store import reads
    from runner.store.tasks import waiting_retry

    state = open_state(repo, readonly=True)
    try:
        row = reads.task(state, task_id)
        return row is not None and waiting_retry(state, row)
    finally:
        state.close()


KILLED = "the runner was killed"


def as_seen(row: dict[str, Any], run_id: int | None, dead: set[int]) -> None:
    """A row still ``running`` in a run whose runner is gone, as readers show it:
    ``interrupted``, what the next writer records (readers never write it themselves)."""
    if row.get("status") in LIVE and run_id in dead:
        row["status"] = Status.INTERRUPTED
        if "message" in row:
            row["message"] = KILLED
        if "duration" in row and row.get("ended") is None:
            row["duration"] = None  # when its runner died is not known: no time so far


def raise_damage(state: Any) -> None:
    """Before saying a record does not exist: a damaged page reads as no rows."""
    damage = state.damage()
    if damage is not None:
        raise damage


def cancel_task(repo: Repo, task_id: int) -> dict[str, Any]:
    """``api.cancel_task``: its docstring says what and which errors."""
    from runner.store.tasks import CANCEL_TASK, waiting_retry

    t = task(repo, task_id)
    state = open_state(repo)
    try:
        if t["status"] not in LIVE and not waiting_retry(state, t):
            raise OrchError(f"task {task_id} is not running (it is {t['status']})")
        state.update_task(task_id, cancel_requested=CANCEL_TASK)
    finally:
        state.close()
    return t


def cancel_run(repo: Repo, run_id: int) -> list[dict[str, Any]]:
    """``api.cancel_run``: its docstring says what and which errors."""
    from runner.store import reads
    from runner.store.tasks import CANCEL_RUN, cancellable, request_run_cancel

    seen = open_state(repo, readonly=True)  # an unknown run: no state file made to say so
    try:
        if reads.run_status(seen, run_id) is None:
            raise_damage(seen)
            raise OrchError(f"no run with id {run_id} (see orch history)")
    finally:
        seen.close()
    state = open_state(repo)
    try:
        status = reads.run_status(state, run_id)
        dead = set(state.dead_runs())
        live = run_id not in dead and status == Status.RUNNING
        rows = cancellable(state, run_id) if live else []
        if not live:
            st = Status.INTERRUPTED if run_id in dead else status
            raise OrchError(f"run {run_id} has no running task (it is {st})")
        request_run_cancel(state, run_id)
        for t in rows:
            state.update_task(t["id"], cancel_requested=CANCEL_RUN)
    finally:
        state.close()
    return rows
