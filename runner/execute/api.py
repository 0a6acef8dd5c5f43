"""The executor seam: what the engine hands a worker, what it gets back, how it cancels.

    reconcile/ ──TaskSpec──► Executor.run(spec, cancel) ──TaskResult──► reconcile/

The engine builds a ``TaskSpec`` (everything a worker needs, nothing of the engine) and
calls ``run`` from a worker thread, many at once; ``run`` blocks until the task has
ended. ``LocalExecutor`` (``execute/local.py``) runs the task as a process tree on this
machine; another executor (a Dask cluster, the tests' ``FakeExecutor``) implements the
same protocol. The shape follows tox 4's ``ExecuteRequest`` / ``Execute`` pair.

This module is light on purpose (no psutil, no subprocess): the engine imports it for the
types; the concrete executor is imported only when a task is about to run.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runner.status import CANCELS, TASK_ENDS

STATUSES = TASK_ENDS  # how a task can end
CANCEL_STATUSES = CANCELS
OUTPUT_VAR = "ORCH_OUTPUT"


@dataclass
class TaskSpec:
    """One task for a worker.

    The output-file contract: the executor sets ``$<output_var>`` to the path of an empty
    file; what the task writes there (``key=value`` lines, GitHub Actions' ``$GITHUB_OUTPUT``
    syntax) comes back parsed in ``TaskResult.outputs`` when the task succeeded, and a file
    that breaks the syntax fails the task (``TaskResult.output_error``).
    """

    key: str  # "workflow/step", for messages
    command: str | list[str]  # str => [*shell, "-c", command]; list => argv as is
    cwd: Path
    env: dict[str, str]  # the complete environment for the child (the caller builds it)
    log_path: Path  # combined stdout+stderr goes here (parents created)
    timeout: float | None = None  # seconds; None = no limit
    grace: float = 5.0  # SIGTERM -> wait grace seconds -> SIGKILL
    echo: Callable[[str], None] | None = None  # each output line, no newline; None = quiet
    mask: tuple[str, ...] = ()  # secret values, replaced by "***" in the log and echo
    sample_interval: float = 0.2  # seconds between samples of the tree (peak RSS)
    output_var: str = OUTPUT_VAR
    shell: tuple[str, ...] | None = None  # for a str command; None: model.DEFAULT_SHELL (sh -e)
    # descriptors every process of the task inherits: the step's claim lock, so the claim
    # lasts as long as any of them lives (an orphan of a killed runner included)
    inherit_fds: tuple[int, ...] = ()

    # the step's ``resources`` (name -> amount); a cluster executor places the task by them
    resources: dict[str, float] = field(default_factory=dict)
    # told the worker's address ("tcp://HOST:PORT") once a cluster executor has started the
    # task there, from the thread that called ``run``; the local executor never calls it
    placed: Callable[[str], None] | None = None


@dataclass
class TaskResult:
    """How one task ended."""

    status: str  # one of STATUSES
    exit_code: int | None  # None if killed by us or never started; -N if killed by signal N
    started: float  # time.time()
    ended: float
    cpu_time: float  # user+sys seconds of the whole tree
    peak_rss: int  # bytes
    outputs: dict[str, str]  # parsed $ORCH_OUTPUT; empty unless the step succeeded
    output_error: str | None  # why $ORCH_OUTPUT was rejected (the task is then "failed")
    log_tail: list[str]  # last lines of the task's output (masked), orch's notes included
    pid: int | None
    swept: list[int] = field(default_factory=list)  # leftover pids killed after the exit
    worker: str | None = None  # where it ran, for a cluster executor ("tcp://HOST:PORT")


class Cancel:
    """The handle the engine keeps per running task; ``cancel()`` from any thread.

    The first request wins. A running local task is woken at once through a self-pipe
    (not by polling), so ending a tree starts within microseconds of the request;
    ``wait(seconds)`` lets a retry back-off end early on a request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: str | None = None
        self._wake: list[int] = []
        # made by the first wait (a retry's back-off): most tasks never wait, and an
        # Event is a Condition and two locks more per task
        self._event: threading.Event | None = None

    def cancel(self, status: str = "cancelled") -> None:
        if status not in CANCEL_STATUSES:
            raise ValueError(f"cancel status must be one of {CANCEL_STATUSES}, not {status!r}")
        with self._lock:
            if self._status is None:
                self._status = status
            if self._event is not None:
                self._event.set()
            for fd in self._wake:
                with contextlib.suppress(OSError):  # pipe full: a wake-up is pending
                    os.write(fd, b"!")

    @property
    def requested(self) -> str | None:
        return self._status

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True at once when a cancel is requested."""
        with self._lock:  # a cancel before the Event exists is seen here, after it by it
            if self._status is not None:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(max(0.0, seconds))

    def _attach(self, fd: int) -> None:
        with self._lock:
            self._wake.append(fd)
            if self._status is not None:
                os.write(fd, b"!")

    def _detach(self, fd: int) -> None:
        # Under the lock, so cancel() never writes to an fd number we are about to close.
        with self._lock:
            self._wake.remove(fd)


class Executor(Protocol):
    """Runs one task to its end; called from worker threads, many at once.

    Never raises for a task that fails, times out or cannot start: that is a
    ``TaskResult`` with the matching status. A request on ``cancel`` ends the task (and
    everything it started) and is reported as the requested status.

    An executor whose cluster can be lost as a whole (the Dask scheduler) also has
    ``lost: str | None``: once set (one line: what was lost), the tasks it had in flight
    come back ``interrupted``, it runs nothing more, and the engine ends the run as
    interrupted, as on Ctrl-C (``errors.Interrupted``).
    """

    def run(self, spec: TaskSpec, cancel: Cancel) -> TaskResult: ...
