"""The one background reader of a server: it notices every write to the state and tells
every open page.

A thread polls ``api.state_version`` (two ``stat`` calls, the database never opened)
every ``interval`` seconds; on a change it reads the steps' statuses once
(``api.status``, read-only) and hands the snapshot to each subscriber's asyncio queue.
However many browser tabs are open, the state is read once per change: no polling storm.
The snapshot's ``steps`` maps ``"WORKFLOW/STEP"`` (a fan-out group's name too, with its
instances' worst status) to a status, as the pages' ``data-step``/``data-status``
attributes spell them.
"""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

from runner import api
from runner.errors import OrchError
from runner.ui.dag import group_status
from runner.ui.views import repo_at


class Repos:
    """One ``Repo`` for as long as the manifests stay as they are (``api.manifest_version``,
    a stat of each manifest file): the repository's parsed manifests are kept with it, so a
    snapshot after a task ends reads only the state, not every step's manifest again (for
    a 1,000-step workflow, that load was two thirds of a snapshot)."""

    def __init__(self, root: Path):
        self.root = root
        self._key: object = None
        self._repo: api.Repo | None = None

    def get(self) -> api.Repo:
        key = api.manifest_version(self.root)
        if self._repo is None or key is None or key != self._key:
            self._repo, self._key = repo_at(self.root), key
        return self._repo


def snapshot(root: Path, repos: Repos | None = None) -> dict[str, Any]:
    """Every step's status now: ``{"steps": {"wf/step": status}, "running": N, "error"}``.
    A manifest that does not load is an ``error`` line, not an exception."""
    repo = repos.get() if repos is not None else repo_at(root)
    try:
        rows = api.status(repo)
        groups = {w["name"]: api.step_groups(repo, w["name"]) for w in api.workflows(repo)}
    except OrchError as e:
        return {"steps": {}, "running": 0, "error": "; ".join(e.lines())}
    steps = {f"{r['workflow']}/{r['step']}": r["status"] for r in rows}
    for wf, gs in groups.items():
        for g, names in gs.items():
            steps[f"{wf}/{g}"] = group_status([steps.get(f"{wf}/{n}", "never-ran") for n in names])
    running = sum(1 for s in steps.values() if s in ("running", "queued"))
    return {"steps": steps, "running": running, "error": None}


class Live:
    """The reader thread and its subscribers (one ``asyncio.Queue`` per SSE client)."""

    def __init__(self, root: Path, interval: float = 0.15):
        self.root = root
        self.interval = interval
        self.version: tuple[int, ...] | None = None
        self.seq = 0  # bumped on each change the reader saw
        self.current: dict[str, Any] = {}
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.closing = threading.Event()  # set when the server stops: streams end
        self._thread: threading.Thread | None = None
        self._repos = Repos(root)

    def start(self) -> None:
        self._refresh()
        self._thread = threading.Thread(target=self._run, name="orch-ui-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        """Tell every subscriber the server is stopping (an empty message: its stream
        ends, so the server need not wait for the browser tabs to go)."""
        self.closing.set()
        with self._lock:
            subs = list(self._subs)
        for loop, q in subs:
            with suppress(RuntimeError):  # its loop already closed
                loop.call_soon_threadsafe(_offer, q, "")

    def message(self) -> str:
        """The current snapshot as one SSE data line."""
        with self._lock:
            return json.dumps({"seq": self.seq, **self.current})

    def subscribe(self) -> asyncio.Queue[str]:
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
        with self._lock:
            self._subs.add((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, q: asyncio.Queue[str]) -> None:
        with self._lock:
            self._subs = {s for s in self._subs if s[1] is not q}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._refresh()
            except Exception as e:  # the reader never dies: the next change tries again
                with self._lock:
                    self.current = {**self.current, "error": f"reading the state: {e}"}

    def _refresh(self) -> None:
        version = api.state_version(repo_at(self.root))
        if version == self.version:
            return
        snap = snapshot(self.root, self._repos)
        with self._lock:
            self.version = version
            self.seq += 1
            self.current = snap
            subs = list(self._subs)
        msg = self.message()
        for loop, q in subs:
            try:
                loop.call_soon_threadsafe(_offer, q, msg)
            except RuntimeError:  # its loop closed (the server is stopping)
                self.unsubscribe(q)


def _offer(q: asyncio.Queue[str], msg: str) -> None:
    """Queue ``msg``; a client too slow to keep up loses old snapshots, never the latest."""
    while q.full():
        q.get_nowait()
    q.put_nowait(msg)
