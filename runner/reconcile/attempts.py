"""One step's task: its attempts (with retries), then its result recorded.

Runs in a worker thread (``run_attempts``) and then on the scheduler's thread
(``complete``), which hashes the outputs and writes the step's record and the task's row
in one transaction.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runner.manifests.checks import base_params
from runner.manifests.hashing import MISSING
from runner.model import Step, Workflow
from runner.reconcile.decide import StepPlan, output_hashes
from runner.reconcile.results import StepResult
from runner.store import breakers
from runner.store.state import StepRecord

if TYPE_CHECKING:
    from runner.reconcile.flow import Reconciler


def run_attempts(
    orch: Reconciler,
    run_id,
    wf,
    step,
    env_name,
    p,
    command,
    cwd,
    env,
    echo,
    mask,
    cancel,
):  # noqa: ANN001, ANN202
    from runner.execute.local import TaskSpec, run_task
    from runner.reconcile.queue import backoff_delay

    attempts = []
    retry = step.retry
    attempt = 0
    while True:
        attempt += 1
        log_dir = orch.root / ".orch" / "logs" / str(run_id) / wf.name
        log_path = log_dir / f"{step.name}.{attempt}.log"
        reason = "; ".join(p.reasons) or "upstream changed"
        task_id = orch.state.start_task(
            run_id,
            wf.name,
            step.name,
            env_name,
            attempt,
            reason,
            started=time.time(),
            log_path=str(log_path.relative_to(orch.root)),
            fingerprint=p.fingerprint,
        )
        spec = TaskSpec(
            key=f"{wf.name}/{step.name}",
            command=command,
            cwd=cwd,
            env=env,
            log_path=log_path,
            timeout=step.timeout,
            echo=echo,
            mask=mask,
        )
        res = run_task(spec, cancel)
        delay = None
        will_retry = (
            res.status in ("failed", "timed_out")
            and attempt <= retry.limit
            and (retry.on is None or res.exit_code in retry.on)
            and not cancel.requested
        )
        if will_retry:
            delay = backoff_delay(retry, attempt)
        update = {
            "status": res.status,
            "exit_code": res.exit_code,
            "ended": res.ended,
            "cpu_time": res.cpu_time,
            "peak_rss": res.peak_rss,
            "pid": res.pid,
            "delay": delay,
            "message": res.output_error,
        }
        attempts.append((task_id, res, str(log_path.relative_to(orch.root)), update))
        if not will_retry:
            return attempts  # the last attempt's row is written with the step's record
        orch.state.update_task(task_id, **update)
        if echo:
            echo(
                f"# orch: attempt {attempt} {res.status} (exit {res.exit_code}); retrying in {delay:.2f}s"
            )
        deadline = time.time() + (delay or 0)
        while time.time() < deadline and not cancel.requested:
            time.sleep(min(0.05, max(0.0, deadline - time.time())))
        # stopped while waiting: the next attempt is recorded cancelled/interrupted,
        # never started (run_task sees the request first), and the loop ends after it


def complete(
    orch: Reconciler,
    run_id: int,
    wf: Workflow,
    step: Step,
    env: str,
    p: StepPlan,
    attempts: list[Any],
    records: dict[str, StepRecord],
) -> StepResult:
    task_id, res, log_rel, update = attempts[-1]
    status = res.status
    message = res.output_error or ""
    _ins, outs, _wd = orch.step_paths(wf, step, base_params(orch.m, wf, env or None))
    orch.hasher.forget(outs)
    ohash = output_hashes(orch.hasher, outs) if outs else {}
    if status == "succeeded":
        missing = [o for o, h in ohash.items() if h == MISSING]
        if missing:
            status = "failed"
            message = f"declared output{'s' if len(missing) > 1 else ''} not produced: {', '.join(missing)}"
    # a file edited while the step ran keeps its pre-run hash in the record, so the
    # next plan sees the edit; nothing here may launder it into "up to date"
    started = attempts[0][1].started
    rec = StepRecord(
        wf.name,
        step.name,
        env,
        p.fingerprint if status == "succeeded" else None,
        p.fields,
        p.inputs,
        p.upstream,
        res.outputs if status == "succeeded" else {},
        ohash if status == "succeeded" else {},
        status,
        message or None,
        task_id,
        run_id,
        started,
        res.ended,
        time.time(),
    )
    if status != "succeeded":
        old = records.get(step.name)
        if old is not None:
            rec.fields, rec.inputs, rec.upstream = old.fields, old.inputs, old.upstream
    update = {**update, "status": status}
    if message:
        update["message"] = message
    orch.state.record_step(rec, update)
    records[step.name] = rec
    if step.breaker is not None:
        breakers.record_result(orch, step.breaker, status)
    return StepResult(
        wf.name,
        step.name,
        status,
        p.reasons,
        res.ended - started,
        res.exit_code,
        len(attempts),
        log_rel,
        message,
        list(res.log_tail),
        task_id,
    )


def record_status(
    orch: Reconciler,
    wf: Workflow,
    step: str,
    env: str,
    run_id: int,
    records: dict[str, StepRecord],
    status: str,
    reason: str,
) -> None:
    old = records.get(step)
    now = time.time()
    rec = StepRecord(
        wf.name,
        step,
        env,
        None,
        old.fields if old else {},
        old.inputs if old else {},
        old.upstream if old else {},
        {},
        {},
        status,
        reason,
        None,
        run_id,
        now,
        now,
        now,
    )
    orch.state.record_step(rec)
    records[step] = rec


def record_blocked(
    orch: Reconciler, wf: Workflow, step: str, env: str, run_id: int, records: dict[str, StepRecord]
) -> None:
    old = records.get(step)
    if old is not None and old.status == "blocked":
        return
    record_status(orch, wf, step, env, run_id, records, "blocked", "an upstream step failed")
