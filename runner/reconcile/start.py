"""Starting one ready task: a pipeline of named checks, each of which may end it.

    still up to date ─► admit (quotas, in memory) ─► claim (kernel lock) ─► re-decide
    (not a restore whose record, upstream results and inputs are as the plan saw them)
    ─► template context ─► when ─► restore (result cache) ─► render ─► secrets
    ─► allocate (quotas, in the store) ─► workdir ─► breaker ─► submit

Each stage returns ``None`` (go on) or an ``Outcome``. Whatever ends the pipeline, one
``give_back()`` frees exactly what this start holds (its allocations, then its claim);
a started task holds them until the loop settles it and calls ``give_back()`` then.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import LockBusy
from runner.execute.api import Cancel
from runner.links import LinkEscape
from runner.reconcile import record
from runner.reconcile.attempts import TaskRun
from runner.reconcile.decide import (
    MAY_RUN,
    UP_TO_DATE,
    StepDecision,
    decide,
    input_hashes,
    skipped_upstream,
)
from runner.reconcile.queue import request_of
from runner.reconcile.results import StepResult
from runner.reconcile.view import project_context
from runner.status import Action, Status
from runner.store import breakers

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.manifests.hashing import Hasher
    from runner.reconcile.planner import Key, StepView
    from runner.reconcile.quotas import Quotas
    from runner.reconcile.restore import ResultCache
    from runner.store.state import State, StepRecord


class Outcome(Enum):
    STARTED = "started"  # submitted; holds its claim and allocations until settled
    DONE = "done"  # decided without running (up to date, skipped, failed to start...)
    WAIT = "wait"  # another orch process holds the step's claim
    LATER = "later"  # its quotas (or a half-open breaker's trial) make it wait


@dataclass(frozen=True)
class StartContext:
    """What every start of one apply shares (plain data and the stores, no engine)."""

    catalog: Manifests
    state: State
    hasher: Hasher
    quotas: Quotas
    views: dict[Key, StepView]
    planned: dict[Key, StepDecision]
    records: dict[str, dict[str, StepRecord]]  # by workflow, kept current in memory
    results: dict[Key, StepResult]  # the steps finished so far in this apply
    run_id: int
    env_name: str
    root: Path
    clock: Callable[[], float]
    wait: bool  # wait for a claim another orch holds (False: --no-wait, raise LockBusy)
    echo: Callable[[str], None] | None
    report: Callable[[dict[str, Any]], None] | None  # progress events, masked (loop._emit)
    echo_for: Callable[[str, str], Callable[[str], None]] | None  # per task; beats echo
    prefix_workflow: bool  # more than one workflow: echo lines say "[wf/step]"
    environ: dict[str, str]  # os.environ, as templates see it
    base_env: dict[str, str]  # the tasks' environment before the step's own
    cache: ResultCache | None = None  # the result cache (None: off, --no-cache)
    plan_records: Mapping[str, Mapping[str, StepRecord]] = field(default_factory=dict)


class Start:
    """One attempt to start the task of one ready step. ``run()`` returns the outcome;
    ``result`` is set for DONE, ``task`` for STARTED."""

    def __init__(self, ctx: StartContext, key: Key, *, hold: bool = False):
        self.ctx = ctx
        self.hold = hold  # DONE keeps its claim: the caller gives it back after its commit
        self.view = ctx.views[key]
        self.key = key
        self.decision = ctx.planned[key]
        self.records = ctx.records[key[0]]
        self.qnames: list[str] = ctx.quotas.of.get(key[0], [])
        self.req = request_of(self.view.step.resources)
        self.claimed = False
        self.allocated = False
        self.result: StepResult | None = None
        self.task: TaskRun | None = None
        self._tctx: dict[str, Any] = {}
        self._command: str | list[str] = ""
        self._env: dict[str, str] = {}

    def run(self) -> Outcome:
        stages = (
            self._still_up_to_date,
            self._admit,
            self._claim,
            self._redecide,
            self._upstream_skipped,
            self._template_context,
            self._when,
            self._restore,
            self._render,
            self._secrets,
            self._allocate,
            self._workdir,
            self._breaker,
            self._submit,
        )
        for stage in stages:
            outcome = stage()
            if outcome is not None:
                if outcome is not Outcome.STARTED and not (self.hold and outcome is Outcome.DONE):
                    self.give_back()
                return outcome
        raise AssertionError("the last stage submits")  # pragma: no cover

    def give_back(self) -> None:
        """Free what this start holds: its quota allocations, then its step claim."""
        if self.allocated:
            self.ctx.quotas.give_back(self.view.task_key, self.qnames, self.req)
            self.allocated = False
        if self.claimed:
            self.ctx.state.release(self.view.task_key)
            self.claimed = False

    # -- the stages, in order ---------------------------------------------------------
    def _still_up_to_date(self) -> Outcome | None:
        # the plan found it up to date moments ago and nothing upstream has run since:
        # that answer stands (re-deciding 900 of 1,000 steps costs more than the 100
        # that changed)
        results = self.ctx.results
        if (
            self.decision.action == UP_TO_DATE
            and all(
                results[(self.key[0], u)].status == Status.UP_TO_DATE for u in self.view.upstream
            )
            and all(
                results[k].status == Status.UP_TO_DATE
                for k in self.ctx.catalog.cross_upstream.get(self.key, ())
                if k in results
            )
        ):
            # reasons only where drift: warn found an output edited by hand
            return self._done(Status.UP_TO_DATE, list(self.decision.reasons))
        return None

    def _admit(self) -> Outcome | None:
        # quotas first (this process + live others, in memory): a task that cannot get
        # its resources now is not claimed, re-read and re-decided on every pass
        if self.qnames and not self.ctx.quotas.admit(self.qnames, self.req):
            return Outcome.LATER
        return None

    def _claim(self) -> Outcome | None:
        if not self.ctx.state.try_claim(self.view.task_key):
            if not self.ctx.wait:
                raise LockBusy(
                    f"step {self.view.task_key} is being run by another orch process (--no-wait given)"
                )
            return Outcome.WAIT
        self.claimed = True
        return None

    def _redecide(self) -> Outcome | None:
        # another runner may have just finished it: read the record afresh, then decide
        # again, now with the upstream results of this apply (early cutoff, as Bazel's)
        wf, step = self.key
        fresh = self.ctx.state.step_record(wf, step, self.ctx.env_name)
        if fresh is not None:
            self.records[step] = fresh
        planned = self.decision
        if self._as_planned():
            return None  # deciding again would give the plan's answer: restore
        try:
            self.decision = decide(
                self.view,
                self.records.get(step),
                records=self.records,
                will_run=set(),
                hasher=self.ctx.hasher,
                forced=self.view.forced,
            )
        except LinkEscape as e:  # an upstream step made a link out: this step fails
            from runner.manifests.positions import at, step_field

            where = at(self.ctx.root, self.view.wf, step_field(self.view.step.index, "inputs"))
            return self._failed(f"{where}: step '{step}': inputs: {e}")
        if self.decision.action == UP_TO_DATE:
            why = ["early cutoff: upstream outputs unchanged"] if planned.action == MAY_RUN else []
            return self._done(Status.UP_TO_DATE, [*self.decision.reasons, *why])
        return None

    def _as_planned(self) -> bool:
        """Whether the plan's RESTORE stands as decided, provably: the step's record is the
        one the plan read (no other runner has recorded it since), each upstream step's
        result is the one its fingerprint holds (one restored in this apply as the plan
        predicted), no upstream step in another workflow has done anything in this apply,
        and its inputs hash as they did (an edit since the plan is seen). Its definition
        (params, environment, git) is fixed for the apply. Deciding again would then
        give the same fingerprint and so the same restore; it costs more than this."""
        d, view = self.decision, self.view
        if d.action != Action.RESTORE or view.forced:
            return False
        wf, step = self.key
        now, then = self.records.get(step), self.ctx.plan_records.get(wf, {}).get(step)
        if (now is None) != (then is None) or (
            now is not None and then is not None and _stamp(now) != _stamp(then)
        ):
            return False
        if len(d.upstream) != len(view.upstream) or any(
            (r := self.records.get(u)) is None or r.result_digest != d.upstream.get(u)
            for u in view.upstream
        ):
            return False
        results = self.ctx.results
        if any(
            k in results and results[k].status != Status.UP_TO_DATE
            for k in self.ctx.catalog.cross_upstream.get(self.key, ())
        ):
            return False
        hasher, outs = self.ctx.hasher, tuple(view.outputs)
        return (
            input_hashes(hasher, list(view.inputs), None, outs) if view.inputs else {}
        ) == d.inputs

    def _upstream_skipped(self) -> Outcome | None:
        """A step whose direct upstream step is skipped is skipped too, as GitHub Actions
        skips the jobs that need a skipped job: what it would read was never made. Its own
        ``when:`` decides instead when it reads that step's status
        (``when: "{{ steps.a.status == 'skipped' }}"``), as ``if: always()`` does there."""
        skipped = skipped_upstream(
            self.view,
            lambda u: (r := self.records.get(u)) is not None and r.status == Status.SKIPPED,
        )
        if not skipped:
            return None
        reason = f"upstream skipped: {', '.join(skipped)}"
        record.record_skipped(
            self.ctx.state,
            self.records,
            self.decision,
            env=self.ctx.env_name,
            run_id=self.ctx.run_id,
            reason=reason,
            now=self.ctx.clock(),
        )
        return self._done(Status.SKIPPED, [reason])

    def _template_context(self) -> Outcome | None:
        self._tctx = template_context(self.view, self.ctx.catalog, self.records, self.ctx.environ)
        return None

    def _when(self) -> Outcome | None:
        from runner.templating import evaluate_when

        step = self.view.step
        if step.when is None:
            return None
        try:
            go = evaluate_when(step.when, self._tctx)
        except Exception as e:  # TemplateError, or a value the quoting refuses
            return self._template_failed(e, "when")
        if go:
            return None
        record.record_skipped(
            self.ctx.state,
            self.records,
            self.decision,
            env=self.ctx.env_name,
            run_id=self.ctx.run_id,
            reason="when: false",
            now=self.ctx.clock(),
        )
        return self._done(Status.SKIPPED, ["when: false"])

    def _restore(self) -> Outcome | None:
        """The result cache holds this fingerprint's result: restored, verified, recorded
        succeeded, not run (``reconcile.restore``)."""
        if self.ctx.cache is None or self.decision.action == UP_TO_DATE:
            return None
        from runner.reconcile.restore import restore_step

        self.result = restore_step(
            self.ctx.cache, self.view, self.decision, self.records,
            state=self.ctx.state, hasher=self.ctx.hasher, env=self.ctx.env_name,
            run_id=self.ctx.run_id, now=self.ctx.clock(),
            fields=record.masked_params(self.decision.fields, self.ctx.state.secrets),
        )  # fmt: skip
        if self.result is None and self.ctx.cache.store.link == "hardlink":
            from runner.reconcile.restore import own_copies

            own_copies(self.ctx.root, self.view.outputs)  # the task may write them in place
        return None if self.result is None else Outcome.DONE

    def _render(self) -> Outcome | None:
        from runner.templating import render_argv, render_command, render_text

        step = self.view.step
        field: tuple[Any, ...] = ("run",)
        try:
            self._command = (
                render_command(step.run, self._tctx)
                if isinstance(step.run, str)
                else render_argv(list(step.run), self._tctx)
            )
            for k, v in step.env.items():
                field = ("env", k)
                self._env[k] = render_text(v, self._tctx)
        except Exception as e:  # TemplateError, or a value the quoting refuses
            return self._template_failed(e, *field)
        return None

    def _secrets(self) -> Outcome | None:
        missing = [s for s in self.view.step.secrets if s not in os.environ]
        if missing:
            return self._failed(f"secret {', '.join(missing)} is not set in the environment")
        return None

    def _allocate(self) -> Outcome | None:
        if self.qnames:
            if not self.ctx.quotas.take(self.view.task_key, self.qnames, self.req):
                return Outcome.LATER
            self.allocated = True
        return None

    def _workdir(self) -> Outcome | None:
        wd = self.view.workdir
        if not self._cwd().is_dir():
            return self._failed(f"workdir {wd or '.'} does not exist")
        return None

    def _breaker(self) -> Outcome | None:
        brk = self.view.step.breaker
        if brk is None:
            return None
        gate, open_until = breakers.gate(
            self.ctx.state, brk, self.ctx.run_id, self.view.task_key, self.view.step.timeout
        )
        if gate == "go":
            return None
        if gate == "wait":  # a half-open trial is in flight: its result decides
            return Outcome.LATER
        until = time.strftime("%H:%M:%S", time.localtime(open_until))
        message = f"circuit {brk.name} open until {until}"
        self._record(Status.CIRCUIT_OPEN, message)
        return self._done(Status.CIRCUIT_OPEN, [f"skipped: circuit open until {until}"], message)

    def _submit(self) -> Outcome | None:
        wf, step = self.view.wf, self.view.step
        env = dict(self.ctx.base_env)
        env.update(self._env)
        env.update(
            {
                "ORCH_WORKFLOW": wf.name,
                "ORCH_STEP": step.name,
                "ORCH_RUN_ID": str(self.ctx.run_id),
                "ORCH_ROOT": str(self.ctx.root),
                "ORCH_ENV": self.ctx.env_name,
            }
        )
        self.task = TaskRun(
            run_id=self.ctx.run_id,
            env_name=self.ctx.env_name,
            view=self.view,
            decision=self.decision,
            command=self._command,
            cwd=self._cwd(),
            env=env,
            echo=self._echo(),
            report=self.ctx.report,
            mask=self.ctx.state.secrets.values,  # every secret of the run, not only its own
            cancel=Cancel(),
            hold_fds=tuple(
                fd for fd in [self.ctx.state.claim_fd(self.view.task_key)] if fd is not None
            ),
        )
        return Outcome.STARTED

    # -- helpers ----------------------------------------------------------------------
    def _cwd(self) -> Path:
        wd = self.view.workdir
        return self.ctx.root / wd if wd else self.ctx.root

    def _echo(self) -> Callable[[str], None] | None:
        wf, step = self.key
        if self.ctx.echo_for is not None:
            return self.ctx.echo_for(wf, step)
        echo = self.ctx.echo
        if echo is None:
            return None
        prefix = f"[{wf}/{step}] " if self.ctx.prefix_workflow else f"[{step}] "
        return lambda line: echo(prefix + line)

    def _done(
        self, status: str, reasons: list[str] | tuple[str, ...] = (), message: str = ""
    ) -> Outcome:
        self.result = StepResult(self.key[0], self.key[1], status, reasons, message=message)
        return Outcome.DONE

    def _record(self, status: str, reason: str) -> None:
        record.record_status(
            self.ctx.state,
            self.records,
            self.key[0],
            self.key[1],
            env=self.ctx.env_name,
            run_id=self.ctx.run_id,
            status=status,
            reason=reason,
            now=self.ctx.clock(),
        )

    def _failed(self, message: str) -> Outcome:
        self._record(Status.FAILED, message)
        return self._done(Status.FAILED, self.decision.reasons, message)

    def _template_failed(self, e: Exception, *field: Any) -> Outcome:
        """A template that failed with this run's values, said as ``orch validate`` says
        one: ``FILE:LINE:COL: spec.steps[I].FIELD: template error: ...``."""
        from runner.manifests.positions import at, step_field
        from runner.manifests.schema import dotted

        wf, step = self.view.wf, self.view.step
        path = step_field(step.index, *field)
        where = at(self.ctx.root, wf, path)
        return self._failed(f"{where}: {dotted(path)}: template error: {e}")


def _stamp(rec: StepRecord) -> tuple[Any, ...]:
    """What changes whenever a step's record is written again."""
    return (rec.fingerprint, rec.status, rec.run_id, rec.updated)


def template_context(
    view: StepView, catalog: Manifests, records: Mapping[str, Any], environ: dict[str, str]
) -> dict[str, Any]:
    """What a step's templates (``run``, ``env``, ``when``) see: params, the outputs and
    status of its direct upstream steps (from ``records``, name -> StepRecord), the
    workflow, the environment, the project and the step. Validation turns every
    ``steps.X`` reference into an edge, so the direct upstream steps are all a template
    may read (and building more would be O(steps^2))."""
    wf, step = view.wf, view.step
    proj = catalog.projects.get(wf.project) if wf.project else None
    ctx: dict[str, Any] = {
        "params": {**view.params, **step.params},
        "steps": {
            n: {"outputs": records[n].outputs, "status": records[n].status}
            for n in view.upstream
            if n in records
        },
        "workflow": {"name": wf.name, "project": wf.project or ""},
        "env": environ,
        "project": project_context(proj),
        "step": {"name": step.name},
        **step.fan,
    }
    if wf.groups:
        ctx["steps"].update(fan_instances(view, records))
    if view.git is not None:  # only a step that reads {{ git.* }} has them (and pays for git)
        ctx["git"] = view.git
    return ctx


def fan_instances(view: StepView, records: Mapping[str, Any]) -> dict[str, Any]:
    """``steps.G.instances`` for each fan-out step G whose instances are upstream: in
    the order they were made, each with its ``key`` (matrix) or ``item`` (foreach),
    ``name``, ``status`` and ``outputs``."""
    wf, ups = view.wf, set(view.upstream)
    out: dict[str, Any] = {}
    for g, names in wf.groups.items():
        if names and names[0] not in ups:
            continue  # (a foreach with no instance yet reads as an empty list)
        rows = []
        for n in names:
            rec = records.get(n)
            fan = wf.step(n).fan
            rows.append({
                "name": n,
                **({"key": fan["matrix"]} if "matrix" in fan else {"item": fan.get("item")}),
                "status": rec.status if rec else None,
                "outputs": rec.outputs if rec else {},
            })  # fmt: skip
        out[g] = {"instances": rows}
    return out
