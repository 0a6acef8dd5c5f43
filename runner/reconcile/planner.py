"""The plan: one ``StepView`` per step, and the decision for each, in dependency order.

A ``StepView`` is everything about a step that follows from the manifests and the
selection alone (params, rendered inputs/outputs/workdir, what it reads): built once
here and reused by the apply loop (start, re-decide) and by recording, so the paths a
step is decided on are the paths it is recorded with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.links import LinkEscape
from runner.reconcile.decide import UP_TO_DATE, StepDecision, decide
from runner.reconcile.view import Key, StepView

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.manifests.hashing import Hasher
    from runner.model import Step, Workflow
    from runner.reconcile.selection import Selection
    from runner.store.state import State, StepRecord


@dataclass
class Plans:
    """The decisions of one plan, per workflow in dependency order, with their views."""

    decisions: dict[str, list[StepDecision]]
    views: dict[Key, StepView]
    records: dict[str, dict[str, StepRecord]]
    seen: dict[str, Any] = field(default_factory=dict)  # the hasher's stat witness (noop.py)

    @property
    def all_up_to_date(self) -> bool:
        return all(d.action == UP_TO_DATE for ds in self.decisions.values() for d in ds)

    def rows(self) -> list[tuple[str, str, str, list[str]]]:
        """(workflow, step, action, reasons) per step, as the plan's JSON lists them."""
        return [
            (d.workflow, d.step, d.action, list(d.reasons))
            for ds in self.decisions.values()
            for d in ds
        ]


def step_paths(
    wf: Workflow, step: Step, params: dict[str, Any]
) -> tuple[list[str], list[str], str]:
    """A step's inputs, outputs and workdir, rendered and joined to the workflow's base."""
    from runner.manifests import paths as pathmod

    def resolve(p: str) -> str:
        if "{{" in p or "{%" in p:
            from runner.templating import render_text

            ctx = {"params": {**params, **step.params}, "workflow": {"name": wf.name}, "env": {}}
            p = render_text(p, ctx)
        return pathmod.join(wf.base, p)

    ins = [resolve(p) for p in step.inputs]
    outs = [resolve(p) for p in step.outputs]
    wd = resolve(step.workdir) if step.workdir else wf.base
    return ins, outs, wd


def step_views(m: Manifests, wf: Workflow, sel: Selection) -> dict[str, StepView]:
    """Every step of ``wf`` as a ``StepView``, in dependency order."""
    from runner.manifests.checks import base_params

    dag = m.dags[wf.name]
    params = base_params(m, wf, sel.env or None)
    out = {}
    for name in dag.order:
        step = wf.step(name)
        ins, outs, wd = step_paths(wf, step, params)
        k = (wf.name, name)
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
        )
    return out


def plan_workflows(
    m: Manifests,
    wfs: list[Workflow],
    sel: Selection,
    *,
    state: State,
    hasher: Hasher,
    live_runs: Callable[[int], bool] | None = None,
) -> Plans:
    """Decide every step of ``wfs`` against the recorded state (``sel.env``'s records)."""
    plans = Plans({}, {}, {})
    for wf in wfs:
        records = state.step_records(wf.name, sel.env)
        views = step_views(m, wf, sel)
        will_run: set[str] = set()
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
                raise LinkEscape(f"{wf.path}: step '{name}': inputs: {e}") from None
            if d.action != UP_TO_DATE:
                will_run.add(name)
            decisions.append(d)
            plans.views[view.key] = view
        plans.decisions[wf.name] = decisions
        plans.records[wf.name] = records
    hasher.flush()
    plans.seen = hasher.seen
    return plans
