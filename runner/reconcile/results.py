"""What an apply is asked to do and what it did: plain data for the CLI, JSON, JUnit, MCP.

Kept apart from ``reconcile``, and NamedTuples rather than dataclasses, so a no-op answered
by ``runner.noop`` imports neither the reconciler nor ``dataclasses``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from runner.status import FAILED, NOT_OK  # noqa: F401 - FAILED re-exported

if TYPE_CHECKING:
    from runner.execute.api import Executor


class ApplyOptions(NamedTuple):
    jobs: int = 0
    fail_fast: bool = False
    wait: bool = True
    echo: Callable[[str], None] | None = None  # live task output, prefixed; None = quiet
    # live task output by task: (workflow, step) -> that task's line sink; beats ``echo``
    # (GitHub Actions groups, runner.ci)
    echo_for: Callable[[str, str], Callable[[str], None]] | None = None
    report: Callable[[dict[str, Any]], None] | None = None  # progress events
    argv: tuple[str, ...] | list[str] = ()
    stop: threading.Event | None = None  # set by watch --restart / Ctrl-C handlers
    executor: Executor | None = None  # None = the local executor (imported only to run)
    clock: Callable[[], float] = time.time  # seconds since the epoch: record and task times
    executor_kind: str | None = None  # "local" or "dask"; None = .orch/config.yaml's, else local
    # None = $ORCH_DASK_ADDRESS, then the config's, else a LocalCluster for the run
    dask_address: str | None = None
    # called with the plan before anything is written or run; raises to refuse the run
    # (a saved plan that no longer matches: ``savedplan.check``)
    expect: Callable[[Any], None] | None = None
    cache: bool = True  # False: --no-cache, neither restore from nor store in the result cache


class StepResult(NamedTuple):
    workflow: str
    step: str
    status: str  # a runner.status.Status
    reasons: list[str] | tuple[str, ...] = ()
    duration: float = 0.0
    exit_code: int | None = None
    attempts: int = 0
    log_path: str | None = None
    message: str = ""
    log_tail: list[str] | tuple[str, ...] = ()
    task_id: int | None = None
    worker: str | None = None  # the cluster worker that ran the last attempt; None: here

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "step": self.step,
            "status": self.status,
            "reasons": list(self.reasons),
            "duration": round(self.duration, 4),
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "log": self.log_path,
            "message": self.message,
            "worker": self.worker,
        }


class ApplyResult(NamedTuple):
    run_id: int | None
    results: list[StepResult]
    duration: float
    hooks_failed: list[str] | tuple[str, ...] = ()  # one line per failing on: handler
    # (workflow, step) of each instance its fan-out no longer makes, whose record was dropped
    removed: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        # a step held back by an open breaker did not do its work: that is not success,
        # whether or not anything depends on it
        return not any(r.status in NOT_OK for r in self.results)

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c
