"""The event stream: an apply's progress events as versioned JSON lines (``--events``).

The engine reports progress through one callable (``ApplyOptions.report``) and knows
nothing of files; ``EventSink`` is that callable for ``orch apply|watch --events FILE``
and for the MCP server's progress notifications. It turns the engine's events into the
public schema (``schemas/events.json``, docs/events.md), version ``V``::

    {"v": 1, "type": "step.planned", "time": "2026-11-30T20:51:01.123Z", "run": 7,
     "workflow": "build", "step": "compile", "action": "run", "reasons": ["input changed: a.c"]}

Every event has ``v``, ``type``, ``time`` (ISO 8601, UTC, milliseconds) and ``run`` (the
run id; ``null`` before a run began, e.g. for a no-op apply). Every string is masked
(the run's secrets in the engine, the repository's again here), and repository text
(step names, reasons, messages) is carried as JSON strings: ``json.dumps`` with
``ensure_ascii`` escapes control characters and non-ASCII, so a line never carries a raw
terminal escape or a byte that is not UTF-8. A new field is not a new version; a field
removed or changed in meaning is (consumers ignore types and fields they do not know).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

V = 1

# the engine's event names (runner.reconcile) -> the schema's types
_TYPES = {
    "run-started": "run.started",
    "planned": "step.planned",
    "started": "step.started",
    "task-started": "task.started",
    "task-retrying": "task.retrying",
    "task-finished": "task.finished",
}
# a finished step's type by its status: the ones that ran no task have types of their own
_FINISHED = {
    "blocked": "step.blocked",
    "skipped": "step.skipped",
    "circuit_open": "step.skipped",
    "not-started": "step.skipped",
    "up-to-date": "step.up_to_date",
    "restored": "step.restored",
}


def iso_utc(t: float) -> str:
    """Seconds since the epoch as ISO 8601 in UTC with milliseconds: ``...T20:51:01.123Z``."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


class EventSink:
    """A thread-safe ``report`` callable writing one JSON line per event through ``write``.

    ``write(line)`` gets the line without its newline (the file sink adds it and
    flushes). ``mask`` is applied to every event before it is written (the CLI's
    ``masked``).
    """

    def __init__(
        self,
        write: Callable[[str], None],
        mask: Callable[[Any], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._write, self._mask, self._clock = write, mask, clock
        self._lock = threading.Lock()
        self.run: int | None = None

    def __call__(self, ev: dict[str, Any]) -> None:
        """One engine event (``ApplyOptions.report``'s shape); unknown kinds are dropped."""
        kind = ev.get("event")
        if kind == "finished":
            typ = _FINISHED.get(ev.get("status", ""), "step.finished")
        elif kind in _TYPES:
            typ = _TYPES[kind]
        else:
            return
        # the rendered command is for people (apply -v): a stream of events, kept where
        # scripts and agents read it, does not carry scripts' text
        body = {k: v for k, v in ev.items() if k not in ("event", "command")}
        if kind == "run-started":
            self.run = body.pop("run")
        self.emit(typ, body)

    def finished(self, result: Any = None, error: str | None = None, **more: Any) -> None:
        """``run.finished`` from an ``ApplyResult`` (or ``error``: the one line the command
        failed with); the sink's run id is then forgotten (watch starts another)."""
        body: dict[str, Any] = {}
        if result is not None:
            body = {
                "ok": result.ok,
                "duration": round(result.duration, 4),
                "counts": result.counts(),
                "hooks_failed": list(result.hooks_failed),
            }
        if error is not None:
            body |= {"ok": False, "error": error}
        self.emit("run.finished", body | more)
        self.run = None

    def emit(self, typ: str, body: dict[str, Any]) -> None:
        head: dict[str, Any] = {"v": V, "type": typ, "time": iso_utc(self._clock())}
        head["run"] = self.run
        event = head | body
        if self._mask is not None:
            event = self._mask(event)
        line = json.dumps(event, ensure_ascii=True, separators=(",", ":"), default=str)
        with self._lock:
            self._write(line)
