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
from typing import TYPE_CHECKING, Any

from runner.workspace import Repo, open_state, writable

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests


def selection(
    repo: Repo,
    workflows: list[str] | None,
    project: str | None,
    env: str | None,
    force: list[str] | None,
    force_all: bool,
    since: str | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[Manifests, list[Any], Any]:
    from runner.reconcile.selection import (
        Selection,
        check_env,
        parse_forced,
        parse_params,
        select_workflows,
    )

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


def save_plan(
    repo: Repo,
    save: Path,
    plans: Any,
    workflows: list[str] | None,
    project: str | None,
    env: str | None,
    force: list[str] | None,
    force_all: bool,
    since: str | None,
    params: dict[str, Any] | None,
) -> None:
    """Write ``plans`` to ``save`` as a saved plan of the selection it was asked for, that
    ``apply(saved=...)`` repeats (``reconcile.savedplan``)."""
    from runner import __version__
    from runner.reconcile import savedplan

    selection = {
        "workflows": list(workflows or []), "project": project, "env": env,
        "force": list(force or []), "force_all": force_all, "since": since,
        "params": dict(params or {}),
    }  # fmt: skip
    savedplan.write(save, savedplan.document(repo.root, selection, plans, __version__))


def plan_at(
    repo: Repo,
    ref: str,
    workflows: list[str] | None,
    project: str | None,
    env: str | None,
    params: dict[str, Any] | None,
    forcing: bool,
    commands: bool,
    save: Path | None,
) -> dict[str, Any]:
    """``plan(ref=...)``: the manifests at git revision ``ref`` against the recorded state,
    writing nothing. UsageError for what does not combine with ``ref``."""
    from runner.errors import UsageError

    if commands:
        raise UsageError("--show-commands renders the work tree's manifests; drop --ref")
    if save is not None:
        raise UsageError("a saved plan is applied to the work tree's manifests; drop --ref")
    if forcing:
        raise UsageError("--ref plans the manifests at REV as they stand; drop --force/--since")
    from runner.manifests.revisions import manifests_at
    from runner.reconcile import flow, plandata
    from runner.reconcile.selection import Selection, check_env, parse_params, select_workflows

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


def again(
    repo: Repo,
    options: Any,
    workflows: list[str] | None,
    project: str | None,
    env: str | None,
    since: str | None,
    params: dict[str, Any] | None,
) -> Any:
    """The next round of an apply, for ``rounds.run_rounds``: the manifests reloaded (a
    foreach's instances are known now), the same selection with the forcing still owed,
    applied once."""
    from runner.reconcile import rounds

    def again(forced: set[tuple[str, str]], done: set[tuple[str, str]]) -> Any:
        repo.reload()
        left = rounds.still_forced(forced, done, repo.manifests())
        m, wfs, sel = selection(repo, workflows, project, env, left, False, since, params)
        return (m, wfs, sel, *apply_once(repo, m, wfs, sel, options))

    return again


def up_to_date(steps: list[tuple[str, str]], duration: float) -> Any:
    """The result of an apply the no-op witness answered: every step up to date."""
    from runner.reconcile.results import ApplyResult, StepResult

    return ApplyResult(None, [StepResult(w, s, "up-to-date") for w, s in steps], duration)


def saved_selection(saved: tuple[dict[str, Any], str]) -> tuple[Any, ...]:
    """The selection a saved plan was made of: (workflows, project, env, force, force_all,
    since, params), as ``apply`` takes them."""
    sel = saved[0]["selection"]
    return (
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
