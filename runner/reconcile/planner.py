"""The plan: one ``StepView`` per step, and the decision for each, in dependency order.

A ``StepView`` is everything about a step that follows from the manifests and the
selection alone (params, rendered inputs/outputs/workdir, what it reads): built once
here and reused by the apply loop (start, re-decide) and by recording, so the paths a
step is decided on are the paths it is recorded with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.links import LinkEscape
from runner.manifests.positions import at, step_field
from runner.reconcile.decide import (
    MAY_RUN,
    RESTORE,
    RUN,
    SKIP,
    UP_TO_DATE,
    StepDecision,
    decide,
    skipped_upstream,
)
from runner.reconcile.predict import Restores
from runner.reconcile.view import Key, StepView, project_context
from runner.status import Status

if TYPE_CHECKING:
    from pathlib import Path

    from runner.manifests.catalog import Manifests
    from runner.manifests.hashing import Hasher
    from runner.model import Step, Workflow
    from runner.reconcile.restore import ResultCache
    from runner.reconcile.selection import Selection
    from runner.store.state import State, StepRecord


@dataclass
class Plans:
    """The decisions of one plan, per workflow in dependency order, with their views."""

    decisions: dict[str, list[StepDecision]]
    views: dict[Key, StepView]
    records: dict[str, dict[str, StepRecord]]
    seen: dict[str, Any] = field(default_factory=dict)  # the hasher's stat witness (noop.py)
    # (workflow, step): recorded instances their fan-out no longer makes; apply drops them
    removed: list[Key] = field(default_factory=list)
    # (workflow, step, source): a foreach over the outputs of a source step that will run
    # (or never succeeded): its instances are known once the source has run
    pending: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # for the caller to say once

    @property
    def all_up_to_date(self) -> bool:
        return not self.removed and all(
            d.action == UP_TO_DATE for ds in self.decisions.values() for d in ds
        )

    def rows(self) -> list[tuple[str, str, str, list[str]]]:
        """(workflow, step, action, reasons) per step, as the plan's JSON lists them."""
        return [
            (d.workflow, d.step, d.action, list(d.reasons))
            for ds in self.decisions.values()
            for d in ds
        ]


def step_views(m: Manifests, wf: Workflow, sel: Selection) -> dict[str, StepView]:
    """Every step of ``wf`` as a ``StepView``, in dependency order."""
    from runner.manifests.checks import base_params
    from runner.manifests.paths import step_paths

    dag = m.dags[wf.name]
    params = {**base_params(m, wf, sel.env or None), **sel.params.get(wf.name, {})}
    out = {}
    for name in dag.order:
        step = wf.step(name)
        ins, outs, wd = step_paths(wf, step, params)
        k = (wf.name, name)
        git = sel.git_values(m.root).get(m.git_refs[k]) if k in m.git_refs else None
        out[name] = StepView(
            wf,
            step,
            params,
            tuple(ins),
            tuple(outs),
            wd,
            tuple(dag.upstream[name]),
            m.param_refs.get(k, ()),
            m.env_refs.get(k, ()),
            m.static_fields.get(k),
            forced=sel.force_all or k in sel.forced,
            git=git,
            project=(
                project_context(m.projects.get(wf.project) if wf.project else None)
                if m.project_reads.get(k)
                else None
            ),
        )
    return out


class _Outputs:
    """Every declared output (``_all_outputs``), indexed so that asking whether a literal
    input is one of them, lies under one or holds one is a few set look-ups: a cold plan
    asks it for every input not yet on disk, and a scan of every output per input made
    planning quadratic in steps (2.5 million compares at 1,000 steps)."""

    def __init__(self, outputs: list[str]):
        self.all = outputs
        self.exact = set(outputs)
        self.parents = {o[:i] for o in outputs for i, c in enumerate(o) if c == "/"}

    def covers(self, lit: str) -> bool:
        """``any(o == lit or o.startswith(lit + "/") or lit.startswith(o + "/"))``."""
        if lit in self.exact or lit in self.parents:
            return True
        return any(c == "/" and lit[:i] in self.exact for i, c in enumerate(lit))


def _check_empty(
    root: Path,
    wf: Workflow,
    st: Step,
    inputs: tuple[str, ...],
    patterns: list[str],
    outputs: _Outputs,
) -> list[str]:
    """An input that names nothing: a missing literal path no step produces is an error
    (make's "No rule to make target"; DVC and Snakemake stop there too), raised; a glob
    that matches nothing is a warning, returned. Either is fine when some step's outputs
    may be it. Each names the input's ``file:line:col``, as ``orch validate`` does."""
    from runner import globs
    from runner.errors import OrchError, shown
    from runner.manifests.graph import _could_match_under

    step = st.name
    warnings = []
    for pat in patterns:
        glob = globs.is_glob(pat)
        lit = globs.literal(pat).rstrip("/")
        if outputs.covers(lit):
            continue
        if glob:
            rx = globs.compile_glob(pat)
            if any(rx.match(o) is not None or _could_match_under(pat, o) for o in outputs.all):
                continue
        i = inputs.index(pat) if pat in inputs else None
        where = at(root, wf, step_field(st.index, *(("inputs", i) if i is not None else ())))
        if not glob and os.path.islink(os.path.join(root, lit)):
            raise OrchError(
                f"{where}: step '{step}': input '{shown(lit)}' is a symlink that leads to "
                "nothing (its target is missing, or links loop back to it); fix or remove "
                "the link"
            )
        if not glob:
            raise OrchError(
                f"{where}: step '{step}': input '{shown(lit)}' does not exist and no step "
                "produces it (create it, fix the path, or list it in the outputs of the step "
                "that writes it)"
            )
        warnings.append(
            f"{where}: step '{step}': input '{shown(pat)}' matches no file "
            "(check the pattern; a step that writes them should list them in its outputs)"
        )
    return warnings


def glob_warnings(m: Manifests) -> list[str]:
    """The plan's warning for each input glob that matches nothing on disk (and that no
    step's outputs could match), for ``orch validate``: the pre-commit hook says it
    before a plan does. Reads the work tree (as the plan does), writes nothing; a path
    the plan would refuse (a link out) is left to the plan to say."""
    from runner import globs
    from runner.manifests.checks import base_params
    from runner.manifests.hashing import Hasher
    from runner.manifests.paths import step_paths

    hasher = Hasher(m.root)
    outputs: _Outputs | None = None
    warnings: list[str] = []
    for wf in m.workflows.values():
        params = base_params(m, wf)
        for st in wf.steps:
            try:
                ins, _outs, _wd = step_paths(wf, st, params)
                pos, neg = globs.split(ins)
                empty = [
                    p
                    for p in pos
                    if globs.is_glob(p)
                    and not any(not globs.excluded(f, neg) for f in hasher.expand(p, tuple(neg)))
                ]
            except Exception:  # a path only a run can render, a link out: the plan's to say
                continue
            if empty:
                outputs = outputs if outputs is not None else _Outputs(_all_outputs(m))
                warnings += _check_empty(m.root, wf, st, tuple(ins), empty, outputs)
    return warnings


def _all_outputs(m: Manifests) -> list[str]:
    """Every declared output of every step of every workflow: repo-relative, literal,
    without a trailing "/" (an output that reads ``steps.*`` is known only when it runs)."""
    from runner import globs
    from runner.manifests.checks import base_params
    from runner.manifests.paths import step_paths

    out: list[str] = []
    for w in m.workflows.values():
        params = base_params(m, w, None)
        for s in w.steps:
            try:
                _ins, outs, _wd = step_paths(w, s, params)
            except Exception:  # a template that needs a run's values: not knowable now
                continue
            out += [globs.literal(o).rstrip("/") for o in outs if not o.startswith("!")]
    return out


def plan_workflows(
    m: Manifests,
    wfs: list[Workflow],
    sel: Selection,
    *,
    state: State,
    hasher: Hasher,
    live_runs: Callable[[int], bool] | None = None,
    cache: ResultCache | None = None,
) -> Plans:
    """Decide every step of ``wfs`` against the recorded state (``sel.env``'s records).
    With a result ``cache``, a step whose result it holds is planned ``restore``, and its
    downstream steps are decided against the result it will restore: the files and
    values its entry lists (``reconcile.predict``), as apply will decide them once it
    has; "may run" only where that cannot be known from the entry."""
    plans = Plans({}, {}, {})
    outputs: _Outputs | None = None  # every declared output, once an input names nothing
    for wf in wfs:
        records = state.step_records(wf.name, sel.env)
        # steps planned restore: what each brings back (None: known only once it has)
        restoring = Restores()
        maybe: set[str] = set()  # steps that may run only because of restores upstream
        views = step_views(m, wf, sel)
        will_run: set[str] = set()
        skipping: set[str] = set()  # steps the plan already knows apply will skip
        decisions = []
        for name, view in views.items():
            try:
                d = decide(
                    view,
                    records.get(name),
                    records=records,
                    will_run=will_run,
                    hasher=hasher,
                    forced=view.forced,
                    live_runs=live_runs,
                )
            except LinkEscape as e:
                where = at(m.root, wf, step_field(view.step.index, "inputs"))
                raise LinkEscape(f"{where}: step '{name}': inputs: {e}") from None
            if d.empty_inputs:
                outputs = outputs if outputs is not None else _Outputs(_all_outputs(m))
                plans.warnings += _check_empty(
                    m.root, wf, view.step, view.inputs, d.empty_inputs, outputs
                )
            if d.action in (RUN, MAY_RUN):
                ups = skipped_upstream(
                    view,
                    lambda u, sk=skipping, rs=records, wr=will_run: (
                        u in sk or _was_skipped(rs, u, wr)
                    ),
                )
                if ups:
                    d = replace(d, action=SKIP, reasons=(f"upstream skipped: {', '.join(ups)}",))
            if restoring and d.action in (RUN, MAY_RUN):
                from runner.reconcile.predict import after_restores

                d = after_restores(
                    view,
                    d,
                    records.get(name),
                    records=records,
                    will_run=will_run,
                    restoring=restoring,
                    maybe=maybe,
                    hasher=hasher,
                    cacheable=cache is not None and cache.cacheable(view),
                    live_runs=live_runs,
                )
            if d.action == UP_TO_DATE and d.reasons:  # drift: warn (decide.py)
                plans.warnings.append(_drift_warning(wf.name, name, d.reasons))
            if cache is not None and d.action == RUN:
                d = cache.planned(view, d)
            if restoring and d.action == MAY_RUN:
                from runner.reconcile.predict import maybe_restored

                d = replace(d, reasons=tuple(_restoring(r, restoring, maybe) for r in d.reasons))
                if maybe_restored(d):
                    maybe.add(name)
            if d.action == SKIP:
                skipping.add(name)
            elif d.action != UP_TO_DATE:
                if d.action == RESTORE and cache is not None:
                    from runner.reconcile.predict import restored

                    restoring[name] = restored(cache, view, d)
                will_run.add(name)
            decisions.append(d)
            plans.views[view.key] = view
        plans.decisions[wf.name] = decisions
        plans.records[wf.name] = records
        # only an instance's name has "[": a plain step removed from a manifest keeps its
        # record, as before; an instance gone means a file or value gone, said and dropped
        plans.removed += [(wf.name, n) for n in records if "[" in n and n not in wf.by_name]
    _across_workflows(m, plans)
    _pending(m, plans)
    hasher.flush()
    plans.seen = hasher.seen
    return plans


def _drift_warning(wf: str, step: str, reasons: tuple[str, ...]) -> str:
    """The warning for a step ``drift: warn`` keeps up to date although an output was
    edited by hand: said on every plan and apply until the output is made again, and it
    keeps the no-op fast path (which would not say it) off."""
    return (
        f"{wf}/{step}: {'; '.join(reasons)}: not run; "
        f"'orch apply --force {wf}/{step}' makes it again"
    )


def _restoring(reason: str, restoring: Restores, maybe: set[str]) -> str:
    """``upstream will run: a, b`` said of upstream steps the plan restores but cannot
    tell what they bring back (``reconcile.predict``), or that may run only because of
    such a restore (``maybe``): known only once they have (a downstream step may then be
    up to date, restored, or run)."""
    head = "upstream will run: "
    if not reason.startswith(head):
        return reason
    names = reason[len(head) :].split(", ")
    groups = (
        ("upstream will run: ", [n for n in names if n not in restoring and n not in maybe]),
        ("upstream will restore: ", [n for n in names if n in restoring]),
        ("upstream may restore: ", [n for n in names if n in maybe]),
    )
    return "; ".join(h + ", ".join(ns) for h, ns in groups if ns)


def _was_skipped(records: dict[str, StepRecord], name: str, will_run: set[str]) -> bool:
    """Whether ``name`` stays skipped in this apply: recorded skipped and not run again."""
    r = records.get(name)
    return r is not None and r.status == Status.SKIPPED and name not in will_run


def _pending(m: Manifests, plans: Plans) -> None:
    """Each foreach over a source step's output whose source will run (or may): the plan
    cannot know its instances yet, and says so (as Argo shows withParam's children only
    once their source has run)."""
    for w, step, src, _key in m.fan_dynamic:
        ds = plans.decisions.get(w)
        if ds is None:
            continue
        d = next((d for d in ds if d.step == src), None)
        rec = plans.records.get(w, {}).get(src)
        if (d is not None and d.action != UP_TO_DATE) or rec is None or rec.status != "succeeded":
            if (w, step, src) not in plans.pending:
                plans.pending.append((w, step, src))
            _instances_wait(m, plans, w, step, src)
        elif f"{w}/{step}" in m.fan_errors:
            from runner.errors import OrchError

            raise OrchError(m.fan_errors[f"{w}/{step}"])


def _instances_wait(m: Manifests, plans: Plans, w: str, group: str, src: str) -> None:
    """The instances found now of a foreach whose source will run "may run": apply runs
    them only once the source has run and the foreach is expanded again (an item the
    source removes is never started; ``ApplyLoop.deferred``)."""
    names = set(m.workflows[w].groups.get(group, ()))
    ds = plans.decisions[w]
    for i, d in enumerate(ds):
        if d.step in names and d.action not in (UP_TO_DATE, SKIP):
            ds[i] = replace(d, action=MAY_RUN, reasons=(f"instances known once {src} has run",))


def _across_workflows(m: Manifests, plans: Plans) -> None:
    """A step that reads a file a step of another selected workflow will write "may run",
    and so may everything downstream of it: the plan says what the apply will do, which
    runs the writer first (``ApplyLoop``)."""
    if not m.cross_upstream:
        return

    index = {
        (d.workflow, d.step): (w, i) for w, ds in plans.decisions.items() for i, d in enumerate(ds)
    }

    def get(k: Key) -> StepDecision | None:
        at = index.get(k)
        return plans.decisions[at[0]][at[1]] if at else None

    changed = True
    while changed:  # a may-run can make a reader in a third workflow may-run: to a fixpoint
        changed = False
        for down, ups in m.cross_upstream.items():
            d = get(down)
            if d is None or d.action != UP_TO_DATE:
                continue
            pending = [
                f"{u[0]}/{u[1]}"
                for u in ups
                if (x := get(u)) and x.action not in (UP_TO_DATE, SKIP)
            ]
            if not pending:
                continue
            w, i = index[down]
            plans.decisions[w][i] = replace(
                d, action=MAY_RUN, reasons=(f"upstream will run: {', '.join(pending)}",)
            )
            for name in m.dags[w].descendants({down[1]}):
                j = index[(w, name)][1]
                dd = plans.decisions[w][j]
                if dd.action == UP_TO_DATE:
                    plans.decisions[w][j] = replace(
                        dd, action=MAY_RUN, reasons=(f"upstream will run: {down[1]}",)
                    )
            changed = True
