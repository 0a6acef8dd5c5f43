"""One step's task: its attempts, with retries and back-off, through the executor.

Runs in a worker thread. Each attempt is a task row (``tasks``), started before the
executor is called so ``orch task list`` shows it; a retried attempt's row is finished
here, the last one together with the step's record (``record.complete``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from runner.execute.api import Cancel, Executor, TaskResult, TaskSpec
from runner.reconcile.queue import backoff_delay
from runner.status import Status

if TYPE_CHECKING:
    from runner.reconcile.decide import StepDecision
    from runner.reconcile.planner import StepView
    from runner.store.state import State


@dataclass(frozen=True)
class TaskRun:
    """Everything one task of one step needs, decided before it is submitted."""

    run_id: int
    env_name: str  # the selection's environment ("" = none)
    view: StepView
    decision: StepDecision
    command: str | list[str]  # rendered
    cwd: Path
    env: dict[str, str]  # the child's whole environment
    echo: Callable[[str], None] | None
    report: Callable[[dict[str, Any]], None] | None  # task events (attempts), already masked
    mask: tuple[str, ...]  # secret values
    cancel: Cancel
    hold_fds: tuple[int, ...] = ()  # the step's claim, inherited by the task's processes


class Attempt(NamedTuple):
    task_id: int
    result: TaskResult
    log_rel: str  # the log, relative to the repository root
    update: dict[str, Any]  # the task row's columns, written with the step's record


_LOG_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-[]=,+@.")


def log_name(step: str) -> str:
    """A file name for ``step``'s logs: an instance named after a file or a value
    (``count[books/a.txt]``, ``x[../..]``) must never make a folder or leave the run's log
    folder, so every other byte is percent-encoded (``/`` as ``%2F``),
    as URLs carry them; a name longer than a file name may be is cut and given a digest
    of the whole, so two long names never share a file."""
    if all(c in _LOG_SAFE for c in step) and len(step) <= 200:
        return step
    out = "".join(
        c if c in _LOG_SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
        for c in step
    )
    if len(out) > 200:
        import hashlib

        out = (
            out[:180]
            + "~"
            + hashlib.blake2b(step.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
        )
    return out


def run_attempts(
    task: TaskRun,
    *,
    executor: Executor,
    state: State,
    root: Path,
    clock: Callable[[], float],
) -> list[Attempt]:
    """Run ``task`` until an attempt succeeds, may not be retried, or is cancelled.

    ``step.retry`` says how often (``limit``), on which exit codes (``on``) and how long
    to wait between (``backoff_delay``: exponential, capped, jittered). A cancel during a
    back-off ends the wait; the next attempt is then recorded cancelled or interrupted
    without starting (the executor sees the request first).
    """
    view, cancel = task.view, task.cancel
    retry = view.step.retry
    log_dir = root / ".orch" / "logs" / str(task.run_id) / view.wf.name
    reason = "; ".join(task.decision.reasons) or "upstream changed"
    attempts: list[Attempt] = []
    attempt = 0
    while True:
        attempt += 1
        log_path = log_dir / f"{log_name(view.step.name)}.{attempt}.log"
        log_rel = str(log_path.relative_to(root))
        task_id = state.start_task(
            task.run_id,
            view.wf.name,
            view.step.name,
            task.env_name,
            attempt,
            reason,
            started=clock(),
            log_path=log_rel,
            fingerprint=task.decision.fingerprint,
        )
        _report(task, "task-started", task_id, attempt)
        res = executor.run(_spec(task, log_path, _placed(state, task_id)), cancel)
        will_retry = (
            res.status in (Status.FAILED, Status.TIMED_OUT)
            and attempt <= retry.limit
            and (retry.on is None or res.exit_code in retry.on)
            and not cancel.requested
        )
        delay = backoff_delay(retry, attempt) if will_retry else None
        update = {
            "status": res.status,
            "exit_code": res.exit_code,
            "ended": res.ended,
            "cpu_time": res.cpu_time,
            "peak_rss": res.peak_rss,
            "pid": res.pid,
            "worker": res.worker,
            "delay": delay,
            "message": res.output_error,
        }
        attempts.append(Attempt(task_id, res, log_rel, update))
        _report(
            task,
            "task-finished" if delay is None else "task-retrying",
            task_id,
            attempt,
            status=res.status,
            exit_code=res.exit_code,
            duration=round(max(0.0, (res.ended or 0.0) - (res.started or 0.0)), 4),
            worker=res.worker,
            delay=None if delay is None else round(delay, 4),
        )
        if delay is None:
            return attempts  # the last attempt's row is written with the step's record
        state.update_task(task_id, **update)
        if task.echo:
            # no exit code: the executor says why (a cluster's "worker lost: ADDR")
            why = f"exit {res.exit_code}" if res.exit_code is not None else res.output_error
            task.echo(
                f"# orch: attempt {attempt} {res.status} ({why or 'no exit code'}); "
                f"retrying in {delay:.2f}s"
            )
        cancel.wait(delay)


def _report(task: TaskRun, event: str, task_id: int, attempt: int, **more: Any) -> None:
    """One task event to the apply's progress callback (``ApplyOptions.report``), from
    this worker thread: the callback must be thread-safe (the CLI's event sink locks)."""
    if task.report is not None:
        wf, step = task.view.wf.name, task.view.step.name
        task.report(
            {"event": event, "workflow": wf, "step": step, "task": task_id, "attempt": attempt}
            | more
        )


def _placed(state: State, task_id: int) -> Callable[[str], None]:
    """Record the worker a cluster executor started the task on, so ``orch status`` and
    ``system status`` show it while the task runs (the end writes it again)."""

    def placed(worker: str) -> None:
        state.update_task(task_id, worker=worker)

    return placed


def _spec(task: TaskRun, log_path: Path, placed: Callable[[str], None]) -> TaskSpec:
    return TaskSpec(
        key=task.view.task_key,
        command=task.command,
        cwd=task.cwd,
        env=task.env,
        log_path=log_path,
        timeout=task.view.step.timeout,
        echo=task.echo,
        mask=task.mask,
        shell=task.view.step.shell,
        inherit_fds=task.hold_fds,
        resources=dict(task.view.step.resources),
        placed=placed,
    )
