"""The apply loop: ready steps started in order, finished tasks settled, until done.

    run ──► _pass (repeated while it makes progress) ──► Start(key).run() per ready step
     │         └─ DONE ─► _finish ─► wake dependants (or block them)
     ├─► _poll_cancels (``orch task cancel`` from other processes)
     └─► a task ended ─► _settle (record, give back) ─► _finish

Tasks run on a thread pool through the executor (``attempts.run_attempts``); everything
else (deciding, recording, quotas) happens on the loop's own thread, so the store is
written from one place; a success's result is stored in the result cache by its task's
thread (``run_and_store``), before the task counts as finished. Results and progress events are the loop's output; the caller
runs the hooks and ends the run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import LockBusy, shown
from runner.reconcile import record
from runner.reconcile.attempts import Attempt, TaskRun, run_attempts
from runner.reconcile.queue import ReadyQueue
from runner.reconcile.quotas import Quotas
from runner.reconcile.results import ApplyOptions, ApplyResult, StepResult
from runner.reconcile.start import Outcome, Start, StartContext
from runner.status import FAILED, NOT_OK, Status

# the steps decided without running (restores, mostly) recorded per commit, and how long
# one batch may hold the state (a running task's thread waits for it to write its rows)
BATCH_STEPS = 64
BATCH_SECONDS = 0.02

if TYPE_CHECKING:
    from runner.execute.api import Executor
    from runner.manifests.catalog import Manifests
    from runner.manifests.hashing import Hasher
    from runner.model import Workflow
    from runner.reconcile.planner import Key, Plans
    from runner.reconcile.restore import ResultCache
    from runner.reconcile.selection import Selection
    from runner.store.state import State


class ApplyLoop:
    """One apply's scheduling loop. ``run()`` fills ``results``; ``result()`` orders them."""

    def __init__(
        self,
        catalog: Manifests,
        wfs: list[Workflow],
        sel: Selection,
        plans: Plans,
        *,
        state: State,
        hasher: Hasher,
        root: Path,
        run_id: int,
        opts: ApplyOptions,
        executor: Executor,
        clock: Callable[[], float],
        cache: ResultCache | None = None,
    ):
        from runner.manifests.sources import clean_git_env

        self.catalog, self.wfs, self.sel = catalog, wfs, sel
        self.state, self.hasher, self.root, self.run_id = state, hasher, root, run_id
        self.opts, self.executor, self.clock = opts, executor, clock
        self.jobs = opts.jobs or catalog.config.jobs or os.cpu_count() or 2
        self.by_name = {w.name: w for w in wfs}
        self.results: dict[Key, StepResult] = {}
        self.ready = ReadyQueue()
        self.running: dict[Key, Start] = {}
        self.waiting_lock: dict[Key, float] = {}
        self.done_q: queue.Queue[tuple[Key, Future[list[Attempt]]]] = queue.Queue()
        self.stopping = False
        self.interrupted = False
        self.cancelled = False  # orch task cancel --run: the steps left are cancelled too
        self._submitting: Start | None = None  # between pool.submit and self.running
        self.lost: str | None = None  # why the executor can run nothing more (cluster gone)
        self.quotas = Quotas(
            catalog, wfs, state=state, run_id=run_id, host=getattr(executor, "runs_here", True)
        )
        self.ctx = StartContext(
            catalog=catalog,
            state=state,
            hasher=hasher,
            quotas=self.quotas,
            views=plans.views,
            planned={(d.workflow, d.step): d for ds in plans.decisions.values() for d in ds},
            # read afresh: another runner may have recorded something since the plan
            records={w.name: state.step_records(w.name, sel.env) for w in wfs},
            results=self.results,
            run_id=run_id,
            env_name=sel.env,
            root=root,
            clock=clock,
            wait=opts.wait,
            echo=opts.echo,
            report=self._emit if opts.report else None,
            echo_for=opts.echo_for,
            prefix_workflow=len(wfs) > 1,
            environ=dict(os.environ),
            base_env=clean_git_env(),
            cache=cache,
            plan_records=plans.records,
        )
        # steps that need (or read the instances of) a foreach over a source step's
        # outputs while the plan says those instances are pending: they wait for the
        # apply's next round, which knows the instances (runner.api.apply), instead of
        # running now with the old list and again then
        # (only while the source runs in this round: one that stays skipped or failed
        # leaves the instances as they are, and the readers run with them)
        running = {
            (d.workflow, d.step)
            for ds in plans.decisions.values()
            for d in ds
            if d.action != Status.UP_TO_DATE
        }
        pending = {(w, g) for w, g, src in plans.pending if (w, src) in running}
        self.deferred = {
            k for k, gs in catalog.fan_waits.items() if any((k[0], g) in pending for g in gs)
        }
        # and the instances found before the source ran: the next round expands again
        for w, g in pending:
            self.deferred.update((w, n) for n in catalog.workflows[w].groups.get(g, ()))
        self._remaining_up: dict[Key, int] = {}
        # edges across workflows (a file one writes and another reads), both selected
        self._cross_up: dict[Key, list[Key]] = {}
        self._cross_down: dict[Key, list[Key]] = {}
        for down, ups in catalog.cross_upstream.items():
            if down[0] in self.by_name:
                for up in ups:
                    if up[0] in self.by_name:
                        self._cross_up.setdefault(down, []).append(up)
                        self._cross_down.setdefault(up, []).append(down)

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        """Run until every step has a result, or until stopped (fail-fast, ``opts.stop``);
        Ctrl-C interrupts the running tasks, records them, and is re-raised."""
        self._push_roots()
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="orch-task")
        try:
            self._loop(pool)
        except KeyboardInterrupt:
            self.interrupted = True
            half = [self._submitting] if self._submitting is not None else []
            for start in [*self.running.values(), *half]:
                assert start.task is not None
                start.task.cancel.cancel(Status.INTERRUPTED)
            while self.running:
                key, fut = self.done_q.get()
                if key in self.running:  # else submitted as Ctrl-C came: never counted
                    self.results[key] = self._settle(key, fut)
        finally:
            pool.shutdown(wait=True)
            self.hasher.flush()

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        last_poll = 0.0
        while True:
            stop = self.opts.stop
            if not self.stopping and stop is not None and stop.is_set():
                self._stop(Status.INTERRUPTED)
            lost = getattr(self.executor, "lost", None)
            if lost and self.lost is None:  # its cluster is gone: as Ctrl-C, with a reason
                self.lost = lost
                self.interrupted = True
                self._stop(Status.INTERRUPTED)
            if not self.stopping:
                # one scheduling pass, repeated while it makes progress: a step decided
                # without running (early cutoff, skipped, blocked) frees its dependants at
                # once and they must not wait for a task to finish
                while self._pass(pool) and not self.stopping:
                    pass
            # stopping: steps still waiting (a lock, a quota) are never started: done
            if not self.running and (self.stopping or (not self.waiting_lock and not self.ready)):
                return
            now = self.clock()
            if now - last_poll > 0.25:  # also while every step waits on a lock or quota
                last_poll = now
                self._poll_cancels()
            busy = self.waiting_lock or len(self.ready)
            try:
                done = [self.done_q.get(timeout=0.05 if busy else 0.25)]
            except queue.Empty:
                continue
            for key, res in self._settle_all(done):
                self.hasher.forget()
                self._finish(key, res)
                if res.status in FAILED and self.opts.fail_fast:
                    self.stopping = True

    def _pass(self, pool: ThreadPoolExecutor) -> bool:
        """Start what can start now, best first; True if a step was decided without running.

        The steps decided without running (restored, skipped, up to date, failed to
        start) are recorded in batches, one commit each (``State.batch``, at most
        ``BATCH_STEPS`` steps or ``BATCH_SECONDS``, as a running task's thread waits for
        the batch to write its own rows); their claims are given back, and their
        dependants freed, only after that commit: every finished step is durable before
        its dependants start, or another runner may claim it."""
        self.quotas.new_pass()
        later: list[tuple[str, Key]] = []
        keys = self._candidates()
        progressed, more = False, True
        while more:
            done: list[Start] = []
            with self.state.batch():
                more, error = self._start_some(pool, keys, later, done)
            for start in done:  # committed: durable
                start.give_back()
                assert start.result is not None
                self._finish(start.key, start.result)
            progressed = progressed or bool(done)
            if error is not None:  # (after the commit: what was restored stays recorded)
                raise error
        for lk, key in later:
            st = self.by_name[key[0]].step(key[1])
            self.ready.push(lk, key[0], st.priority, st.index, key)
        return progressed

    def _candidates(self) -> Iterator[tuple[str, Key]]:
        """The ready steps, best first, then those waiting on another runner's claim, while
        a task slot is free (read as each is taken: a batch's commit frees dependants)."""
        while len(self.ready) and len(self.running) < self.jobs:
            yield self.ready.pop()
        for key in list(self.waiting_lock):
            if len(self.running) >= self.jobs:
                return
            yield f"{key[0]}/{key[1]}", key

    def _start_some(
        self,
        pool: ThreadPoolExecutor,
        keys: Iterator[tuple[str, Key]],
        later: list[tuple[str, Key]],
        done: list[Start],
    ) -> tuple[bool, BaseException | None]:
        """Start ``keys`` until one batch is full: (more may follow, the error that ended
        it). ``done`` gets the starts decided without running, still holding their claims."""
        t0 = time.monotonic()
        for lk, key in keys:
            try:
                outcome = self._start(pool, key, done)
            except BaseException as e:  # noqa: BLE001 -- re-raised once the batch is committed
                return False, e
            if outcome is Outcome.LATER:
                later.append((lk, key))
            if len(done) >= BATCH_STEPS or (done and time.monotonic() - t0 > BATCH_SECONDS):
                return True, None
        return False, None

    def _start(self, pool: ThreadPoolExecutor, key: Key, done: list[Start]) -> Outcome:
        start = Start(self.ctx, key, hold=True)
        try:
            outcome = start.run()
        except LockBusy as e:  # --no-wait met a step another orch runs: the run is refused
            why = f"refused: {e} (--no-wait)"
            self.results[key] = StepResult(key[0], key[1], Status.NOT_STARTED, [why], message=why)
            raise
        if outcome is Outcome.WAIT:
            self.waiting_lock.setdefault(key, self.clock())
            return outcome
        self.waiting_lock.pop(key, None)
        if outcome is Outcome.DONE:
            done.append(start)  # given back and finished once its batch is committed
        elif outcome is Outcome.STARTED:
            self._submit(pool, key, start)
        return outcome

    def _submit(self, pool: ThreadPoolExecutor, key: Key, start: Start) -> None:
        task = start.task
        assert task is not None
        self._emit(
            {
                "event": "started",
                "workflow": key[0],
                "step": key[1],
                "reasons": list(task.decision.reasons),
                # rendered, masked by _emit: apply -v prints it; --events leaves it out
                "command": task.command,
            }
        )
        # a Ctrl-C (or a closed pipe) can land anywhere in here: _submitting lets run()
        # cancel a task submitted but not yet in self.running (its row is closed by
        # end_run), and the callback is attached before the task counts as running
        self._submitting = start
        cache = self.ctx.cache  # a success is stored in the task's thread, when on
        fut = pool.submit(
            run_attempts if cache is None else partial(run_and_store, cache),
            task,
            executor=self.executor,
            state=self.state,
            root=self.root,
            clock=self.clock,
        )
        fut.add_done_callback(lambda f, _k=key: self.done_q.put((_k, f)))
        self.running[key] = start
        self._submitting = None
        self.ready.started(key[0])

    # -- a step's end -----------------------------------------------------------------
    def _settle_all(
        self, done: list[tuple[Key, Future[list[Attempt]]]]
    ) -> list[tuple[Key, StepResult]]:
        """``done`` and every other task that has finished by now, settled as ``_settle``
        does but recorded in one transaction (``State.batch``): one commit for tasks that
        finished together. Their claims and allocations are given back, and their
        dependants freed (by the caller), only after that commit, so every finished task is
        durable before its dependants start. If the batch fails, nothing of it is
        recorded and the tasks go back to the queue, for the caller's error path
        (Ctrl-C settles them one by one)."""
        while True:
            try:
                done.append(self.done_q.get_nowait())
            except queue.Empty:
                break
        try:
            with self.state.batch():
                results = [(key, self._record(key, fut)) for key, fut in done]
        except BaseException:
            for item in done:
                self.done_q.put(item)
            raise
        starts = [self.running.pop(key) for key, _ in results]
        for start in starts:
            start.give_back()
        return results

    def _settle(self, key: Key, fut: Future[list[Attempt]]) -> StepResult:
        """A finished task: its outputs hashed and its result recorded (one transaction),
        its quota allocations and step claim given back -- on every way it ended."""
        res = self._record(key, fut)
        self.running.pop(key).give_back()
        return res

    def _record(self, key: Key, fut: Future[list[Attempt]]) -> StepResult:
        """Hash a finished task's outputs and record its result; one ``tx()``."""
        start = self.running[key]
        task = start.task
        assert task is not None
        records = self.ctx.records[key[0]]
        try:
            res = record.complete(
                task,
                fut.result(),
                state=self.state,
                hasher=self.hasher,
                records=records,
                clock=self.clock,
            )
        except Exception as e:  # record, never lose the runner over one task
            message = _failure(e, self.root)
            res = StepResult(key[0], key[1], Status.FAILED, task.decision.reasons, message=message)
            record.record_status(
                self.state,
                records,
                key[0],
                key[1],
                env=self.sel.env,
                run_id=self.run_id,
                status=Status.FAILED,
                reason=message,
                now=self.clock(),
            )
        return res

    def _finish(self, key: Key, res: StepResult) -> None:
        """Keep ``res``; block the step's descendants if it did not do its work, else
        push the dependants it was the last upstream of."""
        self.results[key] = res
        self._emit({"event": "finished", **res.to_json()})
        wf = self.by_name[key[0]]
        dag = self.catalog.dags[wf.name]
        if res.status in NOT_OK:
            why = f"upstream {res.status.replace('_', ' ')}: {key[1]}"
            self._block(wf, dag.descendants({key[1]}), why)
            self._block_across(key, why)
            return
        downs = [(wf.name, d) for d in dag.downstream()[key[1]]]
        for dk in downs + self._cross_down.get(key, []):
            self._remaining_up[dk] -= 1
            if self._remaining_up[dk] == 0 and dk not in self.results and dk not in self.deferred:
                st = self.by_name[dk[0]].step(dk[1])
                self.ready.push(f"{dk[0]}/{dk[1]}", dk[0], st.priority, st.index, dk)

    def _block_across(self, key: Key, why: str) -> None:
        """Block the readers in other workflows of what ``key`` (or a step it blocked)
        writes, and everything downstream of them."""
        todo = [key]
        seen = {key}
        while todo:
            k = todo.pop()
            dag = self.catalog.dags[k[0]]
            for src in [k, *((k[0], d) for d in dag.descendants({k[1]}))]:
                for down in self._cross_down.get(src, ()):
                    if down in seen:
                        continue
                    seen.add(down)
                    wf = self.by_name[down[0]]
                    names = {down[1]} | self.catalog.dags[wf.name].descendants({down[1]})
                    self._block(wf, names, f"{why} (in workflow {key[0]})")
                    todo.append(down)

    def _block(self, wf: Workflow, names: set[str], why: str) -> None:
        for d in sorted(names, key=lambda n: wf.step(n).index):
            dk = (wf.name, d)
            if dk in self.results:
                continue
            blocked = StepResult(wf.name, d, Status.BLOCKED, [why])
            self.results[dk] = blocked
            record.record_blocked(
                self.state,
                self.ctx.records[wf.name],
                wf.name,
                d,
                env=self.sel.env,
                run_id=self.run_id,
                now=self.clock(),
            )
            self._emit({"event": "finished", **blocked.to_json()})

    # -- helpers ----------------------------------------------------------------------
    def _push_roots(self) -> None:
        for w in self.wfs:
            dag = self.catalog.dags[w.name]
            for name in dag.order:
                k = (w.name, name)
                self._remaining_up[k] = len(dag.upstream[name]) + len(self._cross_up.get(k, ()))
                if self._remaining_up[k] == 0 and k not in self.deferred:
                    st = w.step(name)
                    self.ready.push(f"{w.name}/{name}", w.name, st.priority, st.index, k)

    def _stop(self, status: str) -> None:
        self.stopping = True
        for start in self.running.values():
            assert start.task is not None
            start.task.cancel.cancel(status)

    def _poll_cancels(self) -> None:
        """Honour ``orch task cancel`` from other processes: one query for this run."""
        from runner.store.tasks import cancel_requests

        for wf, step, whole_run in cancel_requests(self.state, self.run_id):
            if whole_run and not self.cancelled:  # orch task cancel --run: start nothing more
                self.cancelled = True
                self._stop(Status.CANCELLED)
                self.waiting_lock.clear()  # waiting on another runner's lock: never starts
            start = self.running.get((wf, step))
            if start is not None and start.task is not None:
                start.task.cancel.cancel(Status.CANCELLED)

    def _emit(self, ev: dict[str, Any]) -> None:
        """A progress event to ``opts.report``, masked with the run's secrets. Events:
        ``run-started``, ``planned`` (flow), ``started`` and ``finished`` (a step, here),
        ``task-started``, ``task-retrying``, ``task-finished`` (attempts, from worker
        threads); a consumer ignores the kinds it does not know."""
        if self.opts.report:
            self.opts.report(self.state.secrets.mask_any(ev))  # type: ignore[arg-type]

    def result(self, duration: float) -> ApplyResult:
        """The results in declaration order; steps never reached when stopped early are
        "not-started", or "cancelled" when the whole run was (``task cancel --run``)."""
        ordered = []
        for w in self.wfs:
            for name in self.catalog.dags[w.name].order:
                k = (w.name, name)
                if k in self.results:
                    ordered.append(self.results[k])
                elif self.cancelled and not self.interrupted:  # waiting, or not yet ready
                    why = "cancelled before it started (orch task cancel --run)"
                    ordered.append(StepResult(w.name, name, Status.CANCELLED, [why]))
                elif self.stopping or self.interrupted:
                    ordered.append(
                        StepResult(
                            w.name, name, Status.NOT_STARTED, ["not started (stopped early)"]
                        )
                    )
        return ApplyResult(self.run_id, ordered, duration)


def run_and_store(cache: ResultCache, task: TaskRun, **kw: Any) -> list[Attempt]:
    """``run_attempts`` (``kw`` its keywords), then a success stored in the result
    ``cache`` (``ResultCache.save`` says which are), in this thread: the task's worker
    thread, so the store's writes overlap the loop's work and the other tasks instead of
    holding up the loop; and before the task counts as finished, so a stored result is in
    the store before any of the step's dependants starts."""
    attempts = run_attempts(task, **kw)
    if attempts:
        last = attempts[-1].result
        cache.save(task.view, task.decision, last, run_id=task.run_id, secrets=kw["state"].secrets)
    return attempts


# what to do when the machine, not the step, failed a task (a file in the way of a folder
# orch keeps, a full disk, permissions): the step's message says it in one line
_OS_HINTS = {
    errno.ENOTDIR: "a file stands where orch keeps a folder; move it away",
    errno.EEXIST: "something stands where orch writes; move it away",
    errno.ENOSPC: "the disk is full; free space on it",
    errno.EDQUOT: "the disk quota is used up; free space",
    errno.EACCES: "permission denied; check the permissions",
    errno.EPERM: "not permitted; check the permissions",
    errno.EROFS: "the file system is read-only; run where it is writable",
    errno.EIO: "an I/O error; check the disk",
}


def _failure(e: Exception, root: Path) -> str:
    """A task's failure that is not the step's: one line naming the path and what to do
    for an error of the machine, else ``internal error`` (a bug to report)."""
    hint = _OS_HINTS.get(e.errno or 0) if isinstance(e, OSError) else None
    if hint is None or not isinstance(e, OSError) or e.filename is None:
        return f"internal error: {shown(str(e))}"
    path = os.fsdecode(e.filename)
    with contextlib.suppress(ValueError):
        path = Path(path).relative_to(root).as_posix()
    return shown(f"{path}: {e.strerror or e}; {hint}, then run orch apply again")
