"""Plan and apply: desired state (manifests + files) against recorded state (.orch/).

    plan  = recover dead runs ─► plan_workflows (a StepView and a StepDecision per step)
    apply = plan ─► begin run ─► ApplyLoop(...).run() ─► on: hooks ─► end run

The executor and the clock come in through ``ApplyOptions`` (defaults: the local
executor, ``time.time``), so the same flow serves the CLI, ``orch watch``, the MCP
server and the tests' fake executor. A no-op apply imports no executor code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import LockBusy
from runner.manifests.hashing import Hasher
from runner.reconcile.planner import Plans, plan_workflows
from runner.reconcile.results import ApplyOptions, ApplyResult, StepResult
from runner.status import Status

if TYPE_CHECKING:
    from concurrent.futures import Future

    from runner.execute.api import Executor
    from runner.manifests.catalog import Manifests
    from runner.masking import Secrets
    from runner.model import Workflow
    from runner.reconcile.restore import ResultCache
    from runner.reconcile.selection import Selection
    from runner.store.state import State


def recover(state: State, root: Path) -> None:
    """Mark the runs of runners that died (kill -9) interrupted, and end their tasks: a
    killed runner leaves them running in sessions of their own, and nothing may re-run
    those steps beside them."""
    dead = state.reap_dead_runs()
    if dead:
        from runner.execute.proctree import kill_marked

        for rid in dead:
            kill_marked({"ORCH_RUN_ID": str(rid), "ORCH_ROOT": str(root)})


def plan(
    root: Path,
    m: Manifests,
    state: State,
    wfs: list[Workflow],
    sel: Selection,
    hasher: Hasher | None = None,
    cache: ResultCache | None = None,
) -> Plans:
    """What apply would do for ``wfs``: a decision per step, with reasons; with a result
    ``cache`` (``restore.open_cache``), the steps it holds results for are ``restore``."""
    recover(state, root)
    hasher = hasher or Hasher(root, state)
    return plan_workflows(
        m, wfs, sel, state=state, hasher=hasher, live_runs=state.run_alive, cache=cache
    )


def apply(
    root: Path,
    m: Manifests,
    state: State,
    wfs: list[Workflow],
    sel: Selection,
    opts: ApplyOptions,
) -> tuple[ApplyResult, Plans]:
    """Run what the plan says; returns the result and the plan it started from."""
    said: list[str] = []  # the cache's warnings, when no report takes them
    cache = _cache(m, root, opts, said)
    try:
        return _apply(root, m, state, wfs, sel, opts, cache, said)
    finally:  # however it ends: the cache's staging folder goes
        if cache is not None:
            cache.close()


def _apply(
    root: Path,
    m: Manifests,
    state: State,
    wfs: list[Workflow],
    sel: Selection,
    opts: ApplyOptions,
    cache: ResultCache | None,
    said: list[str],
) -> tuple[ApplyResult, Plans]:
    clock = opts.clock
    t0 = clock()
    commit_state = _ask_git_commit(root)  # two git processes: ask while we plan
    hasher = Hasher(root, state)
    plans = plan(root, m, state, wfs, sel, hasher, cache)
    said[:0] = plans.warnings
    plans.warnings = said  # and those said while the loop runs
    if opts.expect is not None:  # before anything is written: a refusal leaves no trace
        opts.expect(plans)
    for w in dict.fromkeys(w for w, _ in plans.removed):  # their readers re-run by fingerprint
        state.drop_step_records(w, [s for x, s in plans.removed if x == w])
    if all(d.action == Status.UP_TO_DATE for ds in plans.decisions.values() for d in ds):
        # reasons only where drift: warn found an output edited by hand
        results = [StepResult(w, s, Status.UP_TO_DATE, r) for w, s, _a, r in plans.rows()]
        return ApplyResult(None, results, clock() - t0, removed=tuple(plans.removed)), plans
    from runner.reconcile.loop import ApplyLoop

    executor = opts.executor or choose_executor(m, opts)
    here = getattr(executor, "runs_here", True)
    if here and m.host_diags:  # the config chose dask, this run runs here (--executor local)
        from runner.errors import OrchError

        raise OrchError(diagnostics=m.host_diags)
    opened = _open(executor, root, plans)  # before any state is written: refusals leave none
    for line in getattr(executor, "warnings", ()):  # said once, as the run starts
        if opts.report:
            opts.report({"event": "warning", "message": line})
        else:
            plans.warnings.append(line)
    try:
        commit, dirty = commit_state.result()
        state.secrets = run_secrets(m, root / ".orch")  # every write to the state is masked
        remember_secret_names(m, root / ".orch")
        run_id = state.begin_run(list(opts.argv), sel.env, commit, dirty, [w.name for w in wfs])
        loop = ApplyLoop(
            m, wfs, sel, plans, state=state, hasher=hasher, root=root, run_id=run_id,
            opts=opts, executor=executor, clock=clock, cache=cache,
        )  # fmt: skip
        if opts.report:  # after the loop is built: run-started says how many slots it has
            start = (run_id, sel.env, commit, dirty, loop.jobs)
            _report_start(opts.report, state, start, wfs, plans)
        crashed = True  # until the loop returns: a run it could not finish did not succeed
        refused = False
        try:
            loop.run()
            crashed = False
        except LockBusy:  # refused mid-run (--no-wait met a held step): it did not do its work
            refused = True
            raise
        finally:
            result = loop.result(clock() - t0)
            from runner.reconcile import hooks

            # a refused run failed: its workflow's failure handlers are told, as for any
            # failed run (the refused step is in the result, not-started, saying why)
            failed_hooks = hooks.run(
                wfs, result, catalog=m, state=state, root=root, env_name=sel.env,
                executor=executor, echo=opts.echo, overrides=sel.params,
                interrupted=loop.interrupted, refused=refused,
            )  # fmt: skip
            result = result._replace(hooks_failed=failed_hooks)
            result = result._replace(removed=tuple(plans.removed))
            status = (
                Status.INTERRUPTED
                if loop.interrupted
                else (Status.SUCCEEDED if result.ok and not crashed else Status.FAILED)
            )
            state.end_run(run_id, status, result.counts())
    finally:
        if opened:
            executor.close()
    if loop.lost:
        from runner.errors import Interrupted

        lost = Interrupted(loop.lost)
        lost.result = masked(result, state.secrets)  # type: ignore[attr-defined]
        raise lost
    if loop.interrupted:
        from runner.errors import RunCutShort

        raise RunCutShort(masked(result, state.secrets))  # for --junit and CI summaries
    return masked(result, state.secrets), plans


def _cache(m: Manifests, root: Path, opts: ApplyOptions, warnings: list[str]) -> ResultCache | None:
    """The result cache of an apply (None: off); its warnings (a corrupted entry) go out
    as progress events, or to ``warnings`` for the caller to say."""
    from runner.reconcile.restore import open_cache

    def warn(line: str) -> None:
        if opts.report:
            opts.report({"event": "warning", "message": line})
        else:
            warnings.append(line)

    return open_cache(m, root, off=not opts.cache, warn=warn)


def _report_start(
    report: Callable[[dict[str, Any]], None],
    state: State,
    start: tuple[int, str, str | None, bool | None, int],
    wfs: list[Workflow],
    plans: Plans,
) -> None:
    """The run's first progress events: ``run-started`` (``start``: run id, env, commit,
    dirty, and ``jobs``, the slots the loop runs tasks in: ``-j``, else the config's
    ``jobs:``, else the CPUs), then one ``planned`` per step with its action and reasons
    (what ``orch plan`` would print), masked."""
    run_id, env, commit, dirty, jobs = start
    mask = state.secrets.mask_any
    report(
        mask(
            {
                "event": "run-started",
                "run": run_id,
                "workflows": [w.name for w in wfs],
                "env": env,
                "commit": commit,
                "dirty": dirty,
                "jobs": jobs,
            }
        )
    )
    for ds in plans.decisions.values():
        for d in ds:
            report(
                mask(
                    {
                        "event": "planned",
                        "workflow": d.workflow,
                        "step": d.step,
                        "action": d.action,
                        "reasons": list(d.reasons),
                    }
                )
            )


def run_secrets(m: Manifests | None, orch_dir: Path | None = None) -> Secrets:
    """The run-wide secret set: the values of every variable any step of the catalog
    declares under ``secrets:`` (not only the selected ones: a value is masked wherever
    it turns up, whoever prints it), and of those past applies saw declared
    (``masking.remembered_names`` of ``orch_dir``)."""
    from runner.masking import Secrets, remembered_names

    names = declared_secret_names(m) if m is not None else set()
    if orch_dir is not None:
        names |= remembered_names(orch_dir)
    return Secrets.declared(names)


def declared_secret_names(m: Manifests) -> set[str]:
    return {s for w in m.workflows.values() for st in w.steps for s in st.secrets}


def remember_secret_names(m: Manifests, orch_dir: Path) -> None:
    from runner.masking import remember_names

    remember_names(orch_dir, declared_secret_names(m))


def masked(result: ApplyResult, secrets: Secrets) -> ApplyResult:
    """``result`` with every message, reason and log line masked, for printing and JSON."""
    if not secrets:
        return result
    steps = [
        r._replace(
            reasons=[secrets.mask(x) for x in r.reasons],
            message=secrets.mask(r.message),
            log_tail=[secrets.mask(x) for x in r.log_tail],
        )
        for r in result.results
    ]
    return result._replace(results=steps)


def _ask_git_commit(root: Path) -> Future[tuple[str | None, bool | None]]:
    from concurrent.futures import ThreadPoolExecutor

    from runner.manifests.sources import git_commit_state

    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orch-git")
    fut = side.submit(git_commit_state, root)
    side.shutdown(wait=False)
    return fut


def choose_executor(m: Manifests, opts: ApplyOptions) -> Executor:
    """The executor a run asks for: ``--executor``, else ``.orch/config.yaml``'s
    ``executor.kind``, else local. A Dask scheduler's address: ``--dask-address``, else
    ``$ORCH_DASK_ADDRESS``, else the config's ``executor.address``, else none (a
    LocalCluster of ``-j`` workers for the run). ``--dask-address`` alone means dask;
    with ``--executor local`` it is a ``UsageError`` (it would be silently unused)."""
    if opts.executor_kind == "local" and opts.dask_address:
        from runner.errors import UsageError

        raise UsageError(
            "--dask-address needs the dask executor: drop --executor local, or the address"
        )
    kind, address = executor_choice(m, opts)
    if kind != "dask":
        from runner.execute.local import LocalExecutor  # only now: a no-op starts no task

        return LocalExecutor()
    import os

    from runner.execute.dask import DaskExecutor  # imports distributed only in open()

    jobs = opts.jobs or m.config.jobs or os.cpu_count() or 2
    conf = m.config.executor or {}
    return DaskExecutor(address, workers=jobs, path_map=conf.get("path_map"))


def executor_choice(m: Manifests, opts: ApplyOptions) -> tuple[str, str | None]:
    """(kind, Dask scheduler address or None) as ``choose_executor`` rules, importing
    nothing: for a caller that keeps one executor across applies (``orch watch``)."""
    import os

    conf = m.config.executor or {}
    kind = opts.executor_kind or ("dask" if opts.dask_address else None) or conf.get("kind")
    if kind != "dask":
        return "local", None
    address = opts.dask_address or os.environ.get("ORCH_DASK_ADDRESS") or conf.get("address")
    return "dask", address or None


def _open(executor: Executor, root: Path, plans: Plans) -> bool:
    """Open an executor that has a session (a cluster): connect, check it can run what may
    run. Returns whether ``close()`` is owed."""
    opener = getattr(executor, "open", None)
    if opener is None:
        return False
    needs = {
        f"{d.workflow}/{d.step}": dict(plans.views[(d.workflow, d.step)].step.resources)
        for ds in plans.decisions.values()
        for d in ds
        if d.action != Status.UP_TO_DATE
    }
    opener(root, needs)
    return True
