"""The recorded state for people: ``orch status``, ``history``, ``audit``, ``task
list|status|cancel`` and ``state reset``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from runner import api
from runner.cli.common import (
    print_json,
    repo_from,
    require_repository,
)
from runner.render import paint, shown, table, use_color
from runner.status import Status


def status(args: argparse.Namespace) -> int:
    repo = repo_from(args)
    rows = api.status(repo, args.workflows, args.project)
    brk = api.breakers(repo)
    if args.json:
        print_json({"steps": rows, "breakers": brk})
        return 0
    color = use_color()
    from runner.units import format_bytes, format_duration

    out = []
    workers = any(r["worker"] for r in rows)  # the column only where a cluster ran something
    for r in rows:
        st = r["status"]
        c = {
            Status.SUCCEEDED: "green",
            Status.FAILED: "red",
            Status.TIMED_OUT: "red",
            Status.BLOCKED: "yellow",
            Status.INTERRUPTED: "red",
        }.get(st, "dim")
        out.append(
            [
                r["workflow"],
                r["step"],
                paint(st, c, color),
                _ago(when) if (when := r["ended"] or running_since(r)) else "-",
                format_duration(r["duration"]) if r["duration"] is not None else "-",
                f"{r['cpu_time']:.2f}s" if r["cpu_time"] is not None else "-",
                format_bytes(r["peak_rss"]) if r["peak_rss"] else "-",
                *([r["worker"] or "-"] if workers else []),
                (r["message"] or r["reason"] or "")[:70],
            ]
        )
    heads = ["WORKFLOW", "STEP", "STATUS", "WHEN", "TOOK", "CPU", "PEAK RSS"]
    sys.stdout.write(table(out, [*heads, *(["WORKER"] if workers else []), "WHY"]))
    for b in brk:
        until = (
            f" until {time.strftime('%H:%M:%S', time.localtime(b['opened_until']))}"
            if b["state"] == "open"
            else ""
        )
        print(
            f"breaker {shown(b['name'])}: {b['state']}{until} ({b['failures']} consecutive failures)"
        )
    return 0


def running_since(r: dict[str, Any]) -> float | None:
    """When a running step's current task started (its WHEN while it runs)."""
    return r.get("started") if r["status"] == Status.RUNNING else None


def _ago(t: float) -> str:
    d = time.time() - t
    if d < 60:
        return f"{d:.0f}s ago"
    if d < 3600:
        return f"{d / 60:.0f}m ago"
    if d < 86400:
        return f"{d / 3600:.0f}h ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def history(args: argparse.Namespace) -> int:
    repo = repo_from(args)
    require_repository(repo)
    runs = api.history(repo, args.workflows, args.limit)
    if args.json:
        print_json(runs)
        return 0
    rows = []
    for r in runs:
        summary = ", ".join(f"{v} {k}" for k, v in sorted(r["summary"].items()))
        commit = (r["commit"] or "-")[:10] + ("+dirty" if r["dirty"] else "")
        rows.append(
            [
                str(r["id"]),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"])),
                r["status"],
                commit,
                ",".join(r["workflows"])[:40],
                summary,
            ]
        )
    sys.stdout.write(table(rows, ["RUN", "STARTED", "STATUS", "COMMIT", "WORKFLOWS", "RESULT"]))
    if runs and args.tasks:
        from runner.units import format_bytes, format_duration

        for r in runs:
            print(f"\nrun {r['id']}:")
            workers = any(t["worker"] for t in r["tasks"])
            trows = [
                [
                    f"{t['workflow']}/{t['step']}",
                    str(t["attempt"]),
                    t["status"],
                    "-" if t["exit_code"] is None else str(t["exit_code"]),
                    format_duration(t["ended"] - t["started"])
                    if t["ended"] and t["started"]
                    else "-",
                    f"{t['cpu_time']:.2f}s" if t["cpu_time"] is not None else "-",
                    format_bytes(t["peak_rss"]) if t["peak_rss"] else "-",
                    *([t["worker"] or "-"] if workers else []),
                    # as orch status's WHY: what went wrong (worker lost: ADDR...), else
                    # why it ran
                    (t.get("message") or t["reason"] or "")[:50],
                ]
                for t in r["tasks"]
            ]
            heads = ["STEP", "TRY", "STATUS", "EXIT", "WALL", "CPU", "PEAK RSS"]
            sys.stdout.write(table(trows, [*heads, *(["WORKER"] if workers else []), "WHY"]))
    return 0


def audit(args: argparse.Namespace) -> int:
    since = None if args.since is None else since_time(args.since)
    repo = repo_from(args)
    require_repository(repo)
    rows = api.audit(repo, since)
    if args.json:
        print_json(rows)
        return 0
    import shlex

    out = []
    for r in rows:
        commit = (r["commit"] or "-")[:10] + ("+dirty" if r["dirty"] else "")
        out.append(
            [
                str(r["id"]),
                r["time"],
                f"{r['user'] or '?'}@{r['host'] or '?'}",
                str(r["pid"]),
                commit,
                "started" if r["exit_code"] is None else str(r["exit_code"]),
                "orch " + shlex.join(r["argv"]),
                (r["error"] or "")[:60],
            ]
        )
    heads = ["ID", "TIME (UTC)", "WHO", "PID", "COMMIT", "EXIT", "COMMAND", "ERROR"]
    sys.stdout.write(table(out, heads))
    return 0


def since_time(text: str) -> float:
    """``--since``'s seconds since the epoch: an ISO 8601 date or time (naive: UTC, as the
    log is kept), or an age (``7d``, ``12h``: that long ago). UsageError (exit 2) else."""
    from datetime import datetime, timezone

    from runner.units import parse_duration

    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        from runner.errors import UsageError

        raise UsageError(
            f"--since {text}: not a date; give YYYY-MM-DD, an ISO 8601 time such as "
            "2026-11-30T08:00Z, or an age such as 7d (see orch audit --help)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def task_list(args: argparse.Namespace) -> int:
    repo = repo_from(args)
    require_repository(repo)
    rows = api.tasks(repo, args.limit)
    if args.json:
        print_json(rows)
        return 0
    sys.stdout.write(
        table(
            [
                [
                    str(t["id"]),
                    str(t["run_id"]),
                    f"{t['workflow']}/{t['step']}",
                    str(t["attempt"]),
                    t["status"],
                    "-" if t["exit_code"] is None else str(t["exit_code"]),
                    (t["reason"] or "")[:50],
                ]
                for t in rows
            ],
            ["ID", "RUN", "STEP", "TRY", "STATUS", "EXIT", "WHY"],
        )
    )
    return 0


def task_status(args: argparse.Namespace) -> int:
    t = api.task(repo_from(args), args.id)
    if args.json:
        print_json(t)
        return 0
    for k, v in t.items():
        print(f"{k}: {shown(v)}")
    return 0


def task_cancel(args: argparse.Namespace) -> int:
    if (args.id is None) == (args.run is None):
        from runner.errors import UsageError

        raise UsageError("task cancel: give a task ID or --run RUN_ID (one of them)")
    if args.run is not None:
        tasks = api.cancel_run(repo_from(args), args.run)
        if args.json:
            print_json({"cancel_requested": True, "run_id": args.run, "tasks": tasks})
            return 0
        names = ", ".join(f"{t['id']} ({shown(t['workflow'])}/{shown(t['step'])})" for t in tasks)
        what = f"task{'s' if len(tasks) > 1 else ''} {names}" if tasks else "no task running yet"
        print(
            f"cancel requested for run {args.run}: {what}; its runner ends them within a "
            "second and starts no more (the steps left are cancelled)"
        )
        return 0
    t = api.cancel_task(repo_from(args), args.id)
    if args.json:
        print_json({"cancel_requested": True, "task": t})
        return 0
    print(
        f"cancel requested for task {t['id']} ({shown(t['workflow'])}/{shown(t['step'])}); "
        "its runner ends it within a second"
    )
    return 0


def state_reset(args: argparse.Namespace) -> int:
    from runner.cli.common import AUDIT_INTO, AUDIT_SKIP

    dst = api.state_reset(repo_from(args))
    # audited in the backup it made (no state.db is left behind); nothing moved: no row
    AUDIT_INTO[0], AUDIT_SKIP[0] = dst, dst is None
    if args.json:
        print_json({"moved_to": str(dst) if dst else None})
        return 0
    print(
        f"moved the state to {shown(dst)}; the next apply starts afresh"
        if dst
        else "no state to reset"
    )
    return 0
