"""Plan and apply over an opened repository: the wiring behind ``api.plan``,
``api.apply`` and ``api.explain`` -- the selection from the arguments, the no-op witness,
the state store opened and closed around the engine (``reconcile.flow``), saved plans,
the rounds of a fan-out, the result cache's trim.

The engine takes data (manifests, a state, a selection); this module is where a ``Repo``
becomes that data. Every import of the engine is function-local: the no-op path loads
this module and ``runner.noop`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from runner.workspace import Repo, open_state, writable

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests


class Asked(NamedTuple):
    """A selection as ``plan`` and ``apply`` are asked for it (``orch plan|apply``'s
    arguments), before it is checked against the manifests (``selection``); a saved plan
    keeps one (``saved_selection``), the no-op witness is keyed by one
    (``noop.selection_key(*asked)``)."""

    workflows: list[str] | None = None
    project: str | None = None
    env: str | None = None
    force: list[str] | None = None
    force_all: bool = False
    since: str | None = None
    params: dict[str, Any] | None = None


def selection(repo: Repo, asked: Asked) -> tuple[Manifests, list[Any], Any]:
    """(manifests, the selected workflows, the ``Selection``) for ``asked``: workflows
    named (or of the project), less those ``since`` leaves out; env, forced steps and
    params checked. OrchError or UsageError for what does not exist."""
    from runner.reconcile.selection import (
        Selection,
        check_env,
        parse_forced,
        parse_params,
        select_workflows,
    )

    workflows, project, env, force, force_all, since, params = asked
    m = repo.manifests()
    wfs = named = select_workflows(m, list(workflows or []), project)
    if since:
        from runner.manifests.revisions import affected_workflows

        keep = affected_workflows(repo, m, since)
        wfs = [w for w in wfs if w.name in keep]
    if env:
        check_env(m, wfs, env)
    # a --force or --param is checked against the workflows named, not what --since left
    # of them: a run where nothing changed is not a typo (a step of a workflow --since
    # left out is not forced: it is not in this run)
    kept = {w.name for w in wfs}
    forced = {k for k in parse_forced(m, named, force or []) if k[0] in kept}
    sel = Selection([w.name for w in wfs], env or "", forced, force_all)
    sel.params = parse_params(m, named, params or {}, env or "")
    return m, wfs, sel


def noop_hit(
    repo: Repo, key: tuple[Any, ...] | None
) -> tuple[list[tuple[str, str]] | None, tuple[Any, ...] | None]:
    """(the steps the no-op witness of selection ``key`` vouches up to date, or None;
    the manifests' stat key taken before loading them). A hit marks ``repo.noop_hit``."""
    if key is None:
        return None, None
    from runner.manifests.cache import manifest_key
    from runner.noop import check

    mkey = manifest_key(repo.root)  # before loading: an edit from now on is seen next time
    hit = check(repo.root, key, mkey)
    if hit is not None:
        # a secret declared since the last apply changed a step's definition, so the
        # witness would not hold: the names applies remembered are every one there is
        repo.noop_hit = True
    return hit, mkey


def planned(
    repo: Repo, m: Manifests, wfs: list[Any], sel: Any, *, cache: bool, readonly: bool
) -> Any:
    """``flow.plan`` over the state store (read-only when asked, or when ``.orch/`` is
    not writable) and the result cache (none when ``cache`` is False); the warnings of
    both kept in ``repo.warnings``."""
    from runner.reconcile import flow
    from runner.reconcile.restore import open_cache

    state = open_state(repo, readonly=readonly or not writable(repo))
    try:
        said: list[str] = []
        results = open_cache(m, repo.root, off=not cache, warn=said.append)
        plans = flow.plan(repo.root, m, state, wfs, sel, cache=results)
    finally:
        state.close()
    repo.warnings.update(dict.fromkeys(plans.warnings + said))
    return plans


def save_plan(repo: Repo, save: Path, plans: Any, asked: Asked) -> None:
    """Write ``plans`` to ``save`` as a saved plan of the selection it was asked for, that
    ``apply(saved=...)`` repeats (``reconcile.savedplan``)."""
    from runner import __version__
    from runner.reconcile import savedplan

    selection = {
        "workflows": list(asked.workflows or []), "project": asked.project,
        "env": asked.env, "force": list(asked.force or []), "force_all": asked.force_all,
        "since": asked.since, "params": dict(asked.params or {}),
    }  # fmt: skip
    savedplan.write(save, savedplan.document(repo.root, selection, plans, __version__))


def plan_at(
    repo: Repo, ref: str, asked: Asked, commands: bool, save: Path | None
) -> dict[str, Any]:
    """``plan(ref=...)``: the manifests at git revision ``ref`` against the recorded state,
    writing nothing. UsageError for what does not combine with ``ref``."""
    from runner.errors import UsageError

    if commands:
        raise UsageError("--show-commands renders the work tree's manifests; drop --ref")
    if save is not None:
        raise UsageError("a saved plan is applied to the work tree's manifests; drop --ref")
    if asked.force or asked.force_all or asked.since:
        raise UsageError("--ref plans the manifests at REV as they stand; drop --force/--since")
    from runner.manifests.revisions import manifests_at
    from runner.reconcile import flow, plandata
    from runner.reconcile.selection import Selection, check_env, parse_params, select_workflows

    workflows, project, env, params = asked.workflows, asked.project, asked.env, asked.params
    m = manifests_at(repo, ref)
    wfs = select_workflows(m, list(workflows or []), project)
    if env:
        check_env(m, wfs, env)
    sel = Selection([w.name for w in wfs], env or "")
    sel.params = parse_params(m, wfs, params or {}, env or "")
    state = open_state(repo, readonly=True)  # a plan of another revision writes nothing
    try:
        plans = flow.plan(repo.root, m, state, wfs, sel)
    finally:
        state.close()
    data = plandata.table(plans.rows(), sel.env)
    plandata.mask_values(data, m)
    return data


def apply_once(repo: Repo, m: Manifests, wfs: list[Any], sel: Any, options: Any) -> Any:
    """One round of an apply (``reconcile.flow.apply``) over the state store, its warnings
    kept in ``repo.warnings``; returns (the result, the plans)."""
    from runner.reconcile import flow
    from runner.reconcile.results import ApplyOptions

    state = open_state(repo)
    try:
        result, plans = flow.apply(repo.root, m, state, wfs, sel, options or ApplyOptions())
    finally:
        state.close()
    repo.warnings.update(dict.fromkeys(plans.warnings))
    return result, plans


def again(repo: Repo, options: Any, asked: Asked) -> Any:
    """The next round of an apply, for ``rounds.run_rounds``: the manifests reloaded (a
    foreach's instances are known now), the same selection with the forcing still owed,
    applied once."""
    from runner.reconcile import rounds

    def again(forced: set[tuple[str, str]], done: set[tuple[str, str]]) -> Any:
        repo.reload()
        left = rounds.still_forced(forced, done, repo.manifests())
        m, wfs, sel = selection(repo, asked._replace(force=left, force_all=False))
        return (m, wfs, sel, *apply_once(repo, m, wfs, sel, options))

    return again


def up_to_date(steps: list[tuple[str, str]], duration: float) -> Any:
    """The result of an apply the no-op witness answered: every step up to date."""
    from runner.reconcile.results import ApplyResult, StepResult

    return ApplyResult(None, [StepResult(w, s, "up-to-date") for w, s in steps], duration)


def saved_selection(saved: tuple[dict[str, Any], str]) -> Asked:
    """The selection a saved plan was made of."""
    sel = saved[0]["selection"]
    return Asked(
        sel["workflows"], sel["project"], sel["env"],
        sel["force"], sel["force_all"], sel["since"], sel["params"],
    )  # fmt: skip


def expecting(saved: tuple[dict[str, Any], str], options: Any) -> Any:
    """``options`` whose ``expect`` refuses (``savedplan.StalePlan``) a plan that is not
    the saved one, before anything runs or is recorded."""
    from runner.reconcile.results import ApplyOptions
    from runner.reconcile.savedplan import check

    doc, shown_as = saved
    return (options or ApplyOptions())._replace(expect=lambda plans: check(doc, plans, shown_as))


def trim_cache(repo: Repo, m: Manifests) -> None:
    """The result cache trimmed to ``cache.max_size`` after an apply that ran something
    (``cacheadmin.trim``); a store that cannot be is a warning."""
    from runner.reconcile.cacheadmin import trim

    said = trim(repo.root, m.config.cache)
    if said is not None:
        repo.warnings[said] = None
