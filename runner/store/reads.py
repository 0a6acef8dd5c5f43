"""Read models: the state store's rows shaped for people and tools (``orch status``,
``history``, ``task``, ``system``, the MCP server), so the SQL that reads them lives in
``store/`` with the SQL that writes them.

Every function takes an open ``State`` and returns plain data (dicts, lists, numbers); none
writes. Readers open the state read-only and show a dead runner's tasks as interrupted
themselves (``runner.api``); the next writer records it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from runner.status import LIVE, Status

if TYPE_CHECKING:
    from runner.store.state import State


def _loads(s: str | None) -> Any:
    return json.loads(s) if s else {}


def step_status(state: State, workflow: str, steps: list[str]) -> list[dict[str, Any]]:
    """One row per step of ``workflow`` (in ``steps`` order): its record and its last task."""
    rows = {
        r["step"]: r
        for r in state.query("SELECT * FROM steps WHERE workflow=? ORDER BY env DESC", (workflow,))
    }
    tasks = {
        r["step"]: r
        for r in state.query(
            "SELECT t.* FROM tasks t JOIN (SELECT step, max(id) AS id FROM tasks"
            " WHERE workflow=? GROUP BY step) l ON t.id = l.id",
            (workflow,),
        )
    }
    out = []
    now = time.time()
    for name in steps:
        r = rows.get(name)
        t = tasks.get(name)
        # a running step: its current task's start and time so far; the record's end and
        # reason are the previous run's, not this one's
        running = bool(r and r["status"] == Status.RUNNING)
        started = (t["started"] if t else None) if running else (r["started"] if r else None)
        ended = None if running or not r else r["ended"]
        out.append(
            {
                "workflow": workflow,
                "step": name,
                "status": r["status"] if r else "never-ran",
                "env": r["env"] if r else "",
                "started": started,
                "ended": ended,
                "duration": (ended or now) - started if started and (ended or running) else None,
                "reason": (t["reason"] if t else None),
                "message": r["reason"]
                if r and r["status"] not in (Status.SUCCEEDED, Status.RUNNING)
                else None,
                "outputs": _loads(r["outputs"]) if r else {},
                "exit_code": t["exit_code"] if t else None,
                "attempt": t["attempt"] if t else None,
                "cpu_time": t["cpu_time"] if t else None,
                "peak_rss": t["peak_rss"] if t else None,
                "run_id": r["run_id"] if r else None,
                "log": t["log_path"] if t else None,
                "worker": t["worker"] if t else None,
            }
        )
    return out


def step_durations(state: State) -> dict[tuple[str, str], float]:
    """(workflow, step) -> seconds its last successful run took (its record's ``started``
    to ``ended``), for every step that has one: the live display's ETA."""
    rows = state.query(
        "SELECT workflow, step, started, ended FROM steps WHERE status=? AND ended > started",
        (Status.SUCCEEDED,),
    )
    return {(r["workflow"], r["step"]): r["ended"] - r["started"] for r in rows}


def running_steps(state: State, workflows: list[str]) -> list[tuple[str, str]]:
    """(workflow, step) of every step recorded as running in ``workflows``."""
    if not workflows:
        return []
    marks = ",".join("?" * len(workflows))
    rows = state.query(
        f"SELECT workflow, step FROM steps WHERE status=? AND workflow IN ({marks})",
        (Status.RUNNING, *workflows),
    )
    return [(r["workflow"], r["step"]) for r in rows]


def breakers(state: State) -> list[dict[str, Any]]:
    return [dict(r) for r in state.query("SELECT * FROM breakers ORDER BY name")]


def history(state: State, workflows: list[str] | None, limit: int) -> list[dict[str, Any]]:
    """Past runs, newest first, each with its tasks; only runs touching ``workflows``."""
    runs = state.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (max(limit * 5, limit),))
    out = []
    for r in runs:
        wfs = json.loads(r["workflows"] or "[]")
        if workflows and not set(workflows) & set(wfs):
            continue
        out.append(_run(state, r))
        if len(out) >= limit:
            break
    return out


def is_rowid(n: int) -> bool:
    """``n`` could be a row's id: SQLite's integers are 64-bit, and a larger one given
    to a query is an OverflowError, not a row that is not there."""
    return 0 <= n < 2**63


def run(state: State, run_id: int) -> dict[str, Any] | None:
    """Run ``run_id`` with its tasks, as a row of ``history``; None when there is none."""
    if not is_rowid(run_id):
        return None
    rows = state.query("SELECT * FROM runs WHERE id=?", (run_id,))
    return _run(state, rows[0]) if rows else None


def run_status(state: State, run_id: int) -> str | None:
    """Run ``run_id``'s recorded status (``runs.status``, a ``Status`` value; a dead
    runner's run still reads ``running`` until a writer reaps it); None when there is no
    such run or ``run_id`` cannot be a row's id. One indexed row, no tasks read."""
    if not is_rowid(run_id):
        return None
    rows = state.query("SELECT status FROM runs WHERE id=?", (run_id,))
    return rows[0]["status"] if rows else None


def _run(state: State, r: Any) -> dict[str, Any]:
    wfs = json.loads(r["workflows"] or "[]")
    tasks = state.query("SELECT * FROM tasks WHERE run_id=? ORDER BY id", (r["id"],))
    return {
        "id": r["id"],
        "started": r["started"],
        "ended": r["ended"],
        "status": r["status"],
        "commit": r["git_commit"],
        "dirty": None if r["dirty"] is None else bool(r["dirty"]),
        "env": r["env"],
        "workflows": wfs,
        "summary": json.loads(r["summary"]) if r["summary"] else {},
        "tasks": [
            {
                "id": t["id"],
                "workflow": t["workflow"],
                "step": t["step"],
                "attempt": t["attempt"],
                "status": t["status"],
                "reason": t["reason"],
                "started": t["started"],
                "ended": t["ended"],
                "exit_code": t["exit_code"],
                "delay": t["delay"],
                "cpu_time": t["cpu_time"],
                "peak_rss": t["peak_rss"],
                "log": t["log_path"],
                "message": t["message"],
                "worker": t["worker"],
            }
            for t in tasks
        ],
    }


def last_log_path(state: State, workflow: str, step: str, run: int | None) -> str | None:
    """The repo-relative log of the step's last task (in run ``run``, if given)."""
    row = last_log_task(state, workflow, step, run)
    return row["log_path"] if row else None


def last_log_task(
    state: State, workflow: str, step: str, run: int | None, attempt: int | None = None
) -> dict[str, Any] | None:
    """The step's last task that has a log (in run ``run``, and of attempt number
    ``attempt``, if given): {id, run_id, attempt, status, log_path}, or None."""
    sql = (
        "SELECT id, run_id, attempt, status, log_path FROM tasks"
        " WHERE workflow=? AND step=? AND log_path IS NOT NULL"
    )
    args: tuple[Any, ...] = (workflow, step)
    if run is not None:
        sql += " AND run_id=?"
        args += (run,)
    if attempt is not None:
        sql += " AND attempt=?"
        args += (attempt,)
    rows = state.query(sql + " ORDER BY id DESC LIMIT 1", args)
    return dict(rows[0]) if rows else None


def tasks(state: State, limit: int) -> list[dict[str, Any]]:
    """Live tasks first, then the most recent."""
    marks = ",".join("?" * len(LIVE))
    rows = state.query(
        f"SELECT * FROM tasks ORDER BY CASE WHEN status IN ({marks}) THEN 0 ELSE 1 END,"
        " id DESC LIMIT ?",
        (*LIVE, limit),
    )
    return [dict(r) for r in rows]


def task(state: State, task_id: int) -> dict[str, Any] | None:
    if not is_rowid(task_id):
        return None
    rows = state.query("SELECT * FROM tasks WHERE id=?", (task_id,))
    return dict(rows[0]) if rows else None


# -- orch system -----------------------------------------------------------------------


def journal_mode(state: State) -> str:
    """SQLite's journal mode of the state (``wal`` is what writers set)."""
    return str(state.query("PRAGMA journal_mode")[0][0])


def allocations_in_use(state: State) -> tuple[dict[str, dict[str, float]], int]:
    """What live runners hold, per quota and resource; and how many rows are stale (their
    runner died; the next apply reclaims them)."""
    rows = state.query("SELECT run_id, quota, resource, amount FROM allocations")
    alive: dict[int, bool] = {}
    used: dict[str, dict[str, float]] = {}
    stale = 0
    for r in rows:
        rid = r["run_id"]
        if rid not in alive:
            alive[rid] = state.run_alive(rid)
        if not alive[rid]:
            stale += 1
            continue
        q = used.setdefault(r["quota"], {})
        q[r["resource"]] = q.get(r["resource"], 0.0) + r["amount"]
    return used, stale


def recent_rate_events(state: State, quota: str, window: float) -> int:
    """Runs started under ``quota`` in the last ``window`` seconds."""
    n = state.query(
        "SELECT count(*) FROM rate_events WHERE quota=? AND at > ?",
        (quota, time.time() - window),
    )[0][0]
    return int(n)


def running_tasks(state: State) -> list[dict[str, Any]]:
    """Tasks running under a live runner, with seconds elapsed."""
    rows = state.query(
        "SELECT id, run_id, workflow, step, attempt, started, pid, worker FROM tasks"
        " WHERE status=? ORDER BY id",
        (Status.RUNNING,),
    )
    alive: dict[int, bool] = {}
    out = []
    now = time.time()
    for r in rows:
        rid = r["run_id"]
        if rid not in alive:
            alive[rid] = state.run_alive(rid)
        if alive[rid]:
            t = dict(r)
            t["elapsed"] = round(now - r["started"], 3) if r["started"] else None
            out.append(t)
    return out


def task_metrics(state: State, window: float = 86400.0) -> dict[str, Any]:
    """Task metrics over the last ``window`` seconds: counts by status, wall and CPU time
    (seconds), peak RSS (bytes)."""
    since = time.time() - window
    rows = state.query(
        "SELECT status, count(*) AS n, sum(ended - started) AS wall, sum(cpu_time) AS cpu,"
        " max(peak_rss) AS rss FROM tasks WHERE started > ? GROUP BY status",
        (since,),
    )
    by_status = {r["status"]: int(r["n"]) for r in rows}
    return {
        "window_seconds": window,
        "tasks": sum(by_status.values()),
        "by_status": by_status,
        "wall_time": round(sum(r["wall"] or 0.0 for r in rows), 3),
        "cpu_time": round(sum(r["cpu"] or 0.0 for r in rows), 3),
        "peak_rss_max": max((r["rss"] or 0 for r in rows), default=0),
    }


# -- orch project status ---------------------------------------------------------------


def runs_touching(state: State, names: set[str], scan: int = 500) -> list[dict[str, Any]]:
    """Of the last ``scan`` runs, those that touched any workflow in ``names``, newest
    first; ``workflows`` narrowed to ``names``."""
    out = []
    for r in state.query(
        "SELECT id, started, ended, status, env, workflows, summary FROM runs"
        " ORDER BY id DESC LIMIT ?",
        (scan,),
    ):
        wfs = json.loads(r["workflows"] or "[]")
        if not names & set(wfs):
            continue
        out.append(
            {
                "id": r["id"],
                "started": r["started"],
                "ended": r["ended"],
                "status": r["status"],
                "env": r["env"] or "",
                "workflows": [w for w in wfs if w in names],
                "summary": json.loads(r["summary"]) if r["summary"] else {},
            }
        )
    return out


def task_logs(state: State, ids: list[int]) -> dict[int, dict[str, Any]]:
    """{task id: {log_path, exit_code}} for the given tasks."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = state.query(
        f"SELECT id, log_path, exit_code FROM tasks WHERE id IN ({marks})", tuple(ids)
    )
    return {r["id"]: {"log_path": r["log_path"], "exit_code": r["exit_code"]} for r in rows}


def run_step_statuses(state: State, run_id: int, workflow: str) -> dict[str, str]:
    """{step: status of its last task} in run ``run_id`` for ``workflow``."""
    rows = state.query(
        "SELECT step, status FROM tasks WHERE run_id=? AND workflow=? ORDER BY id",
        (run_id, workflow),
    )
    return {r["step"]: r["status"] for r in rows}
