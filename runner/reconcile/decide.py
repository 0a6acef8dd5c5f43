"""Deciding, per step, whether its recorded result still stands, and if not, why.

Reasons are data (as doit does), in the words a person acts on::

    never ran · forced · interrupted · last run failed · definition changed (run, env)
    input changed: src/a.py · output missing: dist/ · output modified: report.md
    upstream changed: build · upstream will run: build (shown as "may run")

``decide`` is pure given its inputs; the caller passes the hasher (the only I/O).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.manifests.hashing import MISSING, Hasher
from runner.model import Step, Workflow
from runner.reconcile.fingerprint import changed_keys, combine, definition_fields
from runner.store.state import StepRecord

RUN = "run"
MAY_RUN = "may-run"
UP_TO_DATE = "up-to-date"

FAILED_REASONS = {
    "failed": "last run failed",
    "timed_out": "last run timed out",
    "cancelled": "last run was cancelled",
    "blocked": "blocked last time (an upstream step failed)",
    "interrupted": "interrupted",
    "running": "interrupted",
    "circuit_open": "skipped last time (circuit open)",
}


@dataclass
class StepPlan:
    workflow: str
    step: str
    action: str
    reasons: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    upstream: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "step": self.step,
            "action": self.action,
            "reasons": self.reasons,
        }


def _files_summary(kind: str, files: list[str], limit: int = 3) -> str:
    head = ", ".join(files[:limit])
    more = f" (+{len(files) - limit} more)" if len(files) > limit else ""
    return f"{kind}: {head}{more}"


def input_hashes(hasher: Hasher, patterns: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in patterns:
        for f in hasher.expand(p):
            out[f] = hasher.file(f)
    return out


def output_hashes(hasher: Hasher, outputs: list[str]) -> dict[str, str]:
    return {o: hasher.file(o.rstrip("/")) for o in outputs}


def decide(
    wf: Workflow,
    step: Step,
    rec: StepRecord | None,
    *,
    params: dict[str, Any],
    param_refs: tuple[str, ...] | None,
    env_refs: tuple[str, ...],
    inputs: list[str],
    outputs: list[str],
    upstream: list[str],
    records: dict[str, StepRecord],
    will_run: set[str],
    hasher: Hasher,
    forced: bool,
    static: dict[str, str] | None = None,
) -> StepPlan:
    fields = definition_fields(wf, step, params, param_refs, env_refs, static)
    plan = StepPlan(wf.name, step.name, UP_TO_DATE, fields=fields)
    reasons = plan.reasons
    plan.inputs = input_hashes(hasher, inputs) if inputs else {}
    pending_up = [u for u in upstream if u in will_run]
    for u in upstream:
        r = records.get(u)
        if r is not None and u not in will_run:
            plan.upstream[u] = r.result_digest
    plan.fingerprint = combine(fields, plan.inputs, plan.upstream)

    if forced:
        reasons.append("forced")
    if rec is None or rec.fingerprint is None and rec.status not in FAILED_REASONS:
        reasons.append("never ran")
    elif rec.status in FAILED_REASONS:
        reasons.append(FAILED_REASONS[rec.status])
    if rec is not None and rec.fingerprint is not None:
        if rec.fingerprint != plan.fingerprint:
            # only now read the recorded parts, to say which one moved
            changed = changed_keys(rec.fields, fields)
            if changed:
                reasons.append(f"definition changed ({', '.join(changed)})")
            changed_in = changed_keys(rec.inputs, plan.inputs)
            if changed_in:
                reasons.append(_files_summary("input changed", changed_in))
            ups = [u for u in changed_keys(rec.upstream, plan.upstream) if u not in pending_up]
            if ups:
                reasons.append(f"upstream changed: {', '.join(ups)}")
        if outputs:
            now = output_hashes(hasher, outputs)
            recorded = rec.output_files
            missing = [o for o, h in now.items() if h == MISSING]
            modified = [o for o, h in now.items() if h != MISSING and recorded.get(o) != h]
            if missing:
                reasons.append(_files_summary("output missing", missing))
            if modified:
                reasons.append(_files_summary("output modified", modified))
    if reasons:
        plan.action = RUN
    elif pending_up:
        plan.action = MAY_RUN
        reasons.append(f"upstream will run: {', '.join(pending_up)}")
    return plan
