"""The live progress display of ``orch apply`` and ``orch watch`` on a terminal.

A consumer of the engine's progress events (``ApplyOptions.report``: ``run-started``,
``planned``, ``started``, ``finished``...), built here in the CLI and not in the engine,
so the engine stays the same for CI, pipes, JSON and MCP. Under the lines that scroll
(task output, step lines, failures as they happen) it keeps a few lines up to date: done
over total, the failures so far, an ETA, and each running task with its elapsed time.

Shown only where a person watches: stdout and stderr both terminals, not ``--json``,
not under GitHub Actions (its log is not a terminal and keeps its ``::group::`` lines),
not ``TERM=dumb``. Everywhere else the plain lines are printed exactly as before, and
``rich`` (the library that draws the display, a base dependency) is never imported: it
is imported once a run has begun (at its first step event), so a no-op apply,
``orch plan`` and ``orch --version`` never load it. ``NO_COLOR`` draws the display without colour or any
other style (https://no-color.org); only cursor movement remains.

The ETA is the one make, cargo and Bazel users know from recorded durations: each step
still to finish is expected to take as long as its last successful run (the steps
table's ``started`` to ``ended``), spread over the run's slots (``run-started``'s
``jobs``: ``-j``, else the config's ``jobs:``, else the CPUs); steps never run before
count as unknown and the ETA is then shown as a lower bound (``>=``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from runner.status import FAILED

Key = tuple[str, str]


def wanted(json_out: bool) -> bool:
    """Whether to draw the live display: a person at a terminal, not a machine."""
    if json_out or os.environ.get("GITHUB_ACTIONS") == "true":
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    return all(hasattr(s, "isatty") and s.isatty() for s in (sys.stdout, sys.stderr))


class Display:
    """The live display: ``event`` takes each progress event (from any thread),
    ``line`` prints one line above the display, ``close`` removes it (the summary line
    that follows is printed plainly). Until a run's first step event nothing is drawn
    and ``line`` prints to stderr as the plain output does."""

    REFRESH = 4  # redraws per second, for the elapsed times

    def __init__(
        self,
        color: bool,
        jobs: int,
        durations: Callable[[], dict[Key, float]] | None = None,
    ):
        self.color = color
        self.jobs = jobs or os.cpu_count() or 1
        self._durations = durations
        self._lock = threading.RLock()  # the counts, taken by rich's refresh thread too
        self._starting = threading.Lock()
        self._live: Any = None
        self._expected: dict[Key, float] = {}
        self._todo: set[Key] = set()  # planned to run or maybe run, not finished
        self._total = 0
        self._done = 0
        self._failed = 0
        self._running: dict[Key, float] = {}  # key -> monotonic start

    # -- events ---------------------------------------------------------------------------
    def event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        with self._lock:
            if kind == "run-started":
                self._reset(ev.get("jobs"))
                return
            if kind == "planned":  # drawn once the plan is whole, at the first step event
                if ev["action"] != "up-to-date":
                    self._todo.add((ev["workflow"], ev["step"]))
                    self._total += 1
                return
            if kind == "started":
                self._running[(ev["workflow"], ev["step"])] = time.monotonic()
            elif kind == "finished":
                key = (ev["workflow"], ev["step"])
                self._running.pop(key, None)
                if key in self._todo:
                    self._todo.discard(key)
                    self._done += 1
                if ev["status"] in FAILED:
                    self._failed += 1
            else:
                return
        if self._live is None:
            self._start()  # outside our lock: rich's refresh thread takes its lock, then ours
        self._refresh()

    def line(self, text: str) -> None:
        """One line above the display (ANSI colours of ``paint`` kept as styles)."""
        live = self._live
        if live is None:
            print(text, file=sys.stderr, flush=True)
            return
        from rich.text import Text

        live.console.print(Text.from_ansi(text), soft_wrap=True)

    def close(self) -> None:
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.stop()

    # -- drawing --------------------------------------------------------------------------
    def _reset(self, jobs: int | None = None) -> None:
        """A new run (a watch starts one per cycle): count afresh. ``jobs``: the run's
        slots as the engine chose them (``-j``, the config's ``jobs:``, the CPUs)."""
        if jobs:
            self.jobs = jobs
        self._todo.clear()
        self._running.clear()
        self._total = self._done = self._failed = 0
        if self._durations is not None:
            try:
                self._expected = self._durations()
            except Exception:  # noqa: BLE001 - the ETA is a nicety; the run goes on
                self._expected = {}

    def _start(self) -> None:
        """Start drawing (rich imported here, only once a run has begun)."""
        with self._starting:
            if self._live is not None:
                return
            self._live = self._new_live()
            self._live.start()

    def _new_live(self) -> Any:
        from rich.console import Console
        from rich.live import Live

        console = Console(
            file=sys.stderr,
            force_terminal=True,
            color_system="auto" if self.color else None,
            no_color=not self.color,
            highlight=False,
        )
        return Live(
            get_renderable=self._render,
            console=console,
            refresh_per_second=self.REFRESH,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def _refresh(self) -> None:
        live = self._live
        if live is not None:
            live.refresh()

    def _render(self) -> Any:
        from rich.text import Text

        with self._lock:
            now = time.monotonic()
            head = f"{self._done}/{self._total} done"
            if self._failed:
                head += f", {self._failed} failed"
            eta = self.eta(now)
            if eta is not None:
                head += f", ETA {eta}"
            out = Text(head, style="bold")
            for (wf, step), t0 in sorted(self._running.items(), key=lambda kv: kv[1]):
                out.append(f"\n  running {wf}/{step} {now - t0:.1f}s", style="cyan")
            return out

    def eta(self, now: float) -> str | None:
        """The time left, as ``~12s`` or ``>=12s`` (a step with no recorded duration), or
        None when nothing left has a recorded duration."""
        left = 0.0
        unknown = False
        known = False
        for key in self._todo:
            d = self._expected.get(key)
            if d is None:
                unknown = True
                continue
            known = True
            t0 = self._running.get(key)
            left += max(0.0, d - (now - t0)) if t0 is not None else d
        if not known:
            return None
        slots = max(1, min(self.jobs, len(self._todo)))
        return f"{'>=' if unknown else '~'}{_duration(left / slots)}"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
