"""watch: the signal handling around ``runner.watch.loop``; the loop itself lives there."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from runner.cli.common import executor_choice, reader_gone, repo_from, require_repository


def watch(args: argparse.Namespace) -> int:
    """Ctrl-C (or SIGTERM, or SIGHUP) ends running tasks and exits 0; a second Ctrl-C
    forces (130)."""
    from runner.cli.common import open_events
    from runner.cli.run import params_of
    from runner.watch.loop import WatchOptions
    from runner.watch.loop import watch as run_watch

    kind, address = executor_choice(args)
    params = params_of(args)
    repo = repo_from(args)
    require_repository(repo)  # before the audit row, which would create .orch/
    json_out = getattr(args, "json", False)
    events_out = getattr(args, "events", None) == "-"
    if json_out and events_out:
        from runner.errors import UsageError

        raise UsageError("watch: --json and --events - both write to stdout; give --events a FILE")
    events = open_events(args)  # before watching: an unwritable file changes nothing
    # --events - or --json: stdout carries only them, the watch's own lines go to stderr
    out = _print_err if events_out or json_out else _print
    display = _display(args, repo, events_out or json_out)
    if display is not None:
        out = _to_display(display)
    opts = WatchOptions(
        workflows=list(args.workflows),
        project=args.project,
        env=args.env,
        since=args.since,
        params=params,
        jobs=args.jobs or 0,
        restart=args.restart,
        debounce=args.debounce,
        quiet=args.quiet or json_out,  # as apply --json: no task output anywhere
        executor_kind=kind,
        dask_address=address,
        events=_consumers(
            events, display, out, getattr(args, "verbose", False) and not opts_quiet(args)
        ),
        poll=_poll_interval(args),
    )
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.getsignal(s) for s in signals}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # asked twice: stop waiting for tasks to end
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stop.set()

    for s in signals:
        signal.signal(s, on_signal)
    from runner.cli.main import audit_start

    audit_start()  # watch start; its stop is recorded when the command ends
    try:
        run_watch(repo, opts, stop, out, _on_cycle(events, json_out))
    finally:
        if display is not None:
            display.close()
        for s, h in previous.items():
            signal.signal(s, h)
    from runner.cli.ending import by_closed_pipe as ended_by_closed_pipe

    return 128 + signal.SIGPIPE if ended_by_closed_pipe() else 0


def _display(args: argparse.Namespace, repo: Any, events_out: bool) -> Any:
    """apply's live display (runner.cli.progress) on a terminal, redrawn each cycle;
    None (the plain lines) elsewhere."""
    from runner.cli import progress

    if not progress.wanted(events_out):
        return None
    from runner import api
    from runner.render import use_color

    return progress.Display(use_color(sys.stderr), args.jobs or 0, lambda: api.step_durations(repo))


def _to_display(display: Any) -> Callable[[str], None]:
    def out(line: str) -> None:
        with reader_gone(sys.stderr):
            display.line(line)

    return out


def _consumers(
    events: Any, display: Any, out: Callable[[str], None], verbose: bool
) -> Callable[[dict[str, Any]], None] | None:
    """Every progress event of every cycle to ``--events``, the live display and, with
    ``-v``, the attempt lines apply prints (``sinks.progress_lines``); None when none
    wants them."""
    if events is None and display is None and not verbose:
        return None
    from runner.cli.sinks import progress_lines

    def consume(ev: dict[str, Any]) -> None:
        if events is not None:
            events(ev)
        if display is not None:
            display.event(ev)
        if verbose and ev["event"].startswith("task-"):
            for line in progress_lines(ev, False, verbose=True):
                out(line)

    return consume


def opts_quiet(args: argparse.Namespace) -> bool:
    """``-q``, or ``--json`` (which implies it, as apply's does)."""
    return bool(args.quiet or getattr(args, "json", False))


def _on_cycle(events: Any, json_out: bool) -> Callable[[Any], None] | None:
    """What ends each cycle besides its summary line: ``run.finished`` on ``--events``,
    the cycle's JSON object on stdout with ``--json``; None when neither is asked."""
    if events is None and not json_out:
        return None

    def on_cycle(cycle: Any) -> None:
        if events is not None:
            more: dict[str, Any] = {"cycle": cycle.number, "changed": list(cycle.changed)}
            if cycle.result is not None:
                events.finished(cycle.result, **more)
            else:
                events.finished(error="; ".join(cycle.errors) or "not applied", **more)
        if json_out:
            _print_json_line(cycle_json(cycle))

    return on_cycle


def cycle_json(cycle: Any) -> dict[str, Any]:
    """One cycle as ``orch watch --json`` prints it: ``orch apply --json``'s object
    (``sinks.result_json``: ``run_id``, ``ok``, ``duration``, ``counts``, ``steps``,
    ``hooks_failed``, ``removed``) with the cycle's ``cycle`` number, the ``changed``
    paths that set it off (empty for the first), ``errors`` (the lines of manifests
    that did not load; then ``run_id`` is null, ``ok`` false and nothing ran) and
    ``restart_for`` (the path that ended it early under ``--restart``, else null).
    ``duration`` is the cycle's, in seconds, loading included."""
    from runner.cli.sinks import result_json

    if cycle.result is not None:
        body = result_json(cycle.result)
    else:
        body = {
            "run_id": None,
            "ok": False,
            "counts": {},
            "steps": [],
            "hooks_failed": [],
            "removed": [],
        }
    return {
        "cycle": cycle.number,
        "changed": list(cycle.changed),
        **body,
        "duration": round(cycle.duration, 3),
        "errors": list(cycle.errors),
        "restart_for": cycle.restart_for,
    }


def _print_json_line(data: dict[str, Any]) -> None:
    """One compact JSON line on stdout (masked), flushed: a reader can act per cycle."""
    import json

    from runner.cli.common import masked

    with reader_gone(sys.stdout):
        sys.stdout.write(json.dumps(masked(data), default=str) + "\n")
        sys.stdout.flush()


def _print_err(line: str) -> None:
    with reader_gone(sys.stderr):
        print(line, file=sys.stderr, flush=True)


def _poll_interval(args: argparse.Namespace) -> float | None:
    """Seconds between polls (``--poll``: 1, ``--poll-interval``: its value), or None to
    use the kernel's change notifications. 0 would spin: it is refused."""
    if args.poll_interval is not None:
        if args.poll_interval <= 0:
            from runner.errors import UsageError

            raise UsageError("watch: --poll-interval must be more than 0 seconds")
        return args.poll_interval
    return 1.0 if args.poll else None


def _print(line: str) -> None:
    """A closed reader (``orch watch | head``) stops the watch as Ctrl-C does: running
    tasks ended, exit 141."""
    with reader_gone(sys.stdout):
        print(line, flush=True)
