"""orch as an MCP server: the library API, offered as tools to AI agents over stdio.

    agent --JSON-RPC on stdin/stdout--> SDK server --worker thread--> Tools --> runner.api

Two layers, so the part that knows orch can be read and tested without the SDK:

- ``runner.mcp.tools.Tools``: plain synchronous functions over ``runner.api`` returning
  JSON-able dicts, for a repository root fixed when the server starts.
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

import contextlib
import io
import os
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from runner import api
from runner.errors import OrchError
from runner.mcp.tools import Tools

SDK_MISSING = "orch mcp needs the MCP SDK: pip install 'orch-gitops[mcp]'"
INSTRUCTIONS = """\
orch is a declarative workflow runner: Workflow manifests (YAML, committed to this git \
repository) declare steps with inputs and outputs; orch runs only the steps whose definition, \
inputs or upstream changed, whose outputs went missing, or whose last run failed, and says why. \
Typical loop: validate -> plan (see what would run and why) -> apply -> status/logs on failure. \
explain tells why one step would run. Paths are relative to the repository root."""
SHUTDOWN_GRACE = 30.0  # seconds an interrupted apply gets to end its tasks and record them


class SdkMissing(OrchError):
    """The optional MCP SDK is not installed."""

    def __init__(self) -> None:
        super().__init__(SDK_MISSING)


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
