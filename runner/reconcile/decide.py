"""Deciding, per step, whether its recorded result still stands, and if not, why.

Reasons are data (as doit does), in the words a person acts on::

    never ran · forced · interrupted · last run failed · definition changed (run, env)
    input changed: src/a.py · output missing: dist/ · output modified: report.md
    upstream changed: build · upstream will run: build (shown as "may run")

An output edited by hand since it was recorded is a reason to run under the step's
``drift: heal`` (the default); under ``drift: warn`` the step stays up to date with the
reason ``output edited by hand: build/app (drift: warn)`` (nothing runs unless forced);
under ``drift: ignore`` it is up to date. A missing output is always a reason to run.

``decide`` is pure given its inputs; the caller passes the hasher and ``live_runs`` (the
only I/O). Its answer, a ``StepDecision``, is frozen: nothing downstream overrides it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from runner import globs
from runner.errors import shown
from runner.manifests.fingerprint import (
    changed_fields,
    changed_keys,
    combine,
    definition_fields,
    fingerprint_fields,
)
from runner.manifests.hashing import MISSING, Hasher
from runner.status import Action, Status
from runner.store.state import StepRecord

if TYPE_CHECKING:
    from runner.reconcile.view import StepView

RUN, MAY_RUN, UP_TO_DATE, SKIP = Action.RUN, Action.MAY_RUN, Action.UP_TO_DATE, Action.SKIP
RESTORE = Action.RESTORE

FAILED_REASONS = {
    Status.FAILED: "last run failed",
    Status.TIMED_OUT: "last run timed out",
    Status.CANCELLED: "last run was cancelled",
    Status.BLOCKED: "blocked last time (an upstream step failed)",
    Status.INTERRUPTED: "interrupted",
    Status.RUNNING: "interrupted",  # its runner died (a live one is "running in another orch")
    Status.CIRCUIT_OPEN: "skipped last time (circuit open)",
}


@dataclass(frozen=True)
class StepDecision:
    """What to do with one step, and why: the answer of ``decide``, never changed after.

    ``fields``/``inputs``/``upstream`` are the parts of ``fingerprint`` (what a success
    records); ``reasons`` are in the words a person acts on.
    """

    workflow: str
    step: str
    action: str  # RUN, MAY_RUN or UP_TO_DATE
    reasons: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    upstream: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    empty_inputs: list[str] = field(default_factory=list)  # patterns that matched nothing

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "step": self.step,
            "action": self.action,
            "reasons": list(self.reasons),
        }


def _files_summary(kind: str, files: list[str], limit: int = 3) -> str:
    head = ", ".join(shown(f) for f in files[:limit])
    more = f" (+{len(files) - limit} more)" if len(files) > limit else ""
    return f"{kind}: {head}{more}"


def input_hashes(
    hasher: Hasher,
    patterns: list[str],
    empty: list[str] | None = None,
    outputs: tuple[str, ...] = (),
) -> dict[str, str]:
    """{file: hash} of every file the patterns match, less those a ``!pattern`` excludes
    (exclusions apply to the whole list, whatever their place: inputs are a set) and less
    the step's own ``outputs``. A pattern that matched nothing is appended to ``empty``.

    A step's own outputs are never its inputs (``inputs: [site/**]`` with
    ``outputs: [site/index.html]``): counting them would make every run change the step's
    fingerprint, so it would re-run on every apply (make and DVC do not count a target
    as its own prerequisite either)."""
    pos, neg = globs.split(patterns)
    own = tuple(globs.literal(o) for o in globs.split(list(outputs))[0])
    out: dict[str, str] = {}
    for p in pos:
        files = hasher.expand(p, tuple(neg))
        if not files and empty is not None:
            empty.append(p)
        for f in files:
            if neg and globs.excluded(f, neg):
                continue
            if own and _produced(f, own):
                continue
            out[f] = hasher.file(f)
    return out


def _produced(path: str, outputs: tuple[str, ...]) -> bool:
    return any(path == o or (o.endswith("/") and path.startswith(o)) for o in outputs)


def output_hashes(hasher: Hasher, outputs: list[str]) -> dict[str, str]:
    """{output as declared: hash}; a folder's hash leaves out its ``!`` exclusions."""
    pos, neg = globs.split(outputs)
    exclude = tuple(neg)
    return {o: hasher.file(globs.literal(o).rstrip("/"), exclude) for o in pos}


def decide(
    view: StepView,
    rec: StepRecord | None,
    *,
    records: dict[str, StepRecord],
    will_run: set[str],
    hasher: Hasher,
    forced: bool,
    live_runs: Callable[[int], bool] | None = None,
) -> StepDecision:
    """Decide ``view``'s step against its record ``rec`` (None: never ran).

    ``records`` are the workflow's other records (upstream result digests); ``will_run``
    the upstream steps already decided to run in this plan (their results are not known
    yet: "may run"); ``live_runs(run_id)`` tells whether another orch process is running
    a run (None: do not ask, e.g. when the caller holds the step's claim).

    Every override of the plain rules lives here: a step recorded ``running`` by a live
    run of another orch is "running in another orch", whatever else changed.
    """
    if (
        live_runs is not None
        and rec is not None
        and rec.status == Status.RUNNING
        and rec.run_id
        and live_runs(rec.run_id)
    ):
        d = _decide(view, rec, records=records, will_run=will_run, hasher=hasher, forced=forced)
        return replace(d, action=RUN, reasons=(f"running in another orch (run {rec.run_id})",))
    return _decide(view, rec, records=records, will_run=will_run, hasher=hasher, forced=forced)


def _decide(
    view: StepView,
    rec: StepRecord | None,
    *,
    records: dict[str, StepRecord],
    will_run: set[str],
    hasher: Hasher,
    forced: bool,
) -> StepDecision:
    fields = definition_fields(
        view.wf, view.step, view.params, view.param_refs, view.env_refs, view.static,
        env_key=hasher.env_key, git=view.git, project=view.project,
    )  # fmt: skip
    reasons: list[str] = []
    empty: list[str] = []
    inputs = (
        input_hashes(hasher, list(view.inputs), empty, tuple(view.outputs)) if view.inputs else {}
    )
    upstream: dict[str, str] = {}
    pending_up = [u for u in view.upstream if u in will_run]
    for u in view.upstream:
        r = records.get(u)
        if r is not None and u not in will_run:
            upstream[u] = r.result_digest
    fingerprint = combine(fingerprint_fields(fields), inputs, upstream)

    if forced:
        reasons.append("forced")
    if rec is None or rec.fingerprint is None and rec.status not in FAILED_REASONS:
        reasons.append("never ran")
    elif rec.status in FAILED_REASONS:
        reasons.append(FAILED_REASONS[rec.status])
    drifted: list[str] = []  # outputs edited by hand under drift: warn
    if rec is not None and rec.fingerprint is not None:
        if rec.fingerprint != fingerprint:
            # only now read the recorded parts, to say which one moved
            changed = changed_fields(rec.fields, fields)
            if changed:
                reasons.append(f"definition changed ({', '.join(changed)})")
            changed_in = changed_keys(rec.inputs, inputs)
            if changed_in:
                reasons.append(_files_summary("input changed", changed_in))
            ups = [u for u in changed_keys(rec.upstream, upstream) if u not in pending_up]
            if ups:
                reasons.append(f"upstream changed: {', '.join(ups)}")
        if (
            view.outputs and rec.status != Status.SKIPPED
        ):  # a skipped step wrote nothing: it settles
            run, drifted = _output_reasons(hasher, view.outputs, rec.output_files, view.step.drift)
            reasons += run
    action = UP_TO_DATE
    if reasons and constant_false(view):
        action, reasons = SKIP, ["when: false"]
    elif reasons:
        action = RUN
        reasons += drifted  # said: the run replaces what was edited by hand
    elif pending_up:
        action = MAY_RUN
        reasons += [*drifted, f"upstream will run: {', '.join(pending_up)}"]
    else:
        reasons += drifted  # drift: warn on a step that stays up to date
    return StepDecision(
        view.wf.name,
        view.step.name,
        action,
        tuple(reasons),
        fields,
        inputs,
        upstream,
        fingerprint,
        empty,
    )


def skipped_upstream(view: StepView, skipped: Callable[[str], bool]) -> list[str]:
    """The direct upstream steps of ``view`` that are skipped (``skipped(name)``) and that
    its ``when:`` does not read the status of: one skipped is enough to skip it, as GitHub
    Actions skips the jobs that need a skipped job (a condition on that job's status,
    ``if: always()`` there, ``{{ steps.a.status }}`` here, decides instead). One rule for
    the plan and apply."""
    ups = [u for u in view.upstream if skipped(u)]
    when = view.step.when
    if ups and isinstance(when, str):
        from runner.templating import references

        read = {r[1] for r in references(when) if len(r) >= 3 and r[0] == "steps" and r[2] == "status"}  # fmt: skip
        ups = [u for u in ups if u not in read]
    return ups


# what a condition may read to be judged by the plan: known before anything runs
_PLAN_ROOTS = frozenset({"params", "workflow", "matrix", "item"})


def constant_false(view: StepView) -> bool:
    """Whether ``view``'s ``when:`` is false whatever runs: ``false``, or a template that
    reads only params, the workflow's name and a fan-out's values (``{{ params.deploy }}``)
    and is false with them. The plan then says ``skip (when: false)`` rather than "will
    run" for a step apply will only record as skipped. A condition that reads step
    outputs, the environment or git is judged when the step is ready, as before."""
    when = view.step.when
    if when is None or when is True:
        return False
    if when is False:
        return True
    from runner.templating import evaluate_when, references

    try:
        if any(
            ref[0] not in _PLAN_ROOTS or ref[:2] == ("workflow", "status")
            for ref in references(when)
        ):
            return False
        wf, step = view.wf, view.step
        ctx = {
            "params": {**view.params, **step.params},
            "workflow": {"name": wf.name, "project": wf.project or ""},
            **step.fan,
        }
        return not evaluate_when(when, ctx)
    except Exception:  # a template that fails is said when the step is ready
        return False


def _output_reasons(
    hasher: Hasher, outputs: tuple[str, ...], recorded: dict[str, str], drift: str = "heal"
) -> tuple[list[str], list[str]]:
    """(reasons to run, drift reasons) for the outputs that do not stand as recorded.

    A missing output is always made again. One modified since it was recorded (edited by
    hand) is a reason to run under ``drift: heal`` (the default); under ``warn`` it is a
    drift reason, ``output edited by hand: build/app (drift: warn)``, that does not by
    itself make the step run: Terraform's drift report, which changes nothing until
    applied (here ``--force``); under ``ignore`` it is nothing."""
    from runner.globs import literal

    now = output_hashes(hasher, list(outputs))
    # an output is a path with glob characters escaped (a foreach item's a[1].txt): said
    # as the file's name
    missing = [literal(o) for o, h in now.items() if h == MISSING]
    modified = [literal(o) for o, h in now.items() if h != MISSING and recorded.get(o) != h]
    out = []
    if missing:
        out.append(_files_summary("output missing", missing))
    if modified and drift == "heal":
        out.append(_files_summary("output modified", modified))
    if modified and drift == "warn":
        return out, [_files_summary("output edited by hand", modified) + " (drift: warn)"]
    return out, []
