"""Step records: what a step's end is written down as (one transaction per step).

Every ``StepRecord`` of the engine is built here, by keyword. A step that did not
succeed keeps the definition/input/upstream parts of its previous record and no
fingerprint, so the next plan runs it again and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runner import globs
from runner.manifests.hashing import MISSING
from runner.reconcile.decide import StepDecision, output_hashes
from runner.reconcile.results import StepResult
from runner.status import Status
from runner.store import breakers
from runner.store.state import StepRecord

if TYPE_CHECKING:
    from runner.manifests.hashing import Hasher
    from runner.masking import Secrets
    from runner.reconcile.attempts import Attempt, TaskRun
    from runner.store.state import State


def noted(fields: dict[str, str], command: str | list[str], secrets: Secrets) -> dict[str, str]:
    """The definition fields a run records, with the notes ``orch explain`` shows next
    time (``fingerprint.NOTES``): the command as rendered, and each param value read,
    every secret masked: the state never holds a secret in the clear."""
    import json

    from runner.manifests.fingerprint import COMMAND_SHOWN

    text = command if isinstance(command, str) else json.dumps(command)
    out = masked_params(fields, secrets)
    out[COMMAND_SHOWN] = secrets.mask(text)
    return out


def masked_params(fields: dict[str, str], secrets: Secrets) -> dict[str, str]:
    """``fields`` with each recorded param value (``fingerprint.PARAM_NAMED``) masked."""
    from runner.manifests.fingerprint import PARAM_NAMED

    return {k: secrets.mask(v) if k.startswith(PARAM_NAMED) else v for k, v in fields.items()}


def status_record(
    workflow: str,
    step: str,
    *,
    env: str,
    run_id: int,
    status: str,
    reason: str,
    old: StepRecord | None,
    now: float,
) -> StepRecord:
    """A step that ended without a result of its own (failed before starting, blocked,
    circuit open): no fingerprint, no outputs; the previous record's parts kept."""
    return StepRecord(
        workflow=workflow,
        step=step,
        env=env,
        fingerprint=None,
        fields=old.fields if old else {},
        inputs=old.inputs if old else {},
        upstream=old.upstream if old else {},
        outputs={},
        output_files={},
        status=status,
        reason=reason,
        task_id=None,
        run_id=run_id,
        started=now,
        ended=now,
        updated=now,
    )


def record_status(
    state: State,
    records: dict[str, StepRecord],
    workflow: str,
    step: str,
    *,
    env: str,
    run_id: int,
    status: str,
    reason: str,
    now: float,
) -> None:
    """Write ``status_record`` and keep ``records`` (the workflow's, in memory) current."""
    rec = status_record(
        workflow,
        step,
        env=env,
        run_id=run_id,
        status=status,
        reason=reason,
        old=records.get(step),
        now=now,
    )
    # a task of this step still open in this run (an error after it started) ends with
    # the step's record, in the same transaction: no task is left "running"
    state.record_step(rec, close_open_tasks=True)
    records[step] = rec


def record_blocked(
    state: State,
    records: dict[str, StepRecord],
    workflow: str,
    step: str,
    *,
    env: str,
    run_id: int,
    now: float,
) -> None:
    """A descendant of a step that did not succeed; written once, not on every apply.

    It never ran, so a good last record (one with a fingerprint) stands untouched: once
    the failure is fixed the step is decided by its fingerprint like any other, and early
    cutoff applies when its upstream outputs come back identical. Only a step with no
    good record is recorded ``blocked``."""
    old = records.get(step)
    if old is not None and (old.status == Status.BLOCKED or old.fingerprint is not None):
        return
    record_status(
        state,
        records,
        workflow,
        step,
        env=env,
        run_id=run_id,
        status=Status.BLOCKED,
        reason="an upstream step failed",
        now=now,
    )


def record_skipped(
    state: State,
    records: dict[str, StepRecord],
    d: StepDecision,
    *,
    env: str,
    run_id: int,
    reason: str,
    now: float,
) -> None:
    """A step whose ``when:`` is false: decided (it has a fingerprint), did not run."""
    rec = StepRecord(
        workflow=d.workflow,
        step=d.step,
        env=env,
        fingerprint=d.fingerprint,
        fields=masked_params(d.fields, state.secrets),
        inputs=d.inputs,
        upstream=d.upstream,
        outputs={},
        output_files={},
        status=Status.SKIPPED,
        reason=reason,
        task_id=None,
        run_id=run_id,
        started=now,
        ended=now,
        updated=now,
    )
    state.record_step(rec)
    records[d.step] = rec


def complete(
    task: TaskRun,
    attempts: list[Attempt],
    *,
    state: State,
    hasher: Hasher,
    records: dict[str, StepRecord],
    clock: Callable[[], float],
) -> StepResult:
    """Hash the outputs of a finished task and record its step and last task row (one
    transaction). A success that did not produce a declared output is a failure. (The
    result cache stored the success already, in the task's thread: ``restore.run_and_store``.)"""
    last = attempts[-1]
    res = last.result
    status, message = res.status, res.output_error or ""
    view, d = task.view, task.decision
    outs = list(view.outputs)
    hasher.forget([globs.literal(o) for o in outs if not o.startswith("!")])
    ohash = output_hashes(hasher, outs) if outs else {}
    if status == Status.SUCCEEDED:
        missing = [o for o, h in ohash.items() if h == MISSING]
        if missing:
            status = Status.FAILED
            message = f"declared output{'s' if len(missing) > 1 else ''} not produced: {', '.join(missing)}"
    # a file edited while the step ran keeps its pre-run hash in the record, so the
    # next plan sees the edit; nothing here may launder it into "up to date"
    ok = status == Status.SUCCEEDED
    old = records.get(d.step)
    keep_old = not ok and old is not None
    started = attempts[0].result.started
    rec = StepRecord(
        workflow=d.workflow,
        step=d.step,
        env=task.env_name,
        fingerprint=d.fingerprint if ok else None,
        fields=old.fields if keep_old else noted(d.fields, task.command, state.secrets),
        inputs=old.inputs if keep_old else d.inputs,
        upstream=old.upstream if keep_old else d.upstream,
        outputs=res.outputs if ok else {},
        output_files=ohash if ok else {},
        status=status,
        reason=message or None,
        task_id=last.task_id,
        run_id=task.run_id,
        started=started,
        ended=res.ended,
        updated=clock(),
    )
    update = {**last.update, "status": status}
    if message:
        update["message"] = message
    state.record_step(rec, update)
    records[d.step] = rec
    if view.step.breaker is not None:
        breakers.record_result(state, view.step.breaker, status)
    return StepResult(
        d.workflow,
        d.step,
        status,
        d.reasons,
        duration=res.ended - started,
        exit_code=res.exit_code,
        attempts=len(attempts),
        log_path=last.log_rel,
        message=message,
        log_tail=list(res.log_tail),
        task_id=last.task_id,
        worker=res.worker,
    )
