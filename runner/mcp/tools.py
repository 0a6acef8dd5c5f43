"""What each MCP tool does, as plain synchronous functions over ``runner.api`` returning
JSON-able dicts; ``runner.mcp.server`` offers them to agents through the SDK.

The repository root is fixed when the server starts; every call opens that root afresh
(the agent edits manifests between calls, so nothing parsed is kept), and every path an
agent passes in must resolve inside it. Nothing here imports the SDK, so the part that knows
orch can be read and tested without it.
"""

from __future__ import annotations

import collections
import io
import sys
import threading
from pathlib import Path
from typing import Any

from runner import api
from runner.errors import OrchError
from runner.fsutil import open_regular

MAX_LOG_LINES = 5000


class Tools:
    """What each MCP tool does, as plain functions of a fixed repository root."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def repo(self) -> api.Repo:
        # A fresh Repo each call: Repo caches its manifests, and the agent edits them.
        # Paths are shown relative to the root, whatever the server's working directory.
        return api.Repo(root=self.root, prefix="")

    def masked(self, reply: Any) -> Any:
        """``reply`` with every secret the catalog declares masked: every reply goes
        through here, so a row recorded before its secret was declared stays hidden."""
        return api.mask(self.repo(), reply)

    def inside(self, path: str) -> str:
        """``path`` (relative to the root, or absolute) as an absolute path inside the root."""
        p = Path(path)
        full = (p if p.is_absolute() else self.root / p).resolve()
        if full != self.root and self.root not in full.parents:
            raise OrchError(f"{path}: outside the repository {self.root}")
        return str(full)

    def audit(self, argv: list[str], code: int, error: str | None) -> None:
        """An acting call's row in the audit log (``runner.audit``), as the CLI's: a row
        that cannot be written is a warning on stderr (the server's log), never the
        call's failure."""
        from runner.audit import record

        repo = self.repo()
        try:
            record(self.root, argv, code, error, lambda v: api.mask(repo, v))
        except Exception as e:
            print(f"orch mcp: warning: audit log not written: {e}", file=sys.stderr)

    def acting(self, argv: list[str], fn: Any) -> Any:
        """``fn()``, with its outcome in the audit log: 0, or the OrchError's exit code and
        lines (re-raised)."""
        try:
            out = fn()
        except OrchError as e:
            self.audit(argv, e.exit_code, "; ".join(e.lines()))
            raise
        self.audit(argv, 0, None)
        return out

    # -- the tools --------------------------------------------------------------------

    def validate(self, paths: list[str] | None = None) -> dict[str, Any]:
        extra = [self.inside(p) for p in paths or ()]
        try:
            m = api.validate(self.repo(), extra)
        except OrchError as e:
            if not e.diagnostics:
                raise
            # Problems in the manifests are validate's answer, not a failed call.
            return {"ok": False, "errors": [d.to_json() for d in e.diagnostics]}
        return {
            "ok": True,
            "errors": [],
            "files": len(m.files),
            "workflows": sorted(m.workflows),
            "projects": sorted(m.projects),
            "quotas": sorted(m.quotas),
            "step_templates": list(m.step_templates),
            "steps": sum(len(w.steps) for w in m.workflows.values()),
        }

    def plan(
        self,
        workflows: list[str] | None = None,
        project: str | None = None,
        env: str | None = None,
        force: list[str] | None = None,
        force_all: bool = False,
        params: dict[str, Any] | None = None,
        no_cache: bool = False,
    ) -> dict[str, Any]:
        return api.plan(
            self.repo(),
            workflows or None,
            project=project or None,
            env=env or None,
            force=force or None,
            force_all=force_all,
            params=params or None,
            cache=not no_cache,
        )

    def apply(
        self,
        workflows: list[str] | None = None,
        project: str | None = None,
        env: str | None = None,
        force: list[str] | None = None,
        force_all: bool = False,
        jobs: int | None = None,
        fail_fast: bool = False,
        stop: threading.Event | None = None,
        executor: str | None = None,
        dask_address: str | None = None,
        params: dict[str, Any] | None = None,
        events: Any = None,
        verb: str = "apply",
        no_cache: bool = False,
    ) -> dict[str, Any]:
        """``events``: a ``runner.events.EventSink`` given the run's progress events and,
        at the end, ``run.finished`` (the server's progress notifications). ``verb``: the
        tool, as the audit log names the call."""
        _check_run_args(jobs, executor, dask_address)
        opts = _options(
            jobs, fail_fast, events, ["mcp", verb, *(workflows or ())], stop, executor,
            dask_address, no_cache,
        )  # fmt: skip
        from runner.errors import Interrupted

        argv = ["mcp", verb, *_call_args(
            workflows=workflows, project=project, env=env, force=force, force_all=force_all,
            jobs=jobs, fail_fast=fail_fast, executor=executor, dask_address=dask_address,
            params=params, no_cache=no_cache,
        )]  # fmt: skip
        try:
            result = api.apply(
                self.repo(),
                workflows or None,
                project=project or None,
                env=env or None,
                force=force or None,
                force_all=force_all,
                options=opts,
                params=params or None,
            )
        except Interrupted as e:  # the cluster was lost: a tool error, not the server's end
            if events is not None:
                events.finished(error=f"interrupted: {e}")
            self.audit(argv, 130, f"interrupted: {e}")
            raise OrchError(f"interrupted: {e}") from None
        except OrchError as e:
            if events is not None:
                events.finished(error="; ".join(e.lines()))
            self.audit(argv, e.exit_code, "; ".join(e.lines()))
            raise
        if events is not None:
            events.finished(result)
        if result.run_id is not None or not result.ok:  # a no-op is not audited
            self.audit(argv, 0 if result.ok else 1, None)
        return _reply(result)

    def status(
        self, workflows: list[str] | None = None, project: str | None = None
    ) -> dict[str, Any]:
        repo = self.repo()
        return {
            "steps": api.status(repo, workflows or None, project or None),
            "breakers": api.breakers(repo),
        }

    def history(self, workflows: list[str] | None = None, limit: int = 20) -> dict[str, Any]:
        if limit < 1:
            raise OrchError(f"limit must be at least 1 (got {limit})")
        return {"runs": api.history(self.repo(), workflows or None, limit)}

    def logs(
        self, workflow: str, step: str, run: int | None = None, lines: int = 100
    ) -> dict[str, Any]:
        if lines < 1:
            raise OrchError(f"lines must be at least 1 (got {lines})")
        path = Path(self.inside(str(api.log_path(self.repo(), workflow, step, run))))
        tail: collections.deque[str] = collections.deque(maxlen=min(lines, MAX_LOG_LINES))
        total = 0
        try:
            with io.TextIOWrapper(open_regular(path), encoding="utf-8", errors="replace") as f:
                for line in f:
                    tail.append(line.rstrip("\n"))
                    total += 1
        except FileNotFoundError:
            raise OrchError(
                f"{workflow}/{step}: the log {path.relative_to(self.root)} is gone"
            ) from None
        except OSError as e:  # a FIFO in its place (opened without blocking), a folder
            raise OrchError(
                f"{workflow}/{step}: the log {path.relative_to(self.root)} is not a regular"
                f" file ({e.strerror}): remove it"
            ) from None
        return {
            "workflow": workflow,
            "step": step,
            "log": path.relative_to(self.root).as_posix(),
            "total_lines": total,
            "lines": list(tail),
        }

    def graph(self, workflow: str, format: str = "text", reduce: bool = False) -> dict[str, Any]:
        if format not in ("text", "dot", "mermaid"):
            raise OrchError(f"format must be text, dot or mermaid (got '{format}')")
        repo = self.repo()
        text = api.graph(repo, workflow, format, reduce)
        data = api.graph_data(repo, workflow, reduce)
        return {
            "workflow": workflow,
            "format": format,
            "graph": text,
            "steps": [
                {"step": s["name"], "needs": [u["step"] for u in s["upstream"]]}
                for s in data["steps"]
            ],
        }

    def workflow_list(self) -> dict[str, Any]:
        return {"workflows": api.workflows(self.repo())}

    def explain(self, workflow: str, step: str, env: str | None = None) -> dict[str, Any]:
        repo = self.repo()
        _check_step(repo, workflow, step)
        data = api.plan(repo, [workflow], env=env or None)
        rows = {s["step"]: s for s in data["steps"] if s["workflow"] == workflow}
        dag = repo.manifests().dags[workflow]
        me = rows[step]
        last = next(
            (r for r in api.status(repo, [workflow]) if r["step"] == step),
            None,
        )
        parts = api.explain(repo, workflow, step, env=env or None)
        return {
            "workflow": workflow,
            "step": step,
            "action": me["action"],
            "reasons": me["reasons"],
            "fingerprint": parts["fingerprint"],
            "parts": parts["parts"],
            "upstream": [
                {"step": u, "action": rows[u]["action"], "reasons": rows[u]["reasons"]}
                for u in dag.upstream.get(step, [])
                if u in rows
            ],
            "last": None
            if last is None
            else {
                k: last[k]
                for k in ("status", "ended", "exit_code", "run_id", "message", "log", "outputs")
            },
        }

    def execute_workflow(self, workflow: str, **kwargs: Any) -> dict[str, Any]:
        """``apply`` of one workflow (``orch apply WORKFLOW``); ``kwargs`` as ``apply``'s."""
        return self.apply(workflows=[workflow], verb="execute_workflow", **kwargs)

    def execute_task(self, workflow: str, step: str, **kwargs: Any) -> dict[str, Any]:
        """Run one step now, as ``orch apply WORKFLOW --force WORKFLOW/STEP`` decides: the
        step runs whatever its record says; a step it needs that is not up to date runs
        first (and a failed one stops it); what depends on it runs after it."""
        _check_step(self.repo(), workflow, step, groups=True)
        return self.apply(
            workflows=[workflow], force=[f"{workflow}/{step}"], verb="execute_task", **kwargs
        )

    def create_project(
        self,
        name: str,
        template: str,
        params: dict[str, str] | None = None,
        path: str | None = None,
    ) -> dict[str, Any]:
        argv = ["mcp", "create_project", *_call_args(
            name=name, template=template, params=params, path=path
        )]  # fmt: skip
        where = self.inside(path) if path else None
        return self.acting(
            argv, lambda: api.create_project(self.repo(), name, template, params, where, self.root)
        )

    def manage_project(
        self, action: str, name: str | None = None, env: str | None = None
    ) -> dict[str, Any]:
        """``list`` (no name), ``status``, ``archive`` or ``restore`` a project."""
        if action not in PROJECT_ACTIONS:
            raise OrchError(f"action must be one of {', '.join(PROJECT_ACTIONS)} (got {action!r})")
        if action == "list":
            return {"projects": api.projects(self.repo())}
        if not name:
            raise OrchError(f"action '{action}' needs a project name")
        if action == "status":
            return api.project_status(self.repo(), name, env or None)
        act = api.archive_project if action == "archive" else api.restore_project
        argv = ["mcp", "manage_project", *_call_args(action=action, name=name)]
        return self.acting(argv, lambda: act(self.repo(), name))

    def get_system_status(self) -> dict[str, Any]:
        return api.system_status(self.repo())

    def get_cache_status(self) -> dict[str, Any]:
        return api.cache_status(self.repo())


PROJECT_ACTIONS = ("list", "status", "archive", "restore")


def _check_run_args(jobs: int | None, executor: str | None, dask_address: str | None) -> None:
    """OrchError (one line) for an apply's arguments the CLI's parser would refuse."""
    if jobs is not None and jobs < 1:
        raise OrchError(f"jobs must be at least 1 (got {jobs})")
    if executor not in (None, "", "local", "dask"):
        raise OrchError(f"executor must be 'local' or 'dask' (got {executor!r})")
    if executor == "local" and dask_address:
        raise OrchError("dask_address needs the dask executor: drop executor 'local'")


def _options(
    jobs: int | None,
    fail_fast: bool,
    events: Any,
    argv: list[str],
    stop: threading.Event | None,
    executor: str | None,
    dask_address: str | None,
    no_cache: bool,
) -> Any:
    """The ``ApplyOptions`` of an MCP apply: progress to ``events``, no task output echoed."""
    from runner.reconcile.results import ApplyOptions

    # echo=None: task output goes to the logs only; stdout belongs to the protocol.
    return ApplyOptions(
        jobs=jobs or 0,
        fail_fast=fail_fast,
        echo=None,
        report=events,
        argv=argv,
        stop=stop,
        executor_kind=executor or None,
        dask_address=dask_address or None,
        cache=not no_cache,
    )


def _reply(result: Any) -> dict[str, Any]:
    """An apply's result as the tool's reply: each step's row with its log tail."""
    steps = []
    for r in result.results:
        row = r.to_json()
        row["log_tail"] = list(r.log_tail)
        steps.append(row)
    return {
        "run_id": result.run_id,
        "ok": result.ok,
        "duration": round(result.duration, 3),
        "counts": result.counts(),
        "steps": steps,
        # instances their fan-out no longer makes: their records were dropped
        "removed": [{"workflow": w, "step": s} for w, s in result.removed],
    }


def _check_step(repo: api.Repo, workflow: str, step: str, groups: bool = False) -> None:
    """OrchError naming the workflow's steps when ``step`` is not one of them (nor, with
    ``groups``, a fan-out step's name, which stands for all its instances)."""
    wf = repo.manifests().workflow(workflow)
    if step not in wf.step_names and not (groups and step in wf.groups):
        from runner.errors import did_you_mean

        hint = did_you_mean(step, wf.step_names) or "steps: " + ", ".join(wf.step_names)
        raise OrchError(f"workflow '{workflow}' has no step '{step}' ({hint})")


def _call_args(**kwargs: Any) -> list[str]:
    """A tool call's arguments as command-line words for the audit log: ``--name=JSON``
    for each one given (not None, False or empty), in the order given."""
    import json

    return [
        f"--{k.replace('_', '-')}" + ("" if v is True else "=" + json.dumps(v, sort_keys=True))
        for k, v in kwargs.items()
        if v not in (None, False, [], {}, "")
    ]
