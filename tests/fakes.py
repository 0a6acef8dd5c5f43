"""A ``FakeExecutor``: the engine's tests run in-process, without a single subprocess.

It records every ``TaskSpec`` it is handed (in start order, with the tasks that were
running at that moment) and answers with a scripted ``TaskResult`` per attempt. What it
cannot know (exit codes, outputs, files a step writes) the test scripts as ``Exit``s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.execute.api import Cancel, TaskResult, TaskSpec


@dataclass
class Exit:
    """What one attempt of a task does: write ``files`` (relative to its cwd), hold for
    ``hold`` seconds (or until cancelled), then exit ``code`` with ``outputs``."""

    code: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    hold: float = 0.0
    until_cancelled: bool = False
    timed_out: bool = False
    then: Callable[[TaskSpec], None] | None = None  # called once the attempt has started


@dataclass
class Started:
    key: str
    spec: TaskSpec
    during: frozenset[str]  # the keys of the other tasks running when this one started
    at: float  # time.time()
    ended: float = 0.0


class FakeExecutor:
    """Records each spec; answers with ``script[key]`` (one ``Exit`` per attempt; the
    last one repeats), or a plain success. Safe to call from many threads."""

    def __init__(self, script: dict[str, list[Exit]] | None = None, *, hold: float = 0.0):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.hold = hold  # the default attempt's duration: long enough to overlap
        self.started: list[Started] = []
        self._running: set[str] = set()
        self._lock = threading.Lock()

    @property
    def specs(self) -> list[TaskSpec]:
        return [s.spec for s in self.started]

    @property
    def keys(self) -> list[str]:
        """Task keys (``workflow/step``) in the order they started."""
        return [s.key for s in self.started]

    def max_concurrent(self, keys: set[str] | None = None) -> int:
        """The most tasks of ``keys`` (all if None) that ever ran at once."""
        best = 0
        for s in self.started:
            if keys is None or s.key in keys:
                others = s.during if keys is None else s.during & keys
                best = max(best, len(others) + 1)
        return best

    def run(self, spec: TaskSpec, cancel: Cancel) -> TaskResult:
        with self._lock:
            queue = self.script.get(spec.key)
            step = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Exit(hold=self.hold)
            rec = Started(spec.key, spec, frozenset(self._running), time.time())
            self.started.append(rec)
            self._running.add(spec.key)
        try:
            return self._attempt(spec, cancel, step, rec)
        finally:
            with self._lock:
                self._running.discard(spec.key)
                rec.ended = time.time()

    def _attempt(self, spec: TaskSpec, cancel: Cancel, step: Exit, rec: Started) -> TaskResult:
        if cancel.requested:
            return _result(
                cancel.requested, None, rec.at, {}, [f"{cancel.requested} before it started"]
            )
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        spec.log_path.write_text(f"# fake: {spec.key}\n", encoding="utf-8")
        if step.then is not None:
            step.then(spec)
        for rel, text in step.files.items():
            p = Path(spec.cwd) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        if step.until_cancelled:
            while not cancel.wait(5.0):
                pass
        elif step.hold and cancel.wait(step.hold):
            pass
        if cancel.requested:
            return _result(cancel.requested, None, rec.at, {}, [f"{cancel.requested}"])
        if step.timed_out:
            return _result("timed_out", None, rec.at, {}, ["timed out"])
        status = "succeeded" if step.code == 0 else "failed"
        outputs = dict(step.outputs) if status == "succeeded" else {}
        return _result(status, step.code, rec.at, outputs, [f"exit {step.code}"])


def _result(
    status: str, code: int | None, started: float, outputs: dict[str, str], tail: list[str]
) -> TaskResult:
    return TaskResult(
        status=status,
        exit_code=code,
        started=started,
        ended=time.time(),
        cpu_time=0.0,
        peak_rss=0,
        outputs=outputs,
        output_error=None,
        log_tail=tail,
        pid=None,
    )


def apply(path: Path, executor: FakeExecutor, *names: str, **kw: Any) -> Any:
    """``api.apply`` in this process, over ``executor``; ``kw`` go to ``ApplyOptions``
    (``jobs``, ``fail_fast``, ``stop``...) except ``force``/``force_all``/``env``."""
    from runner import api
    from runner.reconcile.results import ApplyOptions

    sel = {k: kw.pop(k) for k in ("force", "force_all", "env") if k in kw}
    opts = ApplyOptions(executor=executor, **kw)
    return api.apply(api.open_repo(path), list(names), options=opts, **sel)
