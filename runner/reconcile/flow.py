"""Plan and apply: desired state (manifests + files) against recorded state (.orch/).

    plan ──> for each ready step, best first:
               claim (kernel lock) ──> re-decide with fresh upstream results (early cutoff)
               ──> render ──> when ──> breaker ──> quotas ──> executor (worker thread)
             on each finished task: hash outputs ──> record (one transaction) ──> release
             ──> wake dependants (or block them)

The executor, clock and output stream are passed in through ``ApplyOptions`` so the same
loop serves the CLI, ``orch watch`` and the MCP server.
"""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import LockBusy, OrchError
from runner.links import LinkEscape
from runner.manifests.checks import base_params
from runner.manifests.graph import Dag
from runner.manifests.hashing import Hasher
from runner.manifests.load import Manifests
from runner.model import Step, Workflow
from runner.reconcile import attempts, hooks
from runner.reconcile.decide import MAY_RUN, RUN, UP_TO_DATE, StepPlan, decide
from runner.reconcile.results import FAILED, ApplyOptions, ApplyResult, StepResult  # noqa: F401 - re-exported
from runner.store import allocations, breakers
from runner.store.state import State, StepRecord


@dataclass
class Selection:
    workflows: list[str]
    env: str = ""
    forced: set[tuple[str, str]] = field(default_factory=set)
    force_all: bool = False


def select_workflows(m: Manifests, names: list[str], project: str | None) -> list[Workflow]:
    if names:
        wfs = [m.workflow(n) for n in names]
    else:
        wfs = sorted(m.workflows.values(), key=lambda w: w.name)
    if project:
        if project not in m.projects:
            from runner.errors import did_you_mean

            raise OrchError(
                f"no project named '{project}' ({did_you_mean(project, list(m.projects)) or 'see orch project list'})"
            )
        wfs = [w for w in wfs if w.project == project]
    archived = {p.name for p in m.projects.values() if p.lifecycle == "archived"}
    return [w for w in wfs if w.project not in archived]


def parse_forced(m: Manifests, wfs: list[Workflow], specs: list[str]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for spec in specs:
        wname, sep, sname = spec.partition("/")
        if not sep:
            sname, wname = wname, ""
        hits = [
            (w.name, sname) for w in wfs if (not wname or w.name == wname) and sname in w.step_names
        ]
        if not hits:
            raise OrchError(f"--force {spec}: no such step in the selected workflows")
        out.update(hits)
    return out


class Reconciler:
    def __init__(self, root: Path, m: Manifests, state: State):
        self.root = root
        self.m = m
        self.state = state
        self.hasher = Hasher(root, state)
        self._environ: dict[str, str] | None = None
        self._base_env: dict[str, str] | None = None

    # -- plan -------------------------------------------------------------------------
    def step_paths(
        self, wf: Workflow, step: Step, params: dict[str, Any]
    ) -> tuple[list[str], list[str], str]:
        from runner.manifests import paths as pathmod

        def resolve(p: str) -> str:
            if "{{" in p or "{%" in p:
                from runner.templating import render_text

                p = render_text(
                    p,
                    {"params": {**params, **step.params}, "workflow": {"name": wf.name}, "env": {}},
                )
            return pathmod.join(wf.base, p)

        ins = [resolve(p) for p in step.inputs]
        outs = [resolve(p) for p in step.outputs]
        wd = resolve(step.workdir) if step.workdir else wf.base
        return ins, outs, wd

    def plan_workflow(
        self,
        wf: Workflow,
        sel: Selection,
        records: dict[str, StepRecord] | None = None,
        own_runs: set[int] | None = None,
    ) -> list[StepPlan]:
        dag: Dag = self.m.dags[wf.name]
        records = self.state.step_records(wf.name, sel.env) if records is None else records
        params = base_params(self.m, wf, sel.env or None)
        will_run: set[str] = set()
        plans = []
        for name in dag.order:
            step = wf.step(name)
            ins, outs, _wd = self.step_paths(wf, step, params)
            rec = records.get(name)
            forced = sel.force_all or (wf.name, name) in sel.forced
            try:
                p = decide(
                    wf,
                    step,
                    rec,
                    params=params,
                    param_refs=self.m.param_refs.get((wf.name, name), ()),
                    static=self.m.static_fields.get((wf.name, name)),
                    env_refs=self.m.env_refs.get((wf.name, name), ()),
                    inputs=ins,
                    outputs=outs,
                    upstream=dag.upstream[name],
                    records=records,
                    will_run=will_run,
                    hasher=self.hasher,
                    forced=forced,
                )
            except LinkEscape as e:
                raise LinkEscape(f"{wf.path}: step '{name}': inputs: {e}") from None
            if (
                rec is not None
                and rec.status == "running"
                and rec.run_id
                and self.state.run_alive(rec.run_id, own_runs)
            ):
                p.action = RUN
                p.reasons = [f"running in another orch (run {rec.run_id})"]
            if p.action != UP_TO_DATE:
                will_run.add(name)
            plans.append(p)
        return plans

    def plan(self, wfs: list[Workflow], sel: Selection) -> dict[str, list[StepPlan]]:
        dead = self.state.reap_dead_runs()
        if dead:
            # a runner killed outright leaves its tasks running in sessions of their own;
            # end them before anything re-runs those steps beside them
            from runner.execute.proctree import kill_marked

            for rid in dead:
                kill_marked({"ORCH_RUN_ID": str(rid), "ORCH_ROOT": str(self.root)})
        out = {wf.name: self.plan_workflow(wf, sel) for wf in wfs}
        self.hasher.flush()
        return out

    # -- apply ------------------------------------------------------------------------
    def apply(self, wfs: list[Workflow], sel: Selection, opts: ApplyOptions) -> ApplyResult:
        from runner.reconcile.queue import (
            Admission,
            QuotaLimits,
            ReadyQueue,
            rate_allows,
            request_of,
        )

        t0 = time.time()
        # which commit this runs at costs two git processes: ask while we plan
        from concurrent.futures import ThreadPoolExecutor

        from runner.manifests.sources import git_commit_state

        side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orch-git")
        commit_state = side.submit(git_commit_state, self.root)
        side.shutdown(wait=False)
        plans = self.plan(wfs, sel)
        if all(p.action == UP_TO_DATE for ps in plans.values() for p in ps):
            results = [
                StepResult(p.workflow, p.step, "up-to-date") for ps in plans.values() for p in ps
            ]
            return ApplyResult(None, results, time.time() - t0)

        from runner.execute.local import Cancel

        commit, dirty = commit_state.result()
        run_id = self.state.begin_run(
            list(opts.argv), sel.env, commit, dirty, [w.name for w in wfs]
        )
        jobs = opts.jobs or self.m.config.jobs or os.cpu_count() or 2
        by_name = {w.name: w for w in wfs}
        results: dict[tuple[str, str], StepResult] = {}
        records = {w.name: self.state.step_records(w.name, sel.env) for w in wfs}
        params_of = {w.name: base_params(self.m, w, sel.env or None) for w in wfs}
        plan_of = {(p.workflow, p.step): p for ps in plans.values() for p in ps}
        remaining_up: dict[tuple[str, str], int] = {}
        ready = ReadyQueue()
        quotas = {
            q.name: QuotaLimits(q.name, dict(q.limits), q.rate_runs, q.rate_per)
            for q in self.m.quotas.values()
        }
        from runner.reconcile.quotas import governing

        quota_of = {w.name: [q.name for q in governing(self.m, w)] for w in wfs}
        if any(s.resources.get("cpu") or s.resources.get("memory") for w in wfs for s in w.steps):
            from runner.inventory import HOST_QUOTA, host_limits

            # the host is the ceiling of every quota, across all runners on this machine
            quotas[HOST_QUOTA] = QuotaLimits(HOST_QUOTA, host_limits())
            for names in quota_of.values():
                names.append(HOST_QUOTA)
        held: dict[str, dict[str, float]] = {}
        done_q: queue.Queue[tuple[tuple[str, str], Any]] = queue.Queue()
        running: dict[tuple[str, str], tuple[Any, int | None, dict[str, float]]] = {}
        waiting_lock: dict[tuple[str, str], float] = {}
        failed_any = False
        stopping = False
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="orch-task")

        def emit(ev: dict[str, Any]) -> None:
            if opts.report:
                opts.report(ev)

        def finish(key: tuple[str, str], res: StepResult) -> None:
            results[key] = res
            emit({"event": "finished", **res.to_json()})
            wf = by_name[key[0]]
            dag = self.m.dags[wf.name]
            if res.status in (*FAILED, "blocked", "circuit_open"):
                for d in sorted(dag.descendants({key[1]}), key=lambda n: wf.step(n).index):
                    dk = (wf.name, d)
                    if dk in results:
                        continue
                    blocked = StepResult(
                        wf.name,
                        d,
                        "blocked",
                        [f"upstream {res.status.replace('_', ' ')}: {key[1]}"],
                    )
                    results[dk] = blocked
                    attempts.record_blocked(self, wf, d, sel.env, run_id, records[wf.name])
                    emit({"event": "finished", **blocked.to_json()})
                return
            for d in dag.downstream()[key[1]]:
                dk = (wf.name, d)
                remaining_up[dk] -= 1
                if remaining_up[dk] == 0 and dk not in results:
                    st = wf.step(d)
                    ready.push(f"{wf.name}/{d}", wf.name, st.priority, st.index, dk)

        for w in wfs:
            dag = self.m.dags[w.name]
            for name in dag.order:
                k = (w.name, name)
                remaining_up[k] = len(dag.upstream[name])
                if remaining_up[k] == 0:
                    st = w.step(name)
                    ready.push(f"{w.name}/{name}", w.name, st.priority, st.index, k)

        def settle(key: tuple[str, str], fut: Any) -> StepResult:
            """A finished task: its outputs hashed and its result recorded (one transaction),
            its quota allocations and step lock given back -- on every way it ended."""
            _cancel, _tid, req = running.pop(key)
            wf = by_name[key[0]]
            step = wf.step(key[1])
            try:
                res = attempts.complete(
                    self, run_id, wf, step, sel.env, plan_of[key], fut.result(), records[wf.name]
                )
            except Exception as e:  # record, never lose the runner over one task
                res = StepResult(
                    wf.name,
                    step.name,
                    "failed",
                    plan_of[key].reasons,
                    message=f"internal error: {e}",
                )
                attempts.record_status(
                    self, wf, step.name, sel.env, run_id, records[wf.name], "failed", res.message
                )
            allocations.free(
                self, run_id, f"{wf.name}/{step.name}", quota_of[wf.name], req, held, quotas
            )
            return res

        def start(key: tuple[str, str]) -> str:
            """Try to start ``key``: 'started', 'done' (decided without running), 'wait', 'later'."""
            wf = by_name[key[0]]
            step = wf.step(key[1])
            lock_key = f"{wf.name}/{step.name}"
            if plan_of[key].action == UP_TO_DATE and all(
                results[(wf.name, u)].status == "up-to-date"
                for u in self.m.dags[wf.name].upstream[step.name]
            ):
                # the plan found it up to date moments ago and nothing upstream has run
                # since: that answer stands (re-deciding 900 of 1,000 steps costs more
                # than the 100 that changed)
                finish(key, StepResult(wf.name, step.name, "up-to-date"))
                return "done"
            # quotas first (this process + live others, in memory): a task that cannot get
            # its resources now is not claimed, re-read and re-decided on every pass
            qnames = quota_of[wf.name]
            req = request_of(step.resources)
            if qnames and not admit(qnames, req):
                return "later"
            if not self.state.try_claim(lock_key):
                if not opts.wait:
                    raise LockBusy(
                        f"step {lock_key} is being run by another orch process (--no-wait given)"
                    )
                waiting_lock.setdefault(key, time.time())
                return "wait"
            waiting_lock.pop(key, None)
            # another runner may have just finished it: read the record afresh, then decide
            fresh = self.state.step_record(wf.name, step.name, sel.env)
            if fresh is not None:
                records[wf.name][step.name] = fresh
            params = params_of[wf.name]
            ins, outs, wd = self.step_paths(wf, step, params)
            dag = self.m.dags[wf.name]
            p = decide(
                wf,
                step,
                records[wf.name].get(step.name),
                params=params,
                param_refs=self.m.param_refs.get(key, ()),
                static=self.m.static_fields.get(key),
                env_refs=self.m.env_refs.get(key, ()),
                inputs=ins,
                outputs=outs,
                upstream=dag.upstream[step.name],
                records=records[wf.name],
                will_run=set(),
                hasher=self.hasher,
                forced=sel.force_all or key in sel.forced,
            )
            rec = records[wf.name].get(step.name)
            if rec is not None and rec.status == "running" and p.action == UP_TO_DATE:
                p.action = RUN
            if p.action == UP_TO_DATE:
                self.state.release(lock_key)
                planned = plan_of[key]
                why = (
                    ["early cutoff: upstream outputs unchanged"]
                    if planned.action == MAY_RUN
                    else []
                )
                finish(key, StepResult(wf.name, step.name, "up-to-date", why))
                return "done"
            # render
            ctx = self._template_context(wf, step, params, records[wf.name])
            try:
                from runner.templating import (
                    evaluate_when,
                    render_argv,
                    render_command,
                    render_text,
                )

                if step.when is not None and not evaluate_when(step.when, ctx):
                    rec2 = StepRecord(
                        wf.name,
                        step.name,
                        sel.env,
                        p.fingerprint,
                        p.fields,
                        p.inputs,
                        p.upstream,
                        {},
                        {},
                        "skipped",
                        "when: false",
                        None,
                        run_id,
                        time.time(),
                        time.time(),
                        time.time(),
                    )
                    self.state.record_step(rec2)
                    records[wf.name][step.name] = rec2
                    self.state.release(lock_key)
                    finish(key, StepResult(wf.name, step.name, "skipped", ["when: false"]))
                    return "done"
                command: str | list[str] = (
                    render_command(step.run, ctx)
                    if isinstance(step.run, str)
                    else render_argv(list(step.run), ctx)
                )
                env_over = {k: render_text(v, ctx) for k, v in step.env.items()}
            except Exception as e:  # TemplateError, or a value the quoting refuses
                msg = f"template error in {wf.path}: spec.steps[{step.index}]: {e}"
                attempts.record_status(
                    self, wf, step.name, sel.env, run_id, records[wf.name], "failed", msg
                )
                self.state.release(lock_key)
                finish(key, StepResult(wf.name, step.name, "failed", p.reasons, message=msg))
                return "done"
            missing = [s for s in step.secrets if s not in os.environ]
            if missing:
                msg = f"secret {', '.join(missing)} is not set in the environment"
                attempts.record_status(
                    self, wf, step.name, sel.env, run_id, records[wf.name], "failed", msg
                )
                self.state.release(lock_key)
                finish(key, StepResult(wf.name, step.name, "failed", p.reasons, message=msg))
                return "done"
            if qnames:
                if not allocations.allocate(self, run_id, lock_key, qnames, req, quotas):
                    self.state.release(lock_key)
                    return "later"
                for q in qnames:
                    h = held.setdefault(q, {})
                    for r in quotas[q].limits:
                        if req.get(r):
                            h[r] = h.get(r, 0.0) + req[r]
            from runner.manifests.sources import clean_git_env

            if self._base_env is None:
                self._base_env = clean_git_env()
            env = dict(self._base_env)
            env.update(env_over)
            env.update(
                {
                    "ORCH_WORKFLOW": wf.name,
                    "ORCH_STEP": step.name,
                    "ORCH_RUN_ID": str(run_id),
                    "ORCH_ROOT": str(self.root),
                    "ORCH_ENV": sel.env,
                }
            )
            cwd = self.root / wd if wd else self.root
            if not cwd.is_dir():
                msg = f"workdir {wd or '.'} does not exist"
                attempts.record_status(
                    self, wf, step.name, sel.env, run_id, records[wf.name], "failed", msg
                )
                allocations.free(self, run_id, lock_key, qnames, req, held, quotas)
                finish(key, StepResult(wf.name, step.name, "failed", p.reasons, message=msg))
                return "done"
            if step.breaker is not None:
                gate, open_until = breakers.gate(self, step.breaker, run_id, lock_key, step.timeout)
                if gate != "go":
                    allocations.free(self, run_id, lock_key, qnames, req, held, quotas)
                    if gate == "wait":  # a half-open trial is in flight: its result decides
                        return "later"
                    until = time.strftime("%H:%M:%S", time.localtime(open_until))
                    attempts.record_status(
                        self,
                        wf,
                        step.name,
                        sel.env,
                        run_id,
                        records[wf.name],
                        "circuit_open",
                        f"circuit {step.breaker.name} open until {until}",
                    )
                    finish(
                        key,
                        StepResult(
                            wf.name,
                            step.name,
                            "circuit_open",
                            [f"skipped: circuit open until {until}"],
                            message=f"circuit {step.breaker.name} open until {until}",
                        ),
                    )
                    return "done"
            mask = tuple(os.environ[s] for s in step.secrets if os.environ.get(s))
            cancel = Cancel()
            prefix = f"[{wf.name}/{step.name}] " if len(wfs) > 1 else f"[{step.name}] "
            echo = (lambda line, _p=prefix: opts.echo(_p + line)) if opts.echo else None  # type: ignore[misc]
            plan_of[key] = p  # record what was decided now, with upstream results known
            emit({"event": "started", "workflow": wf.name, "step": step.name, "reasons": p.reasons})
            fut = pool.submit(
                attempts.run_attempts,
                self,
                run_id,
                wf,
                step,
                sel.env,
                p,
                command,
                cwd,
                env,
                echo,
                mask,
                cancel,
            )
            fut.add_done_callback(lambda f, _k=key: done_q.put((_k, f)))
            running[key] = (cancel, None, req)
            ready.started(wf.name)
            return "started"

        reserved_now: dict[str, dict[str, float]] = {}
        others_now: dict[str, dict[str, float]] = {}
        full_now: set[str] = set()  # quotas with no concurrency left in this pass

        def admit(qnames: list[str], req: dict[str, float]) -> bool:
            """Whether ``req`` fits now; if not, it reserves what is free for this pass, so
            later (smaller) tasks cannot take it and the big task is never starved."""
            if full_now and not full_now.isdisjoint(qnames):
                return False  # every task takes one unit of concurrency: none is left
            adm = Admission(
                {q: _add(held.get(q, {}), others_now.get(q, {})) for q in qnames}, quotas
            )
            adm.reserved = reserved_now
            if adm.fits(qnames, req) and all(
                rate_allows(quotas[q], lambda name, per: allocations.recent_starts(self, name, per))
                for q in qnames
            ):
                return True
            adm.reserve(qnames, req)
            for q in qnames:
                cap = quotas[q].limits.get("concurrency")
                taken = adm.held.get(q, {}).get("concurrency", 0.0)
                taken += reserved_now.get(q, {}).get("concurrency", 0.0)
                if cap is not None and taken >= cap:
                    full_now.add(q)
            return False

        interrupted = False
        last_poll = 0.0
        try:
            while True:
                if not stopping and (opts.stop is not None and opts.stop.is_set()):
                    stopping = True
                    for c, _t, _r in running.values():
                        c.cancel("interrupted")
                if not stopping:
                    # one scheduling pass; repeated while it makes progress, since a step
                    # decided without running (early cutoff, skipped, blocked) frees its
                    # dependants at once and they must not wait for a task to finish
                    progressed = True
                    while progressed and not stopping:
                        progressed = False
                        reserved_now.clear()
                        full_now.clear()
                        if quotas:
                            others_now = allocations.held_by_others(self, run_id)
                        later: list[tuple[str, tuple[str, str]]] = []
                        while len(ready) and len(running) < jobs:
                            lk, key = ready.pop()
                            outcome = start(key)
                            if outcome == "later":
                                later.append((lk, key))
                            elif outcome == "done":
                                progressed = True
                        for key in list(waiting_lock):
                            if len(running) >= jobs:
                                break
                            outcome = start(key)
                            if outcome == "later":
                                later.append((f"{key[0]}/{key[1]}", key))
                            elif outcome == "done":
                                progressed = True
                        for lk, key in later:
                            st = by_name[key[0]].step(key[1])
                            ready.push(lk, key[0], st.priority, st.index, key)
                if not running and not waiting_lock and (len(ready) == 0 or stopping):
                    break
                now = time.time()
                if running and now - last_poll > 0.25:
                    last_poll = now
                    self._poll_cancels(run_id, running)
                try:
                    key, fut = done_q.get(timeout=0.05 if (waiting_lock or len(ready)) else 0.25)
                except queue.Empty:
                    continue
                res = settle(key, fut)
                self.hasher.forget()
                finish(key, res)
                if res.status in FAILED and opts.fail_fast:
                    stopping = True
                failed_any = failed_any or res.status in FAILED
        except KeyboardInterrupt:
            interrupted = True
            for c, _t, _r in running.values():
                c.cancel("interrupted")
            while running:
                key, fut = done_q.get()
                results[key] = settle(key, fut)
        finally:
            pool.shutdown(wait=True)
            self.hasher.flush()
            ordered = []
            for w in wfs:
                for name in self.m.dags[w.name].order:
                    k = (w.name, name)
                    if k in results:
                        ordered.append(results[k])
                    elif stopping or interrupted:
                        ordered.append(
                            StepResult(w.name, name, "not-started", ["not started (stopped early)"])
                        )
            result = ApplyResult(run_id, ordered, time.time() - t0)
            hooks.run_handlers(self, wfs, result, sel, opts)
            status = "interrupted" if interrupted else ("succeeded" if result.ok else "failed")
            self.state.end_run(run_id, status, result.counts())
        if interrupted:
            raise KeyboardInterrupt
        return result

    # -- helpers ----------------------------------------------------------------------
    def _template_context(
        self, wf: Workflow, step: Step, params: dict[str, Any], records: dict[str, StepRecord]
    ) -> dict[str, Any]:
        proj = self.m.projects.get(wf.project) if wf.project else None
        # validation turns every steps.X reference into an edge, so the direct upstream
        # steps are all a template may read (and building more would be O(steps^2))
        ups = self.m.dags[wf.name].upstream[step.name]
        if self._environ is None:
            self._environ = dict(os.environ)
        return {
            "params": {**params, **step.params},
            "steps": {
                n: {"outputs": records[n].outputs, "status": records[n].status}
                for n in ups
                if n in records
            },
            "workflow": {"name": wf.name, "project": wf.project or ""},
            "env": self._environ,
            "project": {"name": proj.name, "path": proj.dir, "params": proj.params} if proj else {},
            "step": {"name": step.name},
        }

    def _poll_cancels(self, run_id: int, running: dict[tuple[str, str], Any]) -> None:
        """Honour ``orch task cancel`` from other processes: one query for this run."""
        rows = self.state.query(
            "SELECT workflow, step FROM tasks WHERE run_id=? AND status='running'"
            " AND cancel_requested=1",
            (run_id,),
        )
        for r in rows:
            entry = running.get((r["workflow"], r["step"]))
            if entry is not None:
                entry[0].cancel("cancelled")


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out
