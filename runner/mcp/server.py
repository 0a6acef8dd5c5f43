"""orch as an MCP server: the library API, offered as tools to AI agents over stdio.

    agent --JSON-RPC on stdin/stdout--> SDK server --worker thread--> Tools --> runner.api

Three parts, so the part that knows orch can be read and tested without the SDK:

- ``runner.mcp.tools.Tools``: plain synchronous functions over ``runner.api`` returning
  JSON-able dicts, for a repository root fixed when the server starts.
- ``runner.mcp.signatures``: what an agent sees of each tool (signature, description,
  hints), one table.
- here, ``serve``: registers each signature with the official ``mcp`` SDK (v2's
  ``MCPServer``, or v1's ``FastMCP``) under a handler that runs the ``Tools`` method of the
  same name, one call at a time in a worker thread so a long apply does not stall the
  protocol, and turns ``OrchError`` into a tool error carrying its one-line messages.

stdout is the protocol channel. Before serving, the real stdin/stdout are moved to private
descriptors and fd 0/1 point at /dev/null and stderr, so no step, hook or stray print can
read the agent's requests or write into its replies.

``mcp`` (and ``anyio``, ``pydantic``, which it brings) is imported only inside ``serve``:
importing this module, or running ``orch --version``, never loads it. No ``from __future__
import annotations`` here: the handlers carry the signatures' annotations as live objects.
"""

import contextlib
import inspect
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
    """Register every tool of ``runner.mcp.signatures``, each under a handler that runs the
    ``Tools`` method of its name in the server's worker thread."""
    from runner.mcp.signatures import specs

    s = _Server(sdk, tools)
    tool = _annotated(s.app.tool)
    for spec, hints in specs(sdk.Context):
        tool(hints)(_handler(s, spec, getattr(tools, spec.__name__)))
    return s


def _handler(s: _Server, spec: Any, fn: Any) -> Any:
    """An async tool with ``spec``'s name, docstring and signature (the SDK reads them)
    that calls ``fn`` through ``s.call``. A tool that takes ``ctx`` runs tasks: it can be
    stopped, and its progress events go to that context."""
    runs = "ctx" in inspect.signature(spec).parameters

    async def handler(**kwargs: Any) -> dict[str, Any]:
        if runs:
            ctx = kwargs.pop("ctx", None)
            return await s.call(fn, stoppable=True, progress=ctx, **kwargs)
        return await s.call(fn, **kwargs)

    handler.__name__ = handler.__qualname__ = spec.__name__
    handler.__doc__ = spec.__doc__
    handler.__annotations__ = spec.__annotations__
    handler.__signature__ = inspect.signature(spec)  # type: ignore[attr-defined]
    return handler


def _annotated(register: Any) -> Any:
    """``app.tool`` with the hints passed as ``ToolAnnotations`` where the SDK takes them
    (mcp 2, and mcp 1 from 1.9); an older SDK registers the tool without them."""
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
