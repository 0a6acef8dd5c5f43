"""The library API: what the CLI, the MCP server and the tests call.

Every function takes an opened ``Repo`` (``open_repo``) and returns data (dicts and lists
of JSON-able values, the shapes ``--json`` prints); none prints or exits. A problem the
user can fix raises ``runner.errors.OrchError`` (``UsageError`` for a bad argument), whose
``lines()`` are the one-line messages the CLI prints. Times are seconds since the epoch,
durations seconds, sizes bytes. ``docs/api.md`` is generated from these docstrings
(``python -m runner.apidoc``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import reconciling as rc
from runner.errors import OrchError
from runner.workspace import Repo, init, open_repo, open_state, writable  # noqa: F401 - the facade

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.masking import Secrets


def validate(repo: Repo, paths: list[str] | None = None) -> Manifests:
    """All manifests, checked; raises OrchError with every problem found. Warns (in
    ``repo.warnings``) of each input glob that matches nothing, as the plan would."""
    m = repo.manifests(extra_paths=paths or None)
    from runner.reconcile.planner import glob_warnings

    repo.warnings.update(dict.fromkeys(glob_warnings(m)))
    return m


def graph(repo: Repo, workflow: str, fmt: str = "text", reduce: bool = False) -> str:
    """Workflow ``workflow``'s DAG drawn as ``fmt``: ``text``, ``dot`` (Graphviz) or
    ``mermaid`` (``orch graph``). ``reduce``: leave out every edge a longer path implies
    (the transitive reduction). OrchError for an unknown workflow or manifests that do not
    load."""
    from runner.render import render_graph

    m = repo.manifests()
    wf = m.workflow(workflow)
    into, out = m.across(wf.name)
    # a foreach over a step's outputs with no instance yet: drawn after its source
    pending: dict[str, list[str]] = {}
    for w, g, src, _k in m.fan_dynamic:
        if w == wf.name and not wf.groups.get(g):
            pending.setdefault(src, []).append(g)
    return render_graph(wf, _dag(m, wf.name, reduce), fmt, into, out, pending)


def _dag(m: Manifests, workflow: str, reduce: bool) -> Any:
    if not reduce:
        return m.dags[workflow]
    from runner.manifests.graph import reduced

    return reduced(m.dags[workflow])


def graph_data(repo: Repo, workflow: str, reduce: bool = False) -> dict[str, Any]:
    """A workflow's DAG as data (``orch graph --json``): ``{"workflow", "steps": [{"name",
    "upstream": [{"step", "kinds": [...]}]}]}``, steps in run order (topological, ties by
    declaration), each edge with why it exists (``needs``, ``template``, ``inputs``...).
    ``reduce`` as for ``graph``."""
    m = repo.manifests()
    wf = m.workflow(workflow)
    dag = _dag(m, wf.name, reduce)
    return {
        "workflow": wf.name,
        "steps": [
            {
                "name": n,
                "upstream": [
                    {"step": u, "kinds": sorted(dag.kinds.get((u, n), ()))} for u in dag.upstream[n]
                ],
            }
            for n in dag.order
        ],
    }


def workflows(repo: Repo) -> list[dict[str, Any]]:
    """Every workflow, by name (``orch workflow list --json``): dicts with ``name,
    project`` (or None) ``, path`` (its manifest) ``, steps`` (how many) ``, description,
    quota``. OrchError when the manifests do not load."""
    m = repo.manifests()
    return [
        {
            "name": wf.name,
            "project": wf.project,
            "path": repo.prefix + wf.path,
            "steps": len(wf.steps),
            "description": wf.description,
            "quota": wf.quota,
        }
        for wf in sorted(m.workflows.values(), key=lambda w: w.name)
    ]


def secrets(repo: Repo, load: bool = True) -> Secrets:
    """The run-wide secret set as this process knows it: the values (set in this
    environment) of every variable the catalog declares under ``secrets:``, or that past
    applies saw declared (``.orch/cache/secret-names.json``: so while the manifests do not
    load, or with ``load=False`` before this command loaded them, too).
    Kept per loaded catalog, so masking every line printed costs one regex each."""
    m = repo._manifests
    if m is None and load and not repo._unloadable and not repo.noop_hit:
        try:
            m = repo.manifests()
        except OrchError:
            repo._unloadable = True  # asked once: every line printed would ask again
    if repo._secrets is None or repo._secrets[0] is not m:
        if m is None:  # remembered names only: no catalog, and none of the engine imported
            from runner.masking import Secrets, remembered_names

            repo._secrets = (m, Secrets.declared(remembered_names(repo.orch_dir)))
        else:
            from runner.reconcile.flow import run_secrets

            repo._secrets = (m, run_secrets(m, repo.orch_dir))
    return repo._secrets[1]


def mask(repo: Repo, value: Any) -> Any:
    """``value`` (a string, or JSON-like data: dicts, lists, strings) with every form of
    every secret of ``repo`` replaced by ``***``. The one function every sink uses: the
    CLI's stdout and stderr (text, ``--json``, error messages), JUnit reports and MCP
    replies; rows and logs recorded before a secret was declared, or by an older orch,
    are masked here when shown."""
    return secrets(repo).mask_any(value)


# -- reconcile -------------------------------------------------------------------------


def plan(
    repo: Repo,
    workflows: list[str] | None = None,
    *,
    project: str | None = None,
    env: str | None = None,
    force: list[str] | None = None,
    force_all: bool = False,
    since: str | None = None,
    ref: str | None = None,
    commands: bool = False,
    params: dict[str, Any] | None = None,
    save: Path | None = None,
    cache: bool = True,
    readonly: bool = False,
) -> dict[str, Any]:
    """What apply would do, per step, with reasons (the same data ``--json`` prints).

    ``cache``: False plans as if the result cache were empty (``--no-cache``); with it, a
    step whose result the cache holds is ``restore`` (docs/cache.md).
    ``readonly``: read the state as it is and write nothing to ``.orch/`` (no state store
    created, no hash cache or no-op witness kept), as on a read-only ``.orch/``; for a
    viewer such as ``orch ui`` that plans on every change.

    ``save``: also write the plan there as a saved plan (``reconcile.savedplan``) that
    ``apply(saved=...)`` applies exactly or refuses; not with ``ref``.

    ``commands``: also each step's command as apply would render it, masked with the
    run's secrets (``plan --show-commands``; see ``reconcile.preview``): every step that
    would run gets ``"command"`` (a string, an argv list, or None) and ``"note"``.

    ``params``: ``--param`` overrides, KEY -> text (``selection.parse_params`` types them).

    ``ref``: plan the manifests as committed at git revision ``ref`` against the recorded
    state and the files in the work tree ("what would apply do if I checked out REV's
    manifests"); forcing and ``since`` do not combine with it (UsageError)."""
    asked = rc.Asked(workflows, project, env, force, force_all, since, params)
    if ref is not None:
        return rc.plan_at(repo, ref, asked, commands, save)
    from runner import noop
    from runner.reconcile import plandata

    key = noop.selection_key(*asked)
    if save is not None:
        key = None  # a saved plan needs every fingerprint: always plan
    hit, mkey = rc.noop_hit(repo, key)
    if hit is not None:
        return plandata.table([(w, s, "up-to-date", []) for w, s in hit], env or "")
    m, wfs, sel = rc.selection(repo, asked)
    plans = rc.planned(repo, m, wfs, sel, cache=cache, readonly=readonly)
    if save is not None:
        rc.save_plan(repo, save, plans, asked)
    data = plandata.of(m, sel, plans, commands=commands)
    keep = key is not None and not readonly and repo.orch_dir.is_dir()  # never creates .orch/
    if keep and plandata.settled(data, plans):
        noop.record_plan(repo.root, m, wfs, key, plans.seen, mkey)
    return data


def explain(
    repo: Repo,
    workflow: str,
    step: str,
    *,
    env: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every part of one step's fingerprint, recorded → now (``reconcile.explain``):
    ``{"workflow", "step", "action", "reasons", "fingerprint": {old, new, changed},
    "parts": [{kind, name, old, new, changed}]}``, masked with the run's secrets.
    Reads only: it writes no state. OrchError (one line) for an unknown workflow or step."""
    from runner.reconcile import explain as ex
    from runner.reconcile import flow
    from runner.reconcile.preview import commands

    m, wfs, sel = rc.selection(repo, rc.Asked([workflow], None, env, params=params))
    wf = wfs[0]
    if step not in m.dags[wf.name].order:
        from runner.errors import did_you_mean

        names = list(m.dags[wf.name].order)
        hint = did_you_mean(step, names) or "steps: " + ", ".join(names)
        raise OrchError(f"workflow '{workflow}' has no step '{step}' ({hint})")
    from runner.reconcile.restore import open_cache

    cache = open_cache(m, repo.root, warn=lambda _line: None)  # decided as plan decides it
    state = open_state(repo, readonly=True)  # explain writes nothing
    try:
        plans = flow.plan(repo.root, m, state, wfs, sel, cache=cache)
    finally:
        state.close()
    d = next(x for x in plans.decisions[wf.name] if x.step == step)
    rec = plans.records.get(wf.name, {}).get(step)
    shown = commands(m, plans, dict(os.environ), only={(wf.name, step)}).get((wf.name, step))
    secrets = flow.run_secrets(m)
    now = ex.command_text(shown["command"]) if shown else None
    now = secrets.mask(now) if now is not None else None  # as the record keeps it
    data = {
        "workflow": wf.name,
        "step": step,
        "action": d.action,
        "reasons": list(d.reasons),
        "fingerprint": ex.fingerprint(d, rec),
        "parts": ex.parts(d, rec, now, plans.views[(wf.name, step)].upstream),
    }
    return secrets.mask_any(data)  # type: ignore[return-value]


def apply(
    repo: Repo,
    workflows: list[str] | None = None,
    *,
    project: str | None = None,
    env: str | None = None,
    force: list[str] | None = None,
    force_all: bool = False,
    since: str | None = None,
    options: Any = None,
    params: dict[str, Any] | None = None,
    saved: tuple[dict[str, Any], str] | None = None,
) -> Any:
    """Run what the plan says, and record it; arguments as for ``plan``, ``options`` a
    ``runner.reconcile.results.ApplyOptions`` (``jobs``, ``fail_fast``, ``echo``: a
    callable given each line of task output, ``report``: given each progress event...).

    Returns a ``runner.reconcile.results.ApplyResult``: ``run_id`` (None when nothing ran),
    ``ok`` (no step failed or was held back), ``duration`` (seconds), ``counts()`` ({status:
    n}), ``results`` (one ``StepResult`` per step: ``workflow, step, status, reasons,
    duration, exit_code, attempts, log_path, message, log_tail``; ``to_json()``). A failed
    step is a result, not an exception; OrchError for a selection or manifest problem,
    ``KeyboardInterrupt`` when stopped (its tasks are ended and recorded first).

    ``saved``: (a saved plan as ``savedplan.load`` read it, its name as the user gave
    it): apply exactly that plan, with its selection (the other arguments are not used),
    or raise ``savedplan.StalePlan`` before anything runs or is recorded. Instances a
    foreach makes only once the plan has run are left to the next apply."""
    import time

    t0 = time.time()
    asked = rc.Asked(workflows, project, env, force, force_all, since, params)
    if saved is not None:  # its selection, and options that refuse a plan that differs
        asked = rc.saved_selection(saved)
        options = rc.expecting(saved, options)
    from runner import noop

    key = noop.selection_key(*asked)
    key = None if saved else key  # a saved plan is applied as planned: never the witness
    hit, mkey = rc.noop_hit(repo, key)
    if hit is not None:
        return rc.up_to_date(hit, time.time() - t0)
    if options is not None and (options.executor_kind or options.dask_address):
        repo.executor_kind = options.executor_kind or "dask"
    m, wfs, sel = rc.selection(repo, asked)
    result, plans = rc.apply_once(repo, m, wfs, sel, options)
    if not saved:  # a saved plan is applied as it was planned: one round
        from runner.reconcile import rounds

        again = rc.again(repo, options, asked)
        m, wfs, result, plans = rounds.run_rounds(
            m, wfs, sel, result, plans, force_all=asked.force_all, again=again
        )
    if key is not None and not plans.warnings and result.run_id is None:
        noop.record_plan(repo.root, m, wfs, key, plans.seen, mkey)
    if result.run_id is not None:  # something ran, and may have stored results
        rc.trim_cache(repo, m)
    return result


def status(
    repo: Repo, workflows: list[str] | None = None, project: str | None = None
) -> list[dict[str, Any]]:
    """The recorded state of each step of the selected workflows (all by default; of
    ``project`` if given), as ``orch status --json``: dicts with ``workflow, step,
    status`` (``succeeded``, ``failed``, ``never-ran``...) ``, env, started, ended,
    duration, reason, message, exit_code, run_id, log, outputs`` ({name: value} the step
    wrote to ``$ORCH_OUTPUT``). Read-only."""
    from runner import recorded

    return recorded.status(repo, workflows, project)


def step_durations(repo: Repo) -> dict[tuple[str, str], float]:
    """(workflow, step) -> seconds of its last successful run (``reads.step_durations``);
    empty when nothing was recorded yet."""
    from runner import recorded

    return recorded.step_durations(repo)


def breakers(repo: Repo) -> list[dict[str, Any]]:
    """The circuit breakers, by name: their recorded rows (``name``, consecutive
    failures, when they opened). Read-only."""
    from runner import recorded

    return recorded.breakers(repo)


def audit(repo: Repo, since: float | None = None) -> list[dict[str, Any]]:
    """The audit log (``runner.audit``), oldest first, from ``since`` (seconds since the
    epoch) on: dicts with ``id, at`` (seconds since the epoch), ``time`` (ISO 8601 UTC),
    ``user, host, pid, commit, dirty, argv`` (masked) ``, exit_code`` (None: a watch's
    start) ``, error``. Read-only: a read-only ``.orch/`` reads as it is."""
    from runner import recorded

    return recorded.audit(repo, since)


def history(
    repo: Repo, workflows: list[str] | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Past runs touching ``workflows`` (all by default), newest first, at most ``limit``:
    dicts with ``id, started, ended, status, commit, dirty, env, workflows, summary`` and
    ``tasks`` (one per attempt: ``id, workflow, step, attempt, status, reason, started,
    ended, exit_code, delay, cpu_time`` (seconds) ``, peak_rss`` (bytes) ``, log, message,
    worker``). A run whose runner died reads as ``interrupted``. Read-only."""
    from runner import recorded

    return recorded.history(repo, workflows, limit)


def run(repo: Repo, run_id: int) -> dict[str, Any]:
    """Run ``run_id`` as a row of ``history`` (with its tasks); OrchError when there is
    none. Read-only."""
    from runner import recorded

    return recorded.run(repo, run_id)


def state_version(repo: Repo) -> tuple[int, ...]:
    """A value (a tuple of ints) that changes whenever any orch process writes the state
    (``store.state.version``: file sizes and mtimes, the database never opened), so a
    watcher such as ``orch ui`` can poll it cheaply and read the state only on a change."""
    from runner.store.state import version

    return version(repo.orch_dir)


def manifest_version(root: Path) -> tuple[object, ...] | None:
    """A value that changes whenever a manifest (or the config) under ``root`` is added,
    removed or edited (``manifests.cache.manifest_key``: one stat per file, nothing
    parsed); None when the files cannot be listed. A viewer such as ``orch ui`` keeps
    its parsed manifests while it holds."""
    from runner.manifests.cache import manifest_key

    return manifest_key(root)


def step_groups(repo: Repo, workflow: str) -> dict[str, list[str]]:
    """The fan-out steps of ``workflow`` (``foreach``/``matrix``): group name -> the
    names of its instances, in declaration order. OrchError for an unknown workflow."""
    wf = repo.manifests().workflow(workflow)
    return {g: list(names) for g, names in wf.groups.items()}


def log_path(repo: Repo, workflow: str, step: str, run: int | None = None) -> Path:
    """The log of the step's last task (in run ``run``, if given); OrchError if none."""
    return repo.root / log_task(repo, workflow, step, run)["log_path"]


def log_task(
    repo: Repo, workflow: str, step: str, run: int | None = None, attempt: int | None = None
) -> dict[str, Any]:
    """The task whose log ``orch logs`` shows: the step's last task with a log, in run
    ``run`` (default: the latest run of the step) and of attempt ``attempt`` (1-based;
    default: the last) when given, as {id, run_id, attempt,
    status, log_path (repo-relative)}. OrchError for an unknown workflow or step, a
    fan-out step, or a step with no such log yet."""
    from runner import recorded

    return recorded.log_task(repo, workflow, step, run, attempt)


def state_reset(repo: Repo) -> Path | None:
    """Move the state store aside (``orch state reset``): every step reads as never ran.
    Returns where the old store went, or None when there was none."""
    from runner.store.state import reset

    return reset(repo.orch_dir)


def tasks(repo: Repo, limit: int = 20) -> list[dict[str, Any]]:
    """Tasks (one per attempt of a step), running ones first, then the most recent, at
    most ``limit``: the ``tasks`` rows (``id, run_id, workflow, step, attempt, status,
    started, ended, exit_code, log_path``...). Read-only."""
    from runner import recorded

    return recorded.tasks(repo, limit)


def task(repo: Repo, task_id: int) -> dict[str, Any]:
    """Task ``task_id``, as a row of ``tasks``; OrchError when there is none."""
    from runner import recorded

    return recorded.task(repo, task_id)


def retry_pending(repo: Repo, task_id: int) -> bool:
    """Whether task ``task_id`` is a failed attempt whose step waits out its retry
    back-off now: it has a back-off ``delay``, no later attempt exists yet, and its
    runner lives (``orch logs -f`` then waits for the next attempt). False for an
    unknown task."""
    from runner import recorded

    return recorded.retry_pending(repo, task_id)


def cancel_task(repo: Repo, task_id: int) -> dict[str, Any]:
    """Ask the runner that owns a running task, or one waiting out a retry back-off, to
    end it (its process tree; a back-off ends without the next attempt). OrchError when
    the task is neither."""
    from runner import recorded

    return recorded.cancel_task(repo, task_id)


def cancel_run(repo: Repo, run_id: int) -> list[dict[str, Any]]:
    """Cancel run ``run_id``: every running task and every one waiting out a back-off is
    ended, and its runner starts no more: the steps left, those waiting on another
    runner's lock or a quota included, are ``cancelled``. Returns the tasks asked to
    end (empty when every step still waits). OrchError for an unknown run (nothing is
    written, not even ``.orch/``), or one that has ended (or whose runner is gone)."""
    from runner import recorded

    return recorded.cancel_run(repo, run_id)


def system_status(repo: Repo, cluster: bool = False) -> dict[str, Any]:
    """What ``orch system status|metrics|health`` shows, as data (see ``runner.system``):
    ``{host`` (cpus, memory in bytes, load) ``, quotas`` (each with what live runners hold)
    ``, running`` (tasks) ``, breakers, metrics`` (recent task durations and resources)
    ``, health: {ok, checks: [{name, ok, detail}]}, state_error, cluster}``. A broken
    manifest or state store is a failed check, not an exception. ``cluster``: also ask the
    configured Dask scheduler for its workers (else ``cluster`` is None)."""
    from runner.system import system_status as report

    return report(repo, cluster)


# -- projects and templates ------------------------------------------------------------


def projects(repo: Repo) -> list[dict[str, Any]]:
    """Every project, by name: those in the manifests, then the archived ones (``orch
    project list --json``): dicts with ``name, lifecycle`` (``active``, ``archived``...)
    ``, path, manifest, template, description, workflows, environments, milestones,
    archive`` (the tarball, archived ones only) ``, archived_at`` (seconds since the
    epoch, or None). OrchError when the manifests do not load."""
    from runner.projects.core import list_projects

    return list_projects(repo)


def project_status(repo: Repo, name: str, env: str | None = None) -> dict[str, Any]:
    """Recorded state of project ``name`` in environment ``env`` (``orch project status
    --json``): per workflow its failing steps and recent runs, and the milestones. An
    archived project answers with its archive instead. OrchError for an unknown project."""
    from runner.projects.core import project_status as report

    return report(repo, name, env)


def create_project(
    repo: Repo,
    name: str,
    template: str,
    params: dict[str, str] | None = None,
    path: str | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Lay out project ``name`` from ``template`` (``orch project create``): all files or
    none; an existing file is never replaced. ``path``: the folder, relative to ``cwd``
    (default: the repository root) - default ``NAME``. Returns ``{kind, name, template,
    dir, project, files, unchanged, workflows}``, paths repository-relative. UsageError
    for a bad name; OrchError for an unknown template, a missing or bad param, a file in
    the way, or a result that would not validate (nothing is written then)."""
    from runner.projects.scaffold import create

    return create(repo, "project", name, template, params, path, cwd or repo.root).to_json()


def create_workflow(
    repo: Repo,
    name: str,
    template: str,
    params: dict[str, str] | None = None,
    path: str | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """As ``create_project``, for a workflow (``orch workflow create``); ``path``
    defaults to ``cwd`` itself, and the workflow joins the project whose folder holds it."""
    from runner.projects.scaffold import create

    return create(repo, "workflow", name, template, params, path, cwd or repo.root).to_json()


def archive_project(repo: Repo, name: str) -> dict[str, Any]:
    """Pack project ``name`` into ``.orch/archive/NAME.tar.gz`` and remove its files
    (``orch project archive``): returns ``{name, archive, index, dir, files,
    bytes, archive_bytes, workflows, not_removed}`` (sizes in bytes). Refuses (OrchError, nothing
    touched) an unknown or already archived project, one whose removal would leave the
    other manifests invalid, or one with a running step."""
    from runner.projects.archive import archive

    return archive(repo, name)


def restore_project(repo: Repo, name: str) -> dict[str, Any]:
    """Put archived project ``name`` back, byte for byte (``orch project restore``):
    returns ``{name, dir, files, bytes, already_there, workflows}``. OrchError (nothing written) for a project that
    is not archived, an archive that does not match its index, or a file in the way."""
    from runner.projects.archive import restore

    return restore(repo, name)


def templates(repo: Repo) -> list[dict[str, Any]]:
    """Every project and workflow template, built in and the repository's own (``orch
    template list --json``): dicts with ``name, kind, source, description, parameters,
    workflows, files``."""
    from runner.projects.templates_index import list_templates

    return [t.to_json() for t in list_templates(repo)]


def cache_status(repo: Repo) -> dict[str, Any]:
    """The result cache (``orch cache status``): ``{"location", "enabled"`` (False when
    the config says ``cache: false``)``, "entries", "bytes",
    "hits", "misses", "hit_rate"`` (hits / lookups, 0..1; None before the first lookup),
    ``"max_size"`` (bytes the cache is gc'd to after each apply; None: unbounded)``}``.
    Hits and misses count every lookup made through this store since it was made.
    Read-only. Raises OrchError for a ``.orch/config.yaml`` that does not validate, or a
    ``cache.remote`` without fsspec (the ``cache-remote`` extra); so do the two below."""
    from runner.reconcile import cacheadmin

    return cacheadmin.status(repo.root)


def cache_gc(
    repo: Repo, *, max_size: int | None = None, older_than: float | None = None
) -> dict[str, Any]:
    """Drop result-cache entries, least recently used first (``orch cache gc``): those
    unused for ``older_than`` seconds, then more until the cache takes at most
    ``max_size`` bytes (default: the configured ``cache.max_size``); then file contents
    no entry refers to. Returns ``{"location", "removed"`` (entries), ``"freed"`` (bytes),
    ``"entries", "bytes"`` (what is left)``}``."""
    from runner.reconcile import cacheadmin

    return cacheadmin.gc(repo.root, max_size=max_size, older_than=older_than)


def cache_clear(repo: Repo) -> dict[str, Any]:
    """Empty the result cache (``orch cache clear``): every entry and file content; the
    next apply runs what it would have restored. Returns ``{"location", "removed"``
    (entries), ``"freed"`` (bytes)``}``."""
    from runner.reconcile import cacheadmin

    return cacheadmin.clear(repo.root)
