"""Rounds of one apply: a foreach over a step's outputs knows its instances only once that
step has run, so an apply whose fan-out source ran plans again and runs the new instances
in the same apply (at most ``MAX_FAN_ROUNDS`` more times), and reports one result.

    first round ─► fanned_anew? ─► again(forced, done) ─► merged(...) ─► fanned_anew? ...

The caller (``api.apply``) supplies ``again``: reload the manifests, select with the
forcing still owed (``still_forced``), apply once. Nothing here opens a repository.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.reconcile.results import ApplyResult

MAX_FAN_ROUNDS = 8  # foreach over outputs made by a foreach over outputs...: a bound

# again(forced, done) -> (manifests, workflows, selection, the round's result, its plans)
Again = Callable[[set[tuple[str, str]], set[tuple[str, str]]], tuple[Any, Any, Any, Any, Any]]


def run_rounds(
    m: Manifests, wfs: list[Any], sel: Any, result: ApplyResult, plans: Any, *,
    force_all: bool, again: Again,
) -> tuple[Manifests, list[Any], ApplyResult, Any]:  # fmt: skip
    """Apply again while the latest round fanned out anew; returns the last round's
    manifests, workflows and plans, and the result of all rounds (``merged``). A
    ``KeyboardInterrupt`` carrying a cut-short round's ``result`` carries all rounds'."""
    last = result  # the latest round's own result: a source that ran in an earlier round
    for _round in range(MAX_FAN_ROUNDS):  # is not a reason to plan again
        if not fanned_anew(m, last, plans, result):
            break
        # a source of a foreach ran: its instances are known now, so plan again and run
        # them in this same apply. Forcing is not repeated for what has run; a forced step
        # that waited for this round (ApplyLoop.deferred) is still forced
        done = {(r.workflow, r.step) for r in result.results}
        forced = {(w.name, s.name) for w in wfs for s in w.steps} if force_all else sel.forced
        try:
            m, wfs, sel, more, plans = again(forced, done)
        except KeyboardInterrupt as e:  # a report of the cut-short run covers both rounds
            if getattr(e, "result", None) is not None:
                e.result = merged(result, e.result)  # type: ignore[attr-defined]
            raise
        result, last = merged(result, more), more
    return m, wfs, result, plans


def still_forced(
    forced: set[tuple[str, str]], done: set[tuple[str, str]], m: Manifests
) -> list[str]:
    """The ``--force`` names (``WORKFLOW/STEP``) for the next round: the forced steps that
    have not run yet and that the reloaded manifests ``m`` still have."""
    now = m.workflows
    return [
        f"{w}/{s}"
        for w, s in sorted(forced)
        if (w, s) not in done and w in now and s in now[w].by_name
    ]


def fanned_anew(m: Manifests, result: Any, plans: Any, so_far: Any) -> bool:
    """Whether a step some foreach fans out over succeeded or restored in ``result`` (the
    latest round), or a step that waited for its instances has no result ``so_far`` (all
    rounds): the instances may differ now."""
    if not m.fan_dynamic:
        return False
    ran = {(r.workflow, r.step) for r in result.results if r.status in ("succeeded", "restored")}
    if any((w, src) in ran for w, _s, src, _k in m.fan_dynamic):
        return True
    # a step that waited for pending instances (ApplyLoop.deferred) and has no result yet:
    # its source turned out up to date (early cutoff), so the next round runs it
    running = {(w, s) for w, s, action, _r in plans.rows() if action != "up-to-date"}
    pending = {(w, g) for w, g, src in plans.pending if (w, src) in running}
    done = {(r.workflow, r.step) for r in so_far.results}
    return any(
        k not in done and any((k[0], g) in pending for g in gs) for k, gs in m.fan_waits.items()
    )


def merged(first: Any, more: Any) -> Any:
    """One result of two rounds: a step's later result wins unless it only says
    up-to-date (it ran in the first round)."""
    later = {(r.workflow, r.step): r for r in more.results}
    out = []
    for r in first.results:
        r2 = later.pop((r.workflow, r.step), None)
        out.append(r if r2 is None or r2.status == "up-to-date" else r2)
    out += list(later.values())
    return first._replace(
        run_id=more.run_id or first.run_id,
        results=out,
        duration=first.duration + more.duration,
        hooks_failed=[*first.hooks_failed, *more.hooks_failed],
        removed=(*first.removed, *more.removed),
    )
