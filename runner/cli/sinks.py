"""Where apply's output goes: the text, JSON, JUnit, events and CI sinks of one run
(``Sinks``), its progress lines, its summary and its reports."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from runner import api
from runner.cli.common import (
    masked,
    print_json,
    reader_gone,
)
from runner.render import paint, shown, use_color
from runner.status import NOT_OK, Status


def command_lines(s: dict[str, Any], color: bool) -> list[str]:
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

    # One write per line, newline included: ``print`` writes the line and its end apart,
    # and stderr (write-through) makes each a system call and each is masked on its own:
    # two lines a task (started, finished) were four of each.
    def echo(self, line: str) -> None:
        with reader_gone(sys.stdout):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def say(self, line: str) -> None:
        with reader_gone(sys.stderr):
            if self.display is not None:
                self.display.line(line)
            else:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

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


def summary(result: Any, sinks: Sinks) -> None:
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


def reports(args: argparse.Namespace, repo: api.Repo, result: Any, interrupted: bool) -> None:
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
            out.extend(command_lines(ev, color))
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
