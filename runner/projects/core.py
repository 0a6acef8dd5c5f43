"""Projects over time: list and status (workflows, failing steps, milestones).

A project is a Project manifest plus the workflows whose ``metadata.project`` names it. An
archived project (``runner.projects.archive``) is listed from its archive index.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from runner.errors import UsageError, did_you_mean
from runner.projects.archived import (
    ARCHIVE_DIR,
    archived_names,
    read_index,
    unknown_project,
    workflows_of,
)
from runner.status import GREEN, NOT_OK

if TYPE_CHECKING:
    from runner.model import Workflow
    from runner.workspace import Repo


# --------------------------------------------------------------------------- list


def list_projects(repo: Repo) -> list[dict[str, Any]]:
    """Every project: those in manifests, then the archived ones."""
    m = repo.manifests()
    rows = []
    for p in m.projects.values():
        rows.append(
            {
                "name": p.name,
                "lifecycle": p.lifecycle,
                "path": p.dir,
                "manifest": repo.prefix + p.path,
                "template": p.template,
                "description": p.description,
                "workflows": workflows_of(m, p.name),
                "environments": sorted(p.environments),
                "milestones": [ms.name for ms in p.milestones],
                "archive": None,
                "archived_at": None,
            }
        )
    for name in archived_names(repo):
        if name in m.projects:
            continue
        idx = read_index(repo, name) or {}
        rows.append(
            {
                "name": name,
                "lifecycle": "archived",
                "path": idx.get("dir"),
                "manifest": None,
                "template": idx.get("template"),
                "description": idx.get("description", ""),
                "workflows": idx.get("workflows", []),
                "environments": idx.get("environments", []),
                "milestones": idx.get("milestones", []),
                "archive": f"{repo.prefix}{ARCHIVE_DIR}/{name}.tar.gz",
                "archived_at": idx.get("archived_at"),
            }
        )
    return sorted(rows, key=lambda r: r["name"])


# --------------------------------------------------------------------------- status


def project_status(
    repo: Repo, name: str, env: str | None = None, today: date | None = None
) -> dict[str, Any]:
    """Recorded state of a project: per workflow, its failing steps, recent runs, milestones.

    "Green" is the recorded result (``orch plan`` says whether it is still up to date): a
    workflow is green when every step's last result in ``env`` succeeded or was skipped.
    """
    m = repo.manifests()
    p = m.projects.get(name)
    if p is None:
        idx = read_index(repo, name)
        if idx is None:
            raise unknown_project(repo, m, name)
        return {
            "name": name,
            "lifecycle": "archived",
            "path": idx.get("dir"),
            "template": idx.get("template"),
            "description": idx.get("description", ""),
            "env": env or "",
            "archive": f"{repo.prefix}{ARCHIVE_DIR}/{name}.tar.gz",
            "archived_at": idx.get("archived_at"),
            "files": sum(1 for e in idx.get("entries", []) if e.get("type") == "file"),
            "workflows": [],
            "milestones": [],
            "runs": [],
        }
    if env and env not in p.environments:
        known = sorted(p.environments)
        hint = did_you_mean(env, known) or (
            f"its environments: {', '.join(known)}" if known else "it defines none"
        )
        raise UsageError(f"--env {env}: project '{name}' has no such environment ({hint})")
    today = today or date.today()
    names = workflows_of(m, name)
    for ms in p.milestones:  # a milestone may name another project's workflow
        names += [w for w in ms.workflows if w not in names]
        names += [s.partition("/")[0] for s in ms.steps if s.partition("/")[0] not in names]
    from runner.workspace import open_state

    state = open_state(repo, readonly=True)  # a report: never writes (see api.status)
    try:
        runs = _runs(state, set(names))
        summaries = {w: _workflow_status(state, m.workflows[w], env or "", runs) for w in names}
    finally:
        state.close()
    return {
        "name": p.name,
        "lifecycle": p.lifecycle,
        "path": p.dir,
        "manifest": repo.prefix + p.path,
        "template": p.template,
        "description": p.description,
        "env": env or "",
        "environments": sorted(p.environments),
        "workflows": [summaries[w] for w in workflows_of(m, name)],
        "milestones": [_milestone(ms, summaries, today) for ms in p.milestones],
        "runs": runs[:5],
    }


def _runs(state: Any, names: set[str]) -> list[dict[str, Any]]:
    """Recent runs that touched any of ``names``, newest first."""
    from runner.store import reads

    return reads.runs_touching(state, names)


def _workflow_status(
    state: Any, wf: Workflow, env: str, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    records = state.step_records(wf.name, env)
    steps = []
    for s in wf.steps:
        r = records.get(s.name)
        steps.append(
            {
                "step": s.name,
                "status": r.status if r else "never-ran",
                "env": r.env if r else "",
                "ended": r.ended if r else None,
                "run_id": r.run_id if r else None,
                "message": r.reason if r and r.status not in GREEN else None,
                "task_id": r.task_id if r else None,
            }
        )
    failing = [s for s in steps if s["status"] in NOT_OK]
    ids = [s["task_id"] for s in failing if s["task_id"] is not None]
    from runner.store import reads

    logs = reads.task_logs(state, ids)
    for s in failing:
        t = logs.get(s["task_id"])
        s["log"] = t["log_path"] if t else None
        s["exit_code"] = t["exit_code"] if t else None
    statuses = [s["status"] for s in steps]
    if failing:
        overall = "failing"
    elif "running" in statuses:
        overall = "running"
    elif all(st in GREEN for st in statuses):
        overall = "green"
    elif all(st == "never-ran" for st in statuses):
        overall = "never-ran"
    else:
        overall = "incomplete"
    last = next((r for r in runs if wf.name in r["workflows"] and r["env"] == env), None)
    if last is not None:
        # the run's own status covers every workflow it ran: report this one's share of it
        final = reads.run_step_statuses(state, last["id"], wf.name)
        last = {k: last[k] for k in ("id", "started", "ended", "env")}
        last["ran"] = len(final)
        if any(st in NOT_OK for st in final.values()):
            last["status"] = "failed"
        elif "running" in final.values():
            last["status"] = "running"
        else:
            last["status"] = "ok" if final else "up-to-date"
    return {
        "workflow": wf.name,
        "status": overall,
        "steps": len(steps),
        "green": sum(1 for st in statuses if st in GREEN),
        "failing": failing,
        "step_status": {s["step"]: s["status"] for s in steps},
        "last_run": last,
    }


def _milestone(ms: Any, summaries: dict[str, dict[str, Any]], today: date) -> dict[str, Any]:
    targets: list[tuple[str, bool]] = []
    for w in ms.workflows:
        targets.append((w, summaries[w]["status"] == "green"))
    for s in ms.steps:
        wname, _, sname = s.partition("/")
        targets.append((s, summaries[wname]["step_status"].get(sname) in GREEN))
    missing = [t for t, ok in targets if not ok]
    due = date.fromisoformat(ms.due) if ms.due else None
    if targets and not missing:
        state = "done"
    elif due is not None and due < today:
        state = "overdue"
    else:
        state = "pending"
    return {
        "name": ms.name,
        "state": state,
        "due": ms.due,
        "days_left": (due - today).days if due else None,
        "green": len(targets) - len(missing),
        "total": len(targets),
        "missing": missing,
        "description": ms.description,
    }
