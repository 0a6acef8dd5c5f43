"""orch as an MCP server: the library API, offered as tools to AI agents over stdio.

    agent --JSON-RPC on stdin/stdout--> SDK server --worker thread--> Tools --> runner.api

Two layers, so the part that knows orch can be read and tested without the SDK:

- ``Tools``: plain synchronous functions over ``runner.api`` returning JSON-able dicts. The
  repository root is fixed when the server starts; every call opens that root afresh
  (the agent edits manifests between calls, so nothing parsed is kept), and every path an
  agent passes in must resolve inside it.
- ``serve``: registers those functions with the official ``mcp`` SDK (v2's ``MCPServer``,
  or v1's ``FastMCP``), runs them one at a time in a worker thread so a long apply does
  not stall the protocol, and turns ``OrchError`` into a tool error carrying its one-line
  messages.

stdout is the protocol channel. Before serving, the real stdin/stdout are moved to private
descriptors and fd 0/1 point at /dev/null and stderr, so no step, hook or stray print can
read the agent's requests or write into its replies.

``mcp`` (and ``anyio``, ``pydantic``, which it brings) is imported only inside ``serve``:
importing this module, or running ``orch --version``, never loads it. No ``from __future__
import annotations`` here: the SDK reads the tool functions' annotations as live objects.
"""

import collections
import contextlib
import io
import os
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from runner import api
from runner.errors import OrchError

SDK_MISSING = "orch mcp needs the MCP SDK: pip install 'orch-gitops[mcp]'"
INSTRUCTIONS = """\
orch is a declarative workflow runner: Workflow manifests (YAML, committed to this git \
repository) declare steps with inputs and outputs; orch runs only the steps whose definition, \
inputs or upstream changed, whose outputs went missing, or whose last run failed, and says why. \
Typical loop: validate -> plan (see what would run and why) -> apply -> status/logs on failure. \
explain tells why one step would run. Paths are relative to the repository root."""
MAX_LOG_LINES = 5000
SHUTDOWN_GRACE = 30.0  # seconds an interrupted apply gets to end its tasks and record them


class SdkMissing(OrchError):
    """The optional MCP SDK is not installed."""

    def __init__(self) -> None:
        super().__init__(SDK_MISSING)


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
    ) -> dict[str, Any]:
        return api.plan(
            self.repo(),
            workflows or None,
            project=project or None,
            env=env or None,
            force=force or None,
            force_all=force_all,
            params=params or None,
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
    ) -> dict[str, Any]:
        """``events``: a ``runner.events.EventSink`` given the run's progress events and,
        at the end, ``run.finished`` (the server's progress notifications). ``verb``: the
        tool, as the audit log names the call."""
        from runner.reconcile.results import ApplyOptions

        if jobs is not None and jobs < 1:
            raise OrchError(f"jobs must be at least 1 (got {jobs})")
        if executor not in (None, "", "local", "dask"):
            raise OrchError(f"executor must be 'local' or 'dask' (got {executor!r})")
        if executor == "local" and dask_address:
            raise OrchError("dask_address needs the dask executor: drop executor 'local'")
        # echo=None: task output goes to the logs only; stdout belongs to the protocol.
        opts = ApplyOptions(
            jobs=jobs or 0,
            fail_fast=fail_fast,
            echo=None,
            report=events,
            argv=["mcp", verb, *(workflows or ())],
            stop=stop,
            executor_kind=executor or None,
            dask_address=dask_address or None,
        )
        from runner.errors import Interrupted

        argv = ["mcp", verb, *_call_args(
            workflows=workflows, project=project, env=env, force=force, force_all=force_all,
            jobs=jobs, fail_fast=fail_fast, executor=executor, dask_address=dask_address,
            params=params,
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
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    tail.append(line.rstrip("\n"))
                    total += 1
        except FileNotFoundError:
            raise OrchError(
                f"{workflow}/{step}: the log {path.relative_to(self.root)} is gone"
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


PROJECT_ACTIONS = ("list", "status", "archive", "restore")


def _check_step(repo: api.Repo, workflow: str, step: str, groups: bool = False) -> None:
    """OrchError naming the workflow's steps when ``step`` is not one of them (nor, with
    ``groups``, a fan-out step's name, which stands for all its instances)."""
    wf = repo.manifests().workflow(workflow)
    if step not in wf.step_names and not (groups and step in wf.groups):
        from runner.errors import did_you_mean

        hint = did_you_mean(step, wf.step_names) or "steps: " + ", ".join(wf.step_names)
        raise OrchError(f"workflow '{workflow}' has no step '{step}' ({hint})")


# -- the server -------------------------------------------------------------------------


def serve(root: Path) -> None:
    """Serve ``root`` over stdio until the client hangs up. Raises SdkMissing without the SDK.

    A client ends a session by closing our stdin, then (after a grace period) SIGTERM.
    SIGTERM and SIGHUP are handled like Ctrl-C, so an apply still running stops its tasks
    and records them instead of leaving their process trees behind; ``orch mcp`` then
    exits 143 or 129, as ``orch apply`` does.
    """
    import signal

    sdk = _load_sdk()
    server = _build(sdk, Tools(root))
    proto_in, proto_out = _take_stdio()
    # the CLI's handlers (runner.cli.main) already turn them into KeyboardInterrupt and
    # remember which, for the exit status (143, 129); called on its own, do the same
    old = {
        s: signal.signal(s, signal.default_int_handler)
        for s in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(s) is signal.SIG_DFL
    }
    try:
        sdk.anyio.run(server.app.run_stdio_async)
    finally:
        server.shutdown()
        for s, h in old.items():
            signal.signal(s, h)
        _restore_stdio(proto_in, proto_out)


class _Sdk:
    """The SDK pieces we use, from whichever major version is installed."""

    def __init__(self) -> None:
        import anyio
        import anyio.to_thread

        self.anyio = anyio
        try:  # mcp >= 2
            from mcp.server.mcpserver import Context, MCPServer
            from mcp.server.mcpserver.exceptions import ToolError

            self.make = lambda: MCPServer(
                "orch", version=_version(), instructions=INSTRUCTIONS, log_level="WARNING"
            )
        except ModuleNotFoundError as e:  # mcp 1.x (>= 1.3: FastMCP with instructions)
            if not (e.name or "").startswith("mcp.server.mcpserver"):
                raise
            from mcp.server.fastmcp import Context, FastMCP
            from mcp.server.fastmcp.exceptions import ToolError

            self.make = lambda: FastMCP("orch", instructions=INSTRUCTIONS, log_level="WARNING")
        self.ToolError = ToolError
        self.Context = Context


def _load_sdk() -> _Sdk:
    """The SDK, or SdkMissing when it is not installed (a broken install is a crash)."""
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        raise SdkMissing()
    return _Sdk()


def _version() -> str:
    from runner import __version__

    return __version__


class _Server:
    """The SDK app, and the bookkeeping that runs calls one at a time and lets a hang-up
    end applies cleanly.

    One at a time, because orch's guarantees are between processes: its per-step claims
    are POSIX record locks, which never conflict within one process (and closing any
    descriptor of the lock file drops all of the process's locks), and a status call's
    check for dead runs would take our own running apply for dead. Two ``orch`` processes
    are safe together; two threads of this one would not be.
    """

    def __init__(self, sdk: _Sdk, tools: Tools) -> None:
        self.sdk = sdk
        self.tools = tools
        self.app = sdk.make()
        self.inflight: set[tuple[threading.Event, threading.Event]] = set()
        self.lock = threading.Lock()  # guards inflight
        self.serial = threading.Lock()  # held by the one call that runs

    async def call(
        self, fn: Any, /, *, stoppable: bool = False, progress: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Run ``fn`` in a worker thread. A cancelled call (or a hang-up) sets ``stop``: a
        call still queued then does nothing, and an apply (``stoppable``) ends its tasks
        and records them. ``progress``: the call's SDK ``Context``; ``fn`` then gets
        ``events``, which sends each event as a progress notification."""
        stop, done = threading.Event(), threading.Event()
        if stoppable:
            kwargs["stop"] = stop
        if progress is not None:
            kwargs["events"] = self._progress(progress)

        def work() -> dict[str, Any]:
            try:
                with self.serial:
                    if stop.is_set():
                        return {}  # cancelled while queued; nobody reads this
                    return self.tools.masked(fn(**kwargs))
            finally:
                done.set()
                with self.lock:
                    self.inflight.discard((stop, done))

        with self.lock:
            self.inflight.add((stop, done))
        try:
            return await self.sdk.anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except self.sdk.anyio.get_cancelled_exc_class():
            stop.set()  # the thread goes on briefly: it ends its tasks and records them
            raise
        except OrchError as e:
            raise self.sdk.ToolError(self.tools.masked("\n".join(e.lines()))) from None
        except Exception as e:
            raise self.sdk.ToolError(self.tools.masked(_crash(self.tools.root, e))) from None

    def _progress(self, ctx: Any) -> Any:
        """An ``EventSink`` sending each event (docs/events.md) as MCP
        ``notifications/progress`` for the call's ``progressToken`` (none sent when the
        client gave none): ``progress`` counts the events, ``message`` is the event's JSON
        line. Called from the worker thread; a client gone away loses the events only."""
        import anyio.from_thread
        import anyio.lowlevel

        from runner.events import EventSink

        repo = self.tools.repo()  # one catalog's secrets for the whole apply
        sent = [0]
        # task events come from the apply's own task threads, not anyio's worker: they
        # reach the event loop through its token (anyio >= 4.11; older: worker-thread
        # events only)
        token = getattr(anyio.lowlevel, "current_token", lambda: None)()
        kw = {"token": token} if token is not None else {}

        def send(line: str) -> None:
            sent[0] += 1
            with contextlib.suppress(Exception):
                anyio.from_thread.run(ctx.report_progress, float(sent[0]), None, line, **kw)

        return EventSink(send, lambda v: api.mask(repo, v))

    def shutdown(self) -> None:
        """Stop what still runs, and give it a bounded time to record its tasks."""
        import time

        with self.lock:
            pending = list(self.inflight)
        for stop, _ in pending:
            stop.set()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for _, done in pending:
            done.wait(max(0.0, deadline - time.monotonic()))


def _call_args(**kwargs: Any) -> list[str]:
    """A tool call's arguments as command-line words for the audit log: ``--name=JSON``
    for each one given (not None, False or empty), in the order given."""
    import json

    return [
        f"--{k.replace('_', '-')}" + ("" if v is True else "=" + json.dumps(v, sort_keys=True))
        for k, v in kwargs.items()
        if v not in (None, False, [], {}, "")
    ]


def _crash(root: Path, e: BaseException) -> str:
    """One line for the agent; the traceback goes where the CLI puts it."""
    import traceback

    msg = f"internal error: {type(e).__name__}: {e}"
    log = root / ".orch" / "logs" / "crash.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"orch {_version()}: mcp\n")
            traceback.print_exception(type(e), e, e.__traceback__, file=f)
        msg += f" (traceback in {log.relative_to(root)}; please report it)"
    except OSError:
        pass
    return msg


def _build(sdk: _Sdk, tools: Tools) -> _Server:
    """Register the tools. Annotations are real types here (pydantic reads them for the
    input schema), so they are evaluated in this scope rather than as strings."""
    from typing import Annotated, Literal

    from pydantic import Field

    s = _Server(sdk, tools)
    tool = _annotated(s.app.tool)
    Context = sdk.Context

    Names = Annotated[
        list[str] | None,
        Field(description="workflow names to act on (default: all)"),
    ]
    Project = Annotated[str | None, Field(description="only the workflows of this project")]
    Env = Annotated[
        str | None, Field(description="project environment whose params to use, e.g. dev, prod")
    ]
    Force = Annotated[
        list[str] | None,
        Field(description="steps to treat as changed, as WORKFLOW/STEP or STEP"),
    ]
    ForceAll = Annotated[bool, Field(description="treat every selected step as changed")]
    Params = Annotated[
        dict[str, str | int | float | bool | list[Any] | dict[str, Any]] | None,
        Field(
            description="workflow params to set for this run, as --param KEY=VALUE: text is "
            "typed as the param's value in the manifest; other JSON values are used as given"
        ),
    ]
    Workflow = Annotated[str, Field(description="workflow name")]
    Step = Annotated[str, Field(description="step name within the workflow")]

    @tool(READ)
    async def validate(
        paths: Annotated[
            list[str] | None,
            Field(description="extra manifest files to check, relative to the repository root"),
        ] = None,
    ) -> dict[str, Any]:
        """Check every manifest in the repository. Returns ok, and each problem as
        path/line/col/where/message/hint."""
        return await s.call(tools.validate, paths=paths)

    @tool(READ)
    async def plan(
        workflows: Names = None,
        project: Project = None,
        env: Env = None,
        force: Force = None,
        force_all: ForceAll = False,
        params: Params = None,
    ) -> dict[str, Any]:
        """What apply would run, per step: action (run, may-run, up-to-date) and the reasons
        (never ran, input changed: FILE, definition changed, upstream will run: STEP, ...).
        Runs nothing."""
        return await s.call(
            tools.plan,
            workflows=workflows,
            project=project,
            env=env,
            force=force,
            force_all=force_all,
            params=params,
        )

    @tool(RUN)
    async def apply(
        workflows: Names = None,
        project: Project = None,
        env: Env = None,
        force: Force = None,
        force_all: ForceAll = False,
        params: Params = None,
        jobs: Annotated[int | None, Field(description="tasks at once (default: CPU count)")] = None,
        fail_fast: Annotated[
            bool, Field(description="start nothing new after the first failure")
        ] = False,
        executor: Annotated[
            Literal["local", "dask"] | None,
            Field(
                description="where tasks run: this machine or a Dask cluster (default: "
                "the config's executor, else local)"
            ),
        ] = None,
        dask_address: Annotated[
            str | None,
            Field(
                description="the Dask scheduler, tcp://HOST:PORT (default: $ORCH_DASK_ADDRESS, "
                "the config's executor.address, else a local cluster for the run); implies dask"
            ),
        ] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Run the steps that changed or failed, in dependency order, and record them.
        Returns ok, run_id, counts, and per step: status, reasons, exit_code, attempts,
        message, log path and the last lines of its output (log_tail). With a
        progressToken, each event of the run (docs/events.md) is a progress notification
        whose message is the event's JSON."""
        return await s.call(
            tools.apply,
            stoppable=True,
            progress=ctx,
            workflows=workflows,
            project=project,
            env=env,
            force=force,
            force_all=force_all,
            jobs=jobs,
            fail_fast=fail_fast,
            executor=executor,
            dask_address=dask_address,
            params=params,
        )

    @tool(READ)
    async def status(workflows: Names = None, project: Project = None) -> dict[str, Any]:
        """The recorded state of each step (succeeded, failed, never-ran, ...), with its last
        exit code, duration, outputs and log path; and the circuit breakers."""
        return await s.call(tools.status, workflows=workflows, project=project)

    @tool(READ)
    async def history(
        workflows: Names = None,
        limit: Annotated[int, Field(description="how many runs, newest first")] = 20,
    ) -> dict[str, Any]:
        """Past runs, newest first, each with its tasks (attempts), statuses and exit codes."""
        return await s.call(tools.history, workflows=workflows, limit=limit)

    @tool(READ)
    async def logs(
        workflow: Workflow,
        step: Step,
        run: Annotated[
            int | None, Field(description="run id (default: the latest run of the step)")
        ] = None,
        lines: Annotated[int, Field(description="how many lines from the end")] = 100,
    ) -> dict[str, Any]:
        """The last lines of a step's task log (its output, and orch's notes on it)."""
        return await s.call(tools.logs, workflow=workflow, step=step, run=run, lines=lines)

    @tool(READ)
    async def graph(
        workflow: Workflow,
        format: Annotated[str, Field(description="text, dot or mermaid")] = "text",
        reduce: Annotated[
            bool, Field(description="leave out each edge a longer path implies")
        ] = False,
    ) -> dict[str, Any]:
        """A workflow's DAG: each step with the steps it needs, and a rendering."""
        return await s.call(tools.graph, workflow=workflow, format=format, reduce=reduce)

    @tool(READ)
    async def workflow_list() -> dict[str, Any]:
        """Every workflow: name, project, manifest file, number of steps, description."""
        return await s.call(tools.workflow_list)

    @tool(READ)
    async def explain(workflow: Workflow, step: Step, env: Env = None) -> dict[str, Any]:
        """Why this step would (or would not) run now: its plan action and reasons, every
        part of its fingerprint recorded -> now (``parts``: command, params, environment
        variables by keyed digest, input files, upstream results; secrets masked), those
        of the steps it needs, and its last recorded result."""
        return await s.call(tools.explain, workflow=workflow, step=step, env=env)

    Jobs = Annotated[int | None, Field(description="tasks at once (default: CPU count)")]
    FailFast = Annotated[bool, Field(description="start nothing new after the first failure")]

    @tool(RUN)
    async def execute_workflow(
        workflow: Workflow,
        env: Env = None,
        force_all: ForceAll = False,
        params: Params = None,
        jobs: Jobs = None,
        fail_fast: FailFast = False,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Apply one workflow: run its steps that changed or failed, in dependency order,
        and record them. Answers as apply does."""
        return await s.call(
            tools.execute_workflow,
            stoppable=True,
            progress=ctx,
            workflow=workflow,
            env=env,
            force_all=force_all,
            params=params,
            jobs=jobs,
            fail_fast=fail_fast,
        )

    @tool(RUN)
    async def execute_task(
        workflow: Workflow,
        step: Step,
        env: Env = None,
        params: Params = None,
        jobs: Jobs = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Run one step now, even if it is up to date (as orch apply WORKFLOW --force
        WORKFLOW/STEP): a step it needs that is not up to date runs first, and the steps
        that depend on it run after it. Answers as apply does."""
        return await s.call(
            tools.execute_task,
            stoppable=True,
            progress=ctx,
            workflow=workflow,
            step=step,
            env=env,
            params=params,
            jobs=jobs,
        )

    @tool(CREATE)
    async def create_project(
        name: Annotated[
            str, Field(description="project name: letters, digits, '_' and '-', at most 100")
        ],
        template: Annotated[str, Field(description="project template (see orch template list)")],
        params: Annotated[
            dict[str, str] | None, Field(description="template params, KEY -> VALUE")
        ] = None,
        path: Annotated[
            str | None,
            Field(description="folder to lay it out in, relative to the root (default: NAME)"),
        ] = None,
    ) -> dict[str, Any]:
        """Lay out a new project from a template: all files or none, never replacing one.
        Returns the files written (paths relative to the root) and its workflows."""
        return await s.call(
            tools.create_project, name=name, template=template, params=params, path=path
        )

    @tool(MANAGE)
    async def manage_project(
        action: Annotated[
            Literal["list", "status", "archive", "restore"],
            Field(
                description="list every project; status of one; archive one (pack it into "
                ".orch/archive/ and remove its files); restore an archived one"
            ),
        ],
        name: Annotated[
            str | None, Field(description="the project (every action but list)")
        ] = None,
        env: Annotated[
            str | None, Field(description="status only: the environment whose results to show")
        ] = None,
    ) -> dict[str, Any]:
        """Projects: list them, show one's recorded state, archive or restore one."""
        return await s.call(tools.manage_project, action=action, name=name, env=env)

    @tool(READ)
    async def get_system_status() -> dict[str, Any]:
        """The host (CPU, memory, load), every quota with what runners hold of it, running
        tasks, circuit breakers, recent task metrics and health checks."""
        return await s.call(tools.get_system_status)

    return s


# MCP tool annotations (spec 2025-03-26, ``ToolAnnotations``): hints a client shows or uses
# to ask the user before a call. The READ tools only read the repository and the
# recorded state (status and history also close the rows of runs whose process is gone,
# which is bookkeeping, not a change a user made). apply, execute_workflow and
# execute_task run the manifests' commands: they may change or delete files and reach the
# network, and a failed step runs again on the next call, so they are neither read-only
# nor idempotent.
READ = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
RUN = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": False,
    "openWorldHint": True,
}
# create_project only adds files (it never replaces one); the same call again is refused
# (the name is taken) and changes nothing.
CREATE = {
    "readOnlyHint": False,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}
# manage_project's archive removes a project's files from the work tree (they are kept in
# .orch/archive/); archiving or restoring the same project twice is refused the second time.
MANAGE = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": True,
    "openWorldHint": False,
}


def _annotated(register: Any) -> Any:
    """``app.tool`` with the hints passed as ``ToolAnnotations`` where the SDK takes them
    (mcp 2, and mcp 1 from 1.9); an older SDK registers the tool without them."""
    import inspect

    try:
        from mcp.types import ToolAnnotations
    except ImportError:  # pragma: no cover - SDKs before the 2025-03-26 spec
        ToolAnnotations = None  # noqa: N806
    takes = ToolAnnotations is not None and "annotations" in inspect.signature(register).parameters

    def tool(hints: dict[str, bool]) -> Any:
        if not takes:  # pragma: no cover - old SDKs
            return register()
        # the wire names: mcp 1 declares them so, mcp 2 takes them as aliases
        return register(annotations=ToolAnnotations.model_validate(hints))

    return tool


def _take_stdio() -> tuple[int, int]:
    """Move the protocol off fd 0/1: the SDK gets private copies, and fd 0/1 become
    /dev/null and stderr for everything else in the process and its children."""
    sys.stdout.flush()
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    # The SDK's stdio transport takes ``sys.stdin.buffer`` and ``sys.stdout.buffer`` when it
    # starts (v1 and v2 alike; v2 serves them as they are, since they are not fd 0/1).
    wire_in = open(proto_in, "rb", closefd=False)  # noqa: SIM115 - lives as long as the server
    wire_out = open(proto_out, "wb", closefd=False)  # noqa: SIM115
    sys.stdin = io.TextIOWrapper(wire_in, encoding="utf-8")
    sys.stdout = _Console(wire_out)  # type: ignore[assignment]
    return proto_in, proto_out


class _Console:
    """``sys.stdout`` while serving: text printed by anyone goes to stderr, and only
    ``.buffer``, which the SDK alone uses, reaches the protocol channel."""

    def __init__(self, buffer: BinaryIO) -> None:
        self.buffer = buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.stderr, name)


def _restore_stdio(*fds: int) -> None:
    sys.stdin = sys.__stdin__
    sys.stdout = sys.__stdout__
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
