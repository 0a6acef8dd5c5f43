"""plan, apply/run, status, logs, history, task *, state reset, system *."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from runner import api
from runner.cli.common import (
    executor_choice,
    masked,
    print_json,
    reader_gone,
    repo_from,
    require_repository,
)
from runner.render import paint, shown, table, use_color
from runner.status import NOT_OK, Status

ICONS = {
    "run": ("+", "yellow"),
    "restore": ("<", "green"),
    "may-run": ("~", "cyan"),
    "up-to-date": ("=", "dim"),
    "skip": ("-", "yellow"),
}


def params_of(args: argparse.Namespace) -> dict[str, str]:
    """``--param KEY=VALUE`` options as KEY -> text (UsageError, exit 2, for a malformed one)."""
    pairs = getattr(args, "params", None) or []
    if not pairs:
        return {}
    from runner.projects.templates_index import parse_pairs

    return parse_pairs(pairs)


def _here(args: argparse.Namespace, name: str) -> Path:
    """A file named on the command line, read from where the command runs: the current
    folder, or DIR of ``-C DIR`` (as ``orch validate PATH`` reads one)."""
    p = Path(name)
    return p if p.is_absolute() else Path(getattr(args, "directory", None) or ".") / p


def plan(args: argparse.Namespace) -> int:
    repo = repo_from(args)
    out = getattr(args, "out", None)
    data = api.plan(
        repo,
        args.workflows,
        project=args.project,
        env=args.env,
        ref=args.ref,
        force=args.force,
        force_all=args.force_all,
        since=args.since,
        commands=getattr(args, "show_commands", False),
        params=params_of(args),
        save=_here(args, out) if out else None,
        cache=not getattr(args, "no_cache", False),
    )
    if out:
        print(
            f"Saved the plan to {shown(out)}; apply exactly it with: orch apply {shown(out)}",
            file=sys.stderr,
        )
    stale = 1 if getattr(args, "check", False) and _stale_checked(repo, data) else 0
    code = stale or _detailed(args, data)
    if args.json:
        print_json(data)
        return code
    color = use_color()
    labels = {
        "run": "will run",
        "restore": "restore",
        "may-run": "may run",
        "up-to-date": "up to date",
        "skip": "skip",
    }
    styled = {
        a: (paint(ICONS[a][0], ICONS[a][1], color), paint(labels[a], ICONS[a][1], color))
        for a in labels
    }
    out: list[str] = []  # one write: 10,000 print calls cost more than planning them
    current = None
    for s in data["steps"]:
        if s["workflow"] != current:
            current = s["workflow"]
            out.append(paint(f"workflow {current}", "bold", color))
        icon, label = styled[s["action"]]
        why = f": {shown('; '.join(s['reasons']))}" if s["reasons"] else ""
        if s["action"] == "skip":  # "skip (when: false)": a state, not a change to explain
            why = f" ({shown('; '.join(s['reasons']))})"
        out.append(f"  {icon} {shown(s['step'])}  {label}{why}")
        if "command" in s:
            out.extend(_command_lines(s, color))
    for p in data.get("pending") or []:
        out.append(
            f"  {paint('~', 'cyan', color)} {shown(p['workflow'] + '/' + p['step'] + '[*]')}  "
            f"{paint('instances known once', 'cyan', color)} {shown(p['after'])} has run"
        )
    gone = data.get("removed") or []
    for r in gone:
        out.append(
            f"  {paint('-', 'red', color)} {shown(r['workflow'] + '/' + r['step'])}  "
            f"{paint('removed', 'red', color)}: its fan-out no longer makes it; apply drops its record"
        )
    n = data["summary"]
    if not data["steps"] and not gone:
        out.append("no workflows selected")
    out.append(
        f"\nPlan: {n['run']} to run, "
        + (f"{n['restore']} to restore from the cache, " if n.get("restore") else "")
        + f"{n['may-run']} may run (if upstream outputs change), "
        f"{n['up-to-date']} up to date"
        + (f", {n['skip']} to skip" if n.get("skip") else "")
        + (f", {len(gone)} removed." if gone else ".")
    )
    sys.stdout.write("\n".join(out) + "\n")
    if stale:
        print(
            "orch: workflows marked spec.check are out of date; run 'orch apply' and commit",
            file=sys.stderr,
        )
    return code


def explain(args: argparse.Namespace) -> int:
    """``orch explain WORKFLOW STEP``: the plan line, then one line per part of the
    fingerprint, ``~`` marking those that changed (old → new)."""
    repo = repo_from(args)
    data = api.explain(repo, args.workflow, args.step, env=args.env, params=params_of(args))
    if args.json:
        print_json(data)
        return 0
    color = use_color()
    labels = {"run": "will run", "may-run": "may run", "up-to-date": "up to date"}
    why = f": {shown('; '.join(data['reasons']))}" if data["reasons"] else ""
    fp = data["fingerprint"]
    out = [
        paint(shown(f"{data['workflow']}/{data['step']}"), "bold", color)
        + f"  {labels[data['action']]}{why}",
        f"fingerprint: {_was(fp['old'], fp['new'], fp['changed'])}",
    ]
    for p in data["parts"]:
        mark = paint("~", "yellow", color) if p["changed"] else " "
        name = "command" if p["kind"] == "command" else f"{p['kind']} {p['name']}"
        out.append(f"  {mark} {shown(name)}: {_was(p['old'], p['new'], p['changed'])}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _was(old: str | None, new: str | None, changed: bool) -> str:
    """``OLD → NEW`` for a part that changed, its value for one that did not; a step
    that never recorded a result has no OLD: ``(never recorded) → NEW``."""
    if old is None:
        return f"(never recorded) → {shown(new)}"
    return f"{shown(old)} → {shown(new)}" if changed else shown(new)


def _command_lines(s: dict[str, Any], color: bool) -> list[str]:
    """A step's rendered command under its plan line, ``$ `` first, each line of a
    multi-line script indented; an argv list joined as a shell would need it typed."""
    cmd = s["command"]
    if cmd is None:
        return [paint(f"      ({shown(s['note'])})", "dim", color)]
    if isinstance(cmd, list):
        import shlex

        cmd = shlex.join(cmd)
    lines = cmd.rstrip("\n").split("\n")
    return [
        paint(f"      {'$' if i == 0 else ' '} {shown(line)}", "dim", color)
        for i, line in enumerate(lines)
    ]


def _detailed(args: argparse.Namespace, data: dict[str, Any]) -> int:
    """``--detailed-exitcode``, Terraform's rule: 2 when the plan would run something (a
    step to run, or one that may run), else 0; errors stay 1 (and usage errors 2, as
    Terraform's do). Without the flag, 0."""
    if not getattr(args, "detailed_exitcode", False):
        return 0
    return 2 if any(s["action"] != "up-to-date" for s in data["steps"]) else 0


def _stale_checked(repo: api.Repo, data: dict[str, Any]) -> bool:
    checked = {w.name for w in repo.manifests().workflows.values() if w.check}
    return any(s["workflow"] in checked and s["action"] != "up-to-date" for s in data["steps"])


def apply(args: argparse.Namespace) -> int:
    from runner.reconcile.results import ApplyOptions

    saved = _saved_plan(args)
    if getattr(args, "dry_run", False):
        return _dry_run(args, saved)
    kind, address = executor_choice(args)
    repo = repo_from(args)
    sinks = Sinks(args, repo)  # before anything runs: an unwritable --events changes nothing
    opts = ApplyOptions(
        jobs=args.jobs or 0,
        fail_fast=args.fail_fast,
        wait=not args.no_wait,
        echo=sinks.task_echo(),
        echo_for=sinks.groups.echo_for if sinks.groups is not None else None,
        report=sinks.report,
        argv=sys.argv[1:],
        executor_kind=kind,
        dask_address=address,
        cache=not getattr(args, "no_cache", False),
    )
    try:
        try:
            result = api.apply(
                repo,
                args.workflows,
                project=args.project,
                env=args.env,
                force=args.force,
                force_all=args.force_all,
                since=args.since,
                options=opts,
                params=params_of(args),
                saved=None if saved is None else _load_saved(args, repo, saved),
            )
        finally:
            sinks.close_display()  # the summary and any error print below it, plainly
    except KeyboardInterrupt as e:
        from runner.errors import cut_short_result

        sinks.failed(e)
        cut = cut_short_result(e)
        if cut is not None:  # the run was recorded interrupted: report what it did
            _reports(args, repo, cut, interrupted=True)
        raise
    except BaseException as e:
        sinks.failed(e)
        raise
    sinks.finished(result)
    _reports(args, repo, result, interrupted=False)
    _summary(result, sinks)
    return 0 if result.ok else 1


def _dry_run(args: argparse.Namespace, saved: str | None) -> int:
    """``apply --dry-run``: the plan with each command as rendered, as ``make -n``; not
    audited (nothing changes)."""
    from runner.cli.common import AUDIT_SKIP

    if saved is not None:
        from runner.errors import UsageError

        raise UsageError("a saved plan is shown by the plan that wrote it; drop --dry-run")
    AUDIT_SKIP[0] = True  # a plan: nothing changes
    args.ref = None
    args.show_commands = True
    return plan(args)


class Sinks:
    """Where one apply's output goes, wired once from its arguments: task output (stdout,
    or above the live display), the live display (runner.cli.progress) on a terminal,
    GitHub Actions groups, ``--events``, and the progress lines on stderr. ``report`` is
    the engine's ``ApplyOptions.report``; ``finished``/``failed`` end the event stream."""

    def __init__(self, args: argparse.Namespace, repo: api.Repo):
        from runner.cli.common import open_events

        self.events = open_events(args)
        self.events_out = getattr(args, "events", None) == "-"  # stdout: the events only
        self.color = use_color(sys.stderr)
        self.json_out = getattr(args, "json", False) or self.events_out
        self.quiet = args.quiet or self.json_out
        self.verbose = getattr(args, "verbose", False) and not self.quiet
        self.display = _display(args, repo, self.json_out, self.color)
        self.groups = None
        if not self.quiet and _on_actions():  # each task's output as one group when it ends
            from runner import ci

            self.groups = ci.Groups(self.echo)

    def echo(self, line: str) -> None:
        with reader_gone(sys.stdout):
            print(line, flush=True)

    def say(self, line: str) -> None:
        with reader_gone(sys.stderr):
            if self.display is not None:
                self.display.line(line)
            else:
                print(line, file=sys.stderr, flush=True)

    def task_echo(self) -> Any:
        """The engine's ``echo`` for task output: None with ``-q``/``--json``."""
        if self.quiet:
            return None
        return self.echo if self.display is None else self.say

    def report(self, ev: dict[str, Any]) -> None:
        if ev["event"] == "warning":  # stderr: even with --json
            with reader_gone(sys.stderr):
                print(f"orch: warning: {ev['message']}", file=sys.stderr, flush=True)
            return
        if self.events is not None:
            self.events(ev)
        if self.groups is not None and ev["event"] == "finished":
            self.groups.close(ev["workflow"], ev["step"])
        if self.json_out:
            return
        if self.display is not None:
            self.display.event(ev)
        for line in progress_lines(ev, self.color, quiet=self.quiet, verbose=self.verbose):
            self.say(line)

    def close_display(self) -> None:
        if self.display is not None:
            self.display.close()

    def failed(self, e: BaseException) -> None:
        if self.events is not None:
            self.events.finished(error=_error_line(e))
        if self.groups is not None and isinstance(e, KeyboardInterrupt):
            self.groups.flush()

    def finished(self, result: Any) -> None:
        from runner.cli.common import AUDIT_SKIP

        if self.events is not None:
            self.events.finished(result)
        # a no-op began no run and wrote nothing: not audited (runner.audit says why)
        AUDIT_SKIP[0] = result.run_id is None and result.ok


def result_json(result: Any) -> dict[str, Any]:
    """An ``ApplyResult`` as ``orch apply --json`` prints it (and each ``orch watch
    --json`` cycle carries): ``run_id`` (null for a no-op), ``ok``, ``duration`` (seconds),
    ``counts`` (status -> steps), ``steps`` (each step's result), ``hooks_failed`` (one
    line per failing ``on:`` handler), ``removed`` (fan-out instances dropped)."""
    return {
        "run_id": result.run_id,
        "ok": result.ok,
        "duration": round(result.duration, 3),
        "counts": result.counts(),
        "steps": [r.to_json() for r in result.results],
        "hooks_failed": list(result.hooks_failed),
        "removed": [{"workflow": w, "step": s} for w, s in result.removed],
    }


def _summary(result: Any, sinks: Sinks) -> None:
    """The end of an apply: its JSON (``--json``), failed hooks, the summary line."""
    counts = result.counts()
    if sinks.json_out and not sinks.events_out:
        print_json(result_json(result))
    for line in result.hooks_failed:
        print(f"orch: warning: {line}", file=sys.stderr)
    if sinks.json_out:
        return
    if result.run_id is None:
        print(f"Up to date: {counts.get('up-to-date', 0)} steps, nothing to run.", file=sys.stderr)
        return
    parts = [f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items())]
    color = sinks.color
    verdict = paint("ok", "green", color) if result.ok else paint("FAILED", "red", color)
    print(
        f"\nRun {result.run_id} {verdict} in {result.duration:.2f}s: {', '.join(parts)}.",
        file=sys.stderr,
    )


def _saved_plan(args: argparse.Namespace) -> str | None:
    """The saved plan to apply: ``--plan FILE``, or a lone WORKFLOW argument that ends in
    ``.json`` and is a file (a workflow name has no dot-json file next to it by chance:
    a name that is not a file stays a workflow name). A saved plan carries its own
    selection: UsageError with workflows, filters, --param or --force beside it."""
    from runner.errors import UsageError

    name = getattr(args, "plan", None)
    wfs = list(args.workflows)
    if (
        name is None
        and len(wfs) == 1
        and wfs[0].endswith(".json")
        and _here(args, wfs[0]).is_file()
    ):
        name, wfs = wfs[0], []
    if name is None:
        return None
    given = [
        flag
        for flag, on in (
            ("WORKFLOW", wfs), ("--project", args.project), ("--env", args.env),
            ("--since", args.since), ("--param", args.params), ("--force", args.force),
            ("--force-all", args.force_all),
        )
        if on
    ]  # fmt: skip
    if given:
        raise UsageError(
            f"a saved plan ({name}) carries its own selection: drop {', '.join(given)}"
        )
    args.workflows = []
    return name


def _load_saved(args: argparse.Namespace, repo: api.Repo, name: str) -> tuple[dict[str, Any], str]:
    from runner.reconcile.savedplan import load

    return load(_here(args, name), name, repo.root), name


def _error_line(e: BaseException) -> str:
    """The one line an apply ended with, for ``run.finished``'s ``error``."""
    if isinstance(e, KeyboardInterrupt):
        return f"interrupted: {e}" if str(e) else "interrupted"
    from runner.errors import OrchError

    if isinstance(e, OrchError):
        return "; ".join(e.lines())
    if isinstance(e, OSError):  # a read-only or full disk: the line the CLI prints
        from runner.cli.main import environment_error

        line = environment_error(e)
        if line is not None:
            return line
    return f"{type(e).__name__}: {e}"


def _on_actions() -> bool:
    """GitHub Actions sets GITHUB_ACTIONS=true (asked here, so runner.ci is imported only there)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _reports(args: argparse.Namespace, repo: api.Repo, result: Any, interrupted: bool) -> None:
    """The files CI reads: ``--junit FILE``; under GitHub Actions the step summary and,
    on stdout, an error annotation per failed step. Written for interrupted runs too."""
    if args.junit:
        from runner.junit import write_junit

        # like every path on the command line, relative to -C DIR ("as if started in DIR")
        path = os.path.join(args.directory or ".", args.junit)
        write_junit(path, result, repo.root, mask=masked)
    if _on_actions():
        from runner import ci

        try:
            m = repo.manifests()
        except Exception:  # noqa: BLE001 - the annotations' lines are a nicety
            m = None
        lines = ci.report(result, repo.root, m, interrupted)
        if lines and not getattr(args, "json", False):
            with reader_gone(sys.stdout):
                print(masked("\n".join(lines)), flush=True)


def _display(args: argparse.Namespace, repo: api.Repo, json_out: bool, color: bool) -> Any:
    """The live display (runner.cli.progress) where a person watches a terminal, else
    None: the plain lines, as in CI and pipes."""
    from runner.cli import progress

    if not progress.wanted(json_out):
        return None
    return progress.Display(color, args.jobs or 0, lambda: api.step_durations(repo))


def progress_lines(
    ev: dict[str, Any], color: bool, quiet: bool = False, verbose: bool = False
) -> list[str]:
    """The lines one progress event prints on stderr. ``quiet``: failures only (the
    summary follows at the end); ``verbose``: also each step's command as rendered, each
    attempt's end with its exit code and time, retries, and up-to-date steps with no
    reason given."""
    kind = ev["event"]
    if kind == "started" and not quiet:
        why = "; ".join(ev["reasons"]) or "upstream changed"
        out = [paint(f"> {ev['workflow']}/{ev['step']}", "bold", color) + f" ({shown(why)})"]
        if verbose and ev.get("command") is not None:
            out.extend(_command_lines(ev, color))
        return out
    if kind == "finished":
        line = _finished_line(ev, color, verbose)
        if line is None or (quiet and ev["status"] not in NOT_OK):
            return []
        return [line]
    if verbose and kind in ("task-finished", "task-retrying"):
        exit_code = "-" if ev["exit_code"] is None else ev["exit_code"]
        line = (
            f"  {ev['workflow']}/{ev['step']} attempt {ev['attempt']}: "
            f"{ev['status'].replace('_', ' ')}, exit {exit_code}, {ev['duration']:.2f}s"
        )
        if ev.get("delay") is not None:
            line += f"; retrying in {ev['delay']:.2f}s"
        return [paint(shown(line), "dim", color)]
    return []


def _finished_line(ev: dict[str, Any], color: bool, verbose: bool = False) -> str | None:
    st = ev["status"]
    name = f"{ev['workflow']}/{ev['step']}"
    if st == Status.UP_TO_DATE:
        if ev["reasons"] or verbose:
            why = "; ".join(ev["reasons"]) or "nothing it reads changed"
            return paint(f"= {name}: up to date ({why})", "dim", color)
        return None
    if st == Status.SUCCEEDED:
        return paint(f"ok {name}", "green", color) + f" {ev['duration']:.2f}s"
    if st == Status.RESTORED:
        return (
            paint(f"restored {name}", "green", color) + f" {ev['duration']:.2f}s (from the cache)"
        )
    if st in (Status.SKIPPED, Status.CIRCUIT_OPEN, Status.BLOCKED, Status.NOT_STARTED):
        why = "; ".join(ev["reasons"]) or ev["message"]
        return paint(f"- {name}: {st.replace('_', ' ')} ({why})", "yellow", color)
    bits = [f"{st.replace('_', ' ')}"]
    if ev["exit_code"] is not None:
        bits.append(f"exit {ev['exit_code']}")
    if ev["attempts"] and ev["attempts"] > 1:
        bits.append(f"after {ev['attempts']} attempts")
    msg = f"!! {name}: {', '.join(bits)}"
    if ev["message"]:
        msg += f": {ev['message']}"
    if ev["log"]:
        msg += f" (log: {ev['log']})"
    return paint(msg, "red", color)


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


def logs(args: argparse.Namespace) -> int:
    if args.follow and args.json:
        from runner.errors import UsageError

        raise UsageError("logs: --follow prints text as it comes; --json prints the log once")
    repo = repo_from(args)
    row = api.log_task(repo, args.workflow, args.step, args.run, args.attempt)
    path = repo.root / row["log_path"]
    if args.follow:
        _await_log(repo, row["id"], path)
    with _open_log(path) as f:
        if args.json:
            print_json(
                {
                    "workflow": args.workflow,
                    "step": args.step,
                    "run_id": row["run_id"],
                    "attempt": row["attempt"],
                    "status": row["status"],
                    "path": str(path),
                    "log": f.read(),
                }
            )
            return 0
        for line in f:
            sys.stdout.write(line)
        if args.follow:
            _follow(repo, row["id"], f)
    if args.follow and args.attempt is None:  # the step, not one attempt: on into retries
        _follow_retries(repo, args, row)
    return 0


def _open_log(path: Path) -> Any:
    """A task's log opened for reading: OrchError (one line) when it is gone or is not a
    regular file. Non-blocking: a FIFO put in the log's place must not hang the reader."""
    import stat

    from runner.errors import OrchError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OrchError(
            f"{path}: the log is gone (was .orch/logs cleaned?); re-run the step with orch apply --force"
        ) from None
    f = open(fd, encoding="utf-8", errors="replace")  # noqa: SIM115 - the caller's with
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise OrchError(f"{path}: not a regular file (a FIFO or device); remove it")
    return f


def _follow_retries(repo: api.Repo, args: argparse.Namespace, row: dict[str, Any]) -> None:
    """After a followed attempt ends, follow the step's next ones while its runner
    retries it (``api.retry_pending``): each retry's log from its first line, a line on
    stderr saying where it begins. Ends with the step's last attempt, as ``-f`` does."""
    while True:
        while api.retry_pending(repo, row["id"]):
            time.sleep(FOLLOW_POLL)
        nxt = api.log_task(repo, args.workflow, args.step, row["run_id"])
        if nxt["attempt"] <= row["attempt"]:
            return  # no retry came: the runner ended, or the attempt was cancelled
        row = nxt
        path = repo.root / row["log_path"]
        with reader_gone(sys.stderr):
            print(
                f"orch: attempt {row['attempt']} (log: {shown(row['log_path'])})", file=sys.stderr
            )
        _await_log(repo, row["id"], path)
        with _open_log(path) as f:
            sys.stdout.write(f.read())
            sys.stdout.flush()
            _follow(repo, row["id"], f)


FOLLOW_POLL = 0.2  # seconds between looks at a followed log, and at its task's row


def _await_log(repo: api.Repo, task_id: int, path: Any) -> None:
    """A task that has just started may not have created its log yet: wait while it runs."""
    from runner.status import LIVE

    while not path.exists() and api.task(repo, task_id)["status"] in LIVE:
        time.sleep(FOLLOW_POLL)


def _follow(repo: api.Repo, task_id: int, f: Any) -> None:
    """Print what the task appends to its log ``f`` (read to its end already) until the
    task is no longer running, then the rest. Polls the file, as ``tail -f`` does where
    inotify is missing; the row is read only when the file had nothing new, and a task of
    a runner that died counts as ended (``api.task``)."""
    from runner.status import LIVE

    while True:
        chunk = f.read()
        if chunk:
            sys.stdout.write(chunk)
            sys.stdout.flush()
            continue
        if api.task(repo, task_id)["status"] not in LIVE:
            sys.stdout.write(f.read())  # what it wrote before it ended
            sys.stdout.flush()
            return
        time.sleep(FOLLOW_POLL)


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


def _system(args: argparse.Namespace, part: str) -> int:
    from runner.units import format_bytes

    data = api.system_status(repo_from(args), cluster=part == "status")
    ok = data["health"]["ok"] and not data["state_error"]
    if args.json:
        print_json(data)
        return 0 if ok or (part != "health" and not data["state_error"]) else 1
    if part in ("status", "health"):
        h = data["host"]
        load = ", ".join(f"{x:.2f}" for x in h.get("load", []))
        print(f"host: {h['cpus']:g} cpus, {format_bytes(h['memory'])} memory, load {load}")
        for c in data["health"]["checks"]:
            print(f"  {'ok ' if c['ok'] else 'BAD'} {shown(c['name'])}: {shown(c['detail'])}")
    if part in ("status", "metrics") and data["state_error"]:
        from runner.errors import StateError

        raise StateError(data["state_error"])  # the same line as every other verb's
    if part in ("status", "metrics"):
        for q in data["quotas"]:
            print(f"quota {shown(q['name'])}: {shown(_quota_use(q)) or 'no limits'}")
        for t in data["running"]:
            where = f" on {shown(t['worker'])}" if t.get("worker") else ""
            print(
                f"running: task {t.get('id')} {shown(t.get('workflow'))}/{shown(t.get('step'))}"
                + where
            )
        if data.get("cluster"):
            _print_cluster(data["cluster"])
        mt = data["metrics"]
        print(
            f"last {mt['window_seconds'] / 3600:g}h: {mt['tasks']} tasks "
            + ", ".join(f"{v} {k}" for k, v in sorted(mt["by_status"].items()))
            + f"; wall {mt['wall_time']:.2f}s, cpu {mt['cpu_time']:.2f}s"
        )
    return 0 if (part != "health" or ok) else 1


def _quota_use(q: dict[str, Any]) -> str:
    """One quota's use as ``--json`` has it, for people: ``cpu 1/2, memory 512MiB/1GiB,
    rate 3/5 per 1h`` (memory in binary units, the rate window as a duration)."""
    from runner.units import format_bytes, format_duration

    parts = []
    for k, v in q["limits"].items():
        used = q["used"].get(k, 0)
        if k == "memory":
            parts.append(f"memory {format_bytes(int(used))}/{format_bytes(int(v))}")
        else:
            parts.append(f"{k} {used:g}/{v:g}")
    rate = q.get("rate")
    if rate:
        parts.append(f"rate {rate['recent']}/{rate['runs']} per {format_duration(rate['per'])}")
    return ", ".join(parts)


def _print_cluster(c: dict[str, Any]) -> None:
    from runner.units import format_bytes

    if c["address"] is None:
        print("dask: no scheduler address; each run starts a local cluster of -j workers")
        return
    if c["error"]:
        print(f"dask: {shown(c['error'])}")
        return
    n = len(c["workers"])
    print(f"dask scheduler {shown(c['address'])}: {n} worker{'' if n == 1 else 's'}")
    for w in c["workers"]:
        res = ", ".join(f"{k}={v:g}" for k, v in sorted(w["resources"].items()))
        mem = format_bytes(w["memory_limit"]) if w["memory_limit"] else "no limit"
        print(
            f"  worker {shown(w['address'])}"
            + (f" ({shown(w['name'])})" if w["name"] and w["name"] != w["address"] else "")
            + f": {w['nthreads']} threads, memory {mem}, resources {shown(res) or 'none'}"
        )


def system_status(args: argparse.Namespace) -> int:
    return _system(args, "status")


def system_metrics(args: argparse.Namespace) -> int:
    return _system(args, "metrics")


def system_health(args: argparse.Namespace) -> int:
    return _system(args, "health")
