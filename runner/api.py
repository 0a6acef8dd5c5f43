"""The library API: what the CLI, the MCP server and the tests call.

Every function takes an opened ``Repo`` and returns data; none prints or exits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import OrchError

if TYPE_CHECKING:
    from runner.manifests.load import Manifests

CONFIG_PATH = ".orch/config.yaml"

GITIGNORE = (
    "# machine-local orch state; only the config is committed\n*\n!config.yaml\n!.gitignore\n"
)
CONFIG_TEMPLATE = """\
apiVersion: orch/v1
kind: Config
# Where manifests live: files, folders or globs relative to the repository root.
manifests: ["."]
# Globs never read as manifests.
exclude: []
"""


class Repo:
    """An opened orch repository: its root, how its paths are shown, its manifests."""

    def __init__(self, root: Path, prefix: str = ""):
        self.root = root
        self.prefix = prefix  # how paths under root are shown to the user
        self._manifests: Manifests | None = None
        self.warnings: dict[str, None] = {}  # said once each, by the caller (CLI: stderr)

    def __repr__(self) -> str:
        return f"Repo(root={self.root!r}, prefix={self.prefix!r})"

    @property
    def orch_dir(self) -> Path:
        return self.root / ".orch"

    def manifests(self, extra_paths: list[str] | None = None) -> Manifests:
        if self._manifests is None or extra_paths:
            from runner.manifests.cache import load_cached

            try:
                m = load_cached(self.root, self.prefix, extra_paths)
            except OrchError as e:
                self.warnings.update(dict.fromkeys(e.warnings))
                raise
            self.warnings.update(dict.fromkeys(m.warnings))
            if extra_paths:
                return m
            self._manifests = m
        return self._manifests

    def reload(self) -> None:
        """Forget the loaded manifests: a long-lived caller (orch watch, the MCP server)
        sees edits on its next call (the stat-keyed cache keeps unchanged ones cheap)."""
        self._manifests = None


def open_repo(start: str | os.PathLike[str] | None = None, *, exact: bool = False) -> Repo:
    """The orch repository at or above ``start`` (``exact``: ``start`` itself)."""
    from runner.manifests.sources import display_prefix, find_root

    base = Path(start) if start is not None else Path.cwd()
    if not base.is_dir():
        raise OrchError(f"{base}: no such directory")
    root = base.resolve() if exact else find_root(base)
    return Repo(root=root, prefix=display_prefix(root))


def validate(repo: Repo, paths: list[str] | None = None) -> Manifests:
    """All manifests, checked; raises OrchError with every problem found."""
    return repo.manifests(extra_paths=paths or None)


def init(repo: Repo) -> list[str]:
    """Create ``.orch/config.yaml`` and ``.orch/.gitignore`` if missing; idempotent."""
    created = []
    repo.orch_dir.mkdir(exist_ok=True)
    for rel, text in ((CONFIG_PATH, CONFIG_TEMPLATE), (".orch/.gitignore", GITIGNORE)):
        p = repo.root / rel
        if not p.exists():
            from runner.fsutil import atomic_write

            atomic_write(p, text)
            created.append(rel)
    return created


def graph(repo: Repo, workflow: str, fmt: str = "text") -> str:
    from runner.render import render_graph

    m = repo.manifests()
    wf = m.workflow(workflow)
    return render_graph(wf, m.dags[wf.name], fmt)


def workflows(repo: Repo) -> list[dict[str, Any]]:
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


# -- reconcile -------------------------------------------------------------------------


def open_state(repo: Repo) -> Any:
    """The state store, creating ``.orch/`` (with its .gitignore) on first use."""
    from runner.store.state import State

    if not (repo.orch_dir / ".gitignore").exists():
        repo.orch_dir.mkdir(exist_ok=True)
        (repo.orch_dir / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return State(repo.orch_dir)


def _selection(
    repo: Repo,
    workflows: list[str] | None,
    project: str | None,
    env: str | None,
    force: list[str] | None,
    force_all: bool,
    since: str | None = None,
) -> tuple[Manifests, list[Any], Any]:
    from runner.reconcile.selection import Selection, check_env, parse_forced, select_workflows

    m = repo.manifests()
    wfs = select_workflows(m, list(workflows or []), project)
    if since:
        from runner.manifests.revisions import affected_workflows

        keep = affected_workflows(repo, m, since)
        wfs = [w for w in wfs if w.name in keep]
    if env:
        check_env(m, wfs, env)
    sel = Selection([w.name for w in wfs], env or "", parse_forced(m, wfs, force or []), force_all)
    return m, wfs, sel


def plan(
    repo: Repo,
    workflows: list[str] | None = None,
    *,
    project: str | None = None,
    env: str | None = None,
    force: list[str] | None = None,
    force_all: bool = False,
    since: str | None = None,
) -> dict[str, Any]:
    """What apply would do, per step, with reasons (the same data ``--json`` prints)."""
    key = _noop_key(workflows, project, env, force, force_all, since)
    mkey = None
    if key is not None:
        from runner.manifests.cache import manifest_key
        from runner.noop import check

        mkey = manifest_key(repo.root)  # before loading: an edit from now on is seen next time
        hit = check(repo.root, key, mkey)
        if hit is not None:
            return _plan_data([(w, s, "up-to-date", []) for w, s in hit], env or "")
    from runner.reconcile import flow

    m, wfs, sel = _selection(repo, workflows, project, env, force, force_all, since)
    state = open_state(repo)
    try:
        plans = flow.plan(repo.root, m, state, wfs, sel)
    finally:
        state.close()
    data = _plan_data(plans.rows(), sel.env)
    if key is not None and data["summary"]["up-to-date"] == len(data["steps"]):
        _witness(repo, m, wfs, key, plans.seen, mkey)
    return data


def _plan_data(rows: list[tuple[str, str, str, list[str]]], env: str) -> dict[str, Any]:
    steps = [{"workflow": w, "step": s, "action": a, "reasons": r} for w, s, a, r in rows]
    counts = {"run": 0, "may-run": 0, "up-to-date": 0}
    for s in steps:
        counts[s["action"]] += 1
    return {
        "workflows": list(dict.fromkeys(w for w, *_ in rows)),
        "steps": steps,
        "summary": counts,
        "env": env,
    }


def _noop_key(
    workflows: list[str] | None,
    project: str | None,
    env: str | None,
    force: list[str] | None,
    force_all: bool,
    since: str | None,
) -> tuple[Any, ...] | None:
    """The no-op witness applies to plain selections; forcing or --since always plans."""
    if force or force_all or since:
        return None
    return ("v1", tuple(workflows or ()), project or "", env or "")


def _witness(
    repo: Repo,
    m: Manifests,
    wfs: list[Any],
    key: tuple[Any, ...],
    seen: dict[str, Any],
    mkey: tuple[Any, ...] | None,
) -> None:
    from runner.noop import record

    names = {v for w in wfs for s in w.steps for v in m.env_refs.get((w.name, s.name), ())}
    steps = [(w.name, n) for w in wfs for n in m.dags[w.name].order]
    record(repo.root, key, steps, seen, {n: os.environ.get(n) for n in names}, mkey)


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
) -> Any:
    """Run what the plan says; returns a ``results.ApplyResult``."""
    import time

    t0 = time.time()
    key = _noop_key(workflows, project, env, force, force_all, since)
    mkey = None
    if key is not None:
        from runner.manifests.cache import manifest_key
        from runner.noop import check

        mkey = manifest_key(repo.root)  # before loading: an edit from now on is seen next time
        hit = check(repo.root, key, mkey)
        if hit is not None:
            from runner.reconcile.results import ApplyResult, StepResult

            return ApplyResult(
                None, [StepResult(w, s, "up-to-date") for w, s in hit], time.time() - t0
            )
    from runner.reconcile import flow
    from runner.reconcile.results import ApplyOptions

    m, wfs, sel = _selection(repo, workflows, project, env, force, force_all, since)
    state = open_state(repo)
    try:
        result, plans = flow.apply(repo.root, m, state, wfs, sel, options or ApplyOptions())
    finally:
        state.close()
    if key is not None and result.run_id is None:
        _witness(repo, m, wfs, key, plans.seen, mkey)
    return result


def status(
    repo: Repo, workflows: list[str] | None = None, project: str | None = None
) -> list[dict[str, Any]]:
    """The recorded state of each step of the selected workflows."""
    from runner.reconcile.selection import select_workflows

    m = repo.manifests()
    wfs = select_workflows(m, list(workflows or []), project)
    state = open_state(repo)
    out = []
    try:
        state.reap_dead_runs()
        for wf in wfs:
            rows = {
                (r["step"]): r
                for r in state.query(
                    "SELECT * FROM steps WHERE workflow=? ORDER BY env DESC", (wf.name,)
                )
            }
            tasks = {
                r["step"]: r
                for r in state.query(
                    "SELECT t.* FROM tasks t JOIN (SELECT step, max(id) AS id FROM tasks WHERE workflow=? GROUP BY step) l ON t.id = l.id",
                    (wf.name,),
                )
            }
            for s in wf.steps:
                r = rows.get(s.name)
                t = tasks.get(s.name)
                out.append(
                    {
                        "workflow": wf.name,
                        "step": s.name,
                        "status": r["status"] if r else "never-ran",
                        "env": r["env"] if r else "",
                        "ended": r["ended"] if r else None,
                        "duration": (r["ended"] - r["started"])
                        if r and r["ended"] and r["started"]
                        else None,
                        "reason": (t["reason"] if t else None),
                        "message": r["reason"] if r and r["status"] != "succeeded" else None,
                        "outputs": _loads(r["outputs"]) if r else {},
                        "exit_code": t["exit_code"] if t else None,
                        "attempt": t["attempt"] if t else None,
                        "cpu_time": t["cpu_time"] if t else None,
                        "peak_rss": t["peak_rss"] if t else None,
                        "run_id": r["run_id"] if r else None,
                        "log": t["log_path"] if t else None,
                    }
                )
    finally:
        state.close()
    return out


def breakers(repo: Repo) -> list[dict[str, Any]]:
    state = open_state(repo)
    try:
        return [dict(r) for r in state.query("SELECT * FROM breakers ORDER BY name")]
    finally:
        state.close()


def _loads(s: str | None) -> Any:
    import json

    return json.loads(s) if s else {}


def history(
    repo: Repo, workflows: list[str] | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Past runs, newest first, each with its tasks."""
    import json

    state = open_state(repo)
    try:
        state.reap_dead_runs()
        runs = state.query("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (max(limit * 5, limit),))
        out = []
        for r in runs:
            wfs = json.loads(r["workflows"] or "[]")
            if workflows and not set(workflows) & set(wfs):
                continue
            tasks = state.query("SELECT * FROM tasks WHERE run_id=? ORDER BY id", (r["id"],))
            out.append(
                {
                    "id": r["id"],
                    "started": r["started"],
                    "ended": r["ended"],
                    "status": r["status"],
                    "commit": r["git_commit"],
                    "dirty": None if r["dirty"] is None else bool(r["dirty"]),
                    "env": r["env"],
                    "workflows": wfs,
                    "summary": json.loads(r["summary"]) if r["summary"] else {},
                    "tasks": [
                        {
                            "id": t["id"],
                            "workflow": t["workflow"],
                            "step": t["step"],
                            "attempt": t["attempt"],
                            "status": t["status"],
                            "reason": t["reason"],
                            "started": t["started"],
                            "ended": t["ended"],
                            "exit_code": t["exit_code"],
                            "delay": t["delay"],
                            "cpu_time": t["cpu_time"],
                            "peak_rss": t["peak_rss"],
                            "log": t["log_path"],
                            "message": t["message"],
                        }
                        for t in tasks
                    ],
                }
            )
            if len(out) >= limit:
                break
        return out
    finally:
        state.close()


def log_path(repo: Repo, workflow: str, step: str, run: int | None = None) -> Path:
    m = repo.manifests()
    wf = m.workflow(workflow)
    if step not in wf.step_names:
        from runner.errors import did_you_mean

        raise OrchError(
            f"workflow '{workflow}' has no step '{step}' ({did_you_mean(step, wf.step_names) or 'see orch graph ' + workflow})"
        )
    state = open_state(repo)
    try:
        sql = "SELECT log_path FROM tasks WHERE workflow=? AND step=? AND log_path IS NOT NULL"
        args: tuple[Any, ...] = (workflow, step)
        if run is not None:
            sql += " AND run_id=?"
            args += (run,)
        rows = state.query(sql + " ORDER BY id DESC LIMIT 1", args)
    finally:
        state.close()
    if not rows:
        raise OrchError(
            f"{workflow}/{step} has no log yet"
            + (f" in run {run}" if run else "")
            + " (run orch apply first)"
        )
    return repo.root / rows[0]["log_path"]


def state_reset(repo: Repo) -> Path | None:
    from runner.store.state import reset

    return reset(repo.orch_dir)


def tasks(repo: Repo, limit: int = 20) -> list[dict[str, Any]]:
    state = open_state(repo)
    try:
        state.reap_dead_runs()
        rows = state.query(
            "SELECT * FROM tasks ORDER BY CASE WHEN status IN ('running','queued') THEN 0 ELSE 1 END, id DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]
    finally:
        state.close()


def task(repo: Repo, task_id: int) -> dict[str, Any]:
    state = open_state(repo)
    try:
        state.reap_dead_runs()
        rows = state.query("SELECT * FROM tasks WHERE id=?", (task_id,))
    finally:
        state.close()
    if not rows:
        raise OrchError(f"no task with id {task_id} (see orch task list)")
    return dict(rows[0])


def cancel_task(repo: Repo, task_id: int) -> dict[str, Any]:
    """Ask the runner that owns a running task to end its process tree."""
    t = task(repo, task_id)
    if t["status"] not in ("running", "queued"):
        raise OrchError(f"task {task_id} is not running (it is {t['status']})")
    state = open_state(repo)
    try:
        state.update_task(task_id, cancel_requested=1)
    finally:
        state.close()
    return t
