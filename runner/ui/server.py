"""The ``orch ui`` web app: a Starlette application over ``runner.api``, read-only unless
``allow_actions``.

Security model (as Jupyter's): a random token, given once in the printed URL, is needed
by every request (the ``token`` query parameter, then a cookie set from it; or the
``X-Orch-Token`` header); anything else gets 403. A POST also needs the page's CSRF token
(a form field or the ``X-Orch-CSRF`` header), an HMAC of the access token, and is refused
unless the server was started with ``--allow-actions``. Pages are Jinja2 templates with
autoescape on: every repository string (step names, outputs, reasons, logs) is text.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner import api
from runner.errors import OrchError, StateError
from runner.status import LIVE
from runner.ui import actions, views
from runner.ui.ansi import to_html
from runner.ui.live import Live

HERE = Path(__file__).resolve().parent
HEARTBEAT = 15.0  # seconds between SSE comments, so proxies keep the stream open
RECHECK = 2.0  # seconds between a log tail's reads of its task's row, changes or not
# behind the escaping: only our own script runs (no inline script or handler), no
# framing (clickjacking the action buttons), no Referer carrying the first URL's token
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"orch-ui-csrf", hashlib.sha256).hexdigest()


def same(given: str | None, secret: str) -> bool:
    """``given`` is ``secret``, compared in constant time (as bytes: ``compare_digest``
    refuses a str with non-ASCII characters, which any request may send)."""
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


def cookie_name(token: str) -> str:
    """One cookie per server: cookies ignore ports, and two ``orch ui`` may run at once."""
    return "orch_ui_" + hashlib.sha256(token.encode()).hexdigest()[:12]


class TokenGate:
    """ASGI middleware: 403 for a request without the token; sets the cookie from a
    ``?token=`` so the links a page holds need none."""

    def __init__(self, app: ASGIApp, token: str, ui: UI | None = None):
        self.app = app
        self.token = token
        self.cookie = cookie_name(token)
        self.ui = ui  # the app's state, for the server that runs it (runner.cli.ui)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        req = Request(scope)
        ok_query = same(req.query_params.get("token"), self.token)
        ok = ok_query or any(
            same(v, self.token)
            for v in (req.cookies.get(self.cookie), req.headers.get("x-orch-token"))
        )
        if not ok:
            resp = Response("403: this orch ui needs its token (see the URL it printed)\n", 403)
            await resp(scope, receive, send)
            return
        if not ok_query:
            await self.app(scope, receive, send)
            return
        cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _fmt_bytes(n: float | None) -> str:
    if not n:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _fmt_time(t: float | None) -> str:
    if not t:
        return "—"
    from datetime import datetime

    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "pages")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=_fmt_duration, bytes=_fmt_bytes, when=_fmt_time, ansi=to_html)
    env.globals.update(urlencode=urlencode)
    return env


class UI:
    """The app's state: the repository, the token, the live reader, the actions."""

    def __init__(self, root: Path, token: str, allow_actions: bool, interval: float = 0.15):
        self.root = root
        self.token = token
        self.csrf = csrf_for(token)
        self.allow_actions = allow_actions
        self.live = Live(root, interval)
        self.env = _env()
        self.actions = actions.Actions(root)
        self.read_only = not api.writable(views.repo_at(root))

    def warm(self) -> None:
        """Pay at start what the first page would: the templates compiled, networkx (the
        layout) and the planner imported; so the first page is as quick as the next."""
        for name in ("overview.html", "workflow.html", "plan.html", "run.html", "task.html"):
            self.env.get_template(name)
        import networkx  # noqa: F401

        import runner.reconcile.flow  # noqa: F401

    def page(self, template: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(
            request=request,
            csrf=self.csrf,
            allow_actions=self.allow_actions,
            read_only=self.read_only,
            root=str(self.root),
            jobs=self.actions.jobs(),
            **ctx,
        )
        return HTMLResponse(html, status, headers=PAGE_HEADERS)

    def error(self, request: Request, e: OrchError, status: int = 404) -> HTMLResponse:
        """The error page: ``status`` (404: no such thing), or 409 for a page that needs
        the manifests while they do not load (their diagnostics) or a state that cannot be
        used (``StateError``): the name asked for may well exist, and the request is fine;
        the repository is not, until it is fixed (the lines say how)."""
        if status in (404, 500) and (e.diagnostics or isinstance(e, StateError)):
            status = 409
        return self.page(
            "error.html", request, status, lines=api.mask(views.repo_at(self.root), e.lines())
        )

    # -- pages ------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        repo = views.repo_at(self.root)
        try:
            data = await asyncio.to_thread(views.overview, repo)
        except OrchError as e:
            return self.error(request, e, 500)
        return self.page("overview.html", request, **data)

    async def workflow(self, request: Request) -> Response:
        repo = views.repo_at(self.root)
        try:
            data = await asyncio.to_thread(views.workflow, repo, request.path_params["name"])
        except OrchError as e:
            return self.error(request, e)
        return self.page("workflow.html", request, **data)

    async def plan(self, request: Request) -> Response:
        """The workflow page's plan, a fragment its script fetches (planning hashes the
        inputs: the DAG is drawn before it is done)."""
        repo = views.repo_at(self.root)
        try:
            data = await asyncio.to_thread(views.plan, repo, request.path_params["name"])
        except OrchError as e:
            return self.error(request, e)
        return self.page("plan.html", request, **data)

    async def step(self, request: Request) -> Response:
        """A DAG node's link: the step's last task, or a page saying it has none."""
        wf, step = request.query_params.get("workflow", ""), request.query_params.get("step", "")
        repo = views.repo_at(self.root)
        try:
            t = await asyncio.to_thread(api.log_task, repo, wf, step)
        except OrchError as e:
            return self.error(request, e)
        return await self._task(request, int(t["id"]))

    async def run(self, request: Request) -> Response:
        repo = views.repo_at(self.root)
        try:
            data = await asyncio.to_thread(views.run, repo, int(request.path_params["id"]))
        except OrchError as e:
            return self.error(request, e)
        return self.page("run.html", request, **data)

    async def task(self, request: Request) -> Response:
        return await self._task(request, int(request.path_params["id"]))

    async def _task(self, request: Request, task_id: int) -> Response:
        page = request.query_params.get("page")
        repo = views.repo_at(self.root)
        try:
            data = await asyncio.to_thread(views.task, repo, task_id, _number(page))
        except OrchError as e:
            return self.error(request, e)
        return self.page("task.html", request, **data)

    async def history(self, request: Request) -> Response:
        repo = views.repo_at(self.root)
        wf = request.query_params.get("workflow") or None
        try:
            data = await asyncio.to_thread(views.history, repo, wf)
        except OrchError as e:
            return self.error(request, e, 500)
        return self.page("history.html", request, **data)

    # -- live -------------------------------------------------------------------------

    async def state(self, request: Request) -> Response:
        return Response(self.live.message(), media_type="application/json")

    async def events(self, request: Request) -> Response:
        """Server-sent events: the snapshot now, then one per change the reader sees."""
        q = self.live.subscribe()

        async def stream() -> Any:
            try:
                yield f"event: state\ndata: {self.live.message()}\n\n"
                while True:
                    try:
                        msg = await asyncio.wait_for(q.get(), HEARTBEAT)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if not msg:  # the server is stopping
                        return
                    yield f"event: state\ndata: {msg}\n\n"
            finally:
                self.live.unsubscribe(q)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_NO_CACHE)

    async def tail(self, request: Request) -> Response:
        """A task's log from byte ``offset`` on, as SSE ``log`` events of HTML (whole
        lines, masked, colours rendered) while the task runs; ``end`` when it ended."""
        task_id = int(request.path_params["id"])
        offset = _number(request.query_params.get("offset")) or 0
        repo = views.repo_at(self.root)
        try:
            t = await asyncio.to_thread(api.task, repo, task_id)
        except OrchError as e:
            return self.error(request, e)
        return StreamingResponse(
            _tail(repo, task_id, t, offset, self.live),
            media_type="text/event-stream",
            headers=_NO_CACHE,
        )

    # -- actions ----------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        if not self.allow_actions:
            return JSONResponse({"error": "actions are off: start orch ui --allow-actions"}, 403)
        form = await _form(request)
        given = form.get("csrf") or request.headers.get("x-orch-csrf") or ""
        if not same(given, self.csrf):
            return JSONResponse({"error": "CSRF token missing or wrong: reload the page"}, 403)
        kind = request.path_params["kind"]
        fields = {k: v for k, v in form.items() if k != "csrf"}
        try:
            out = await asyncio.to_thread(self.actions.start, kind, fields)
        except OrchError as e:
            return JSONResponse(
                {"error": "; ".join(api.mask(views.repo_at(self.root), e.lines()))}, 409
            )
        return JSONResponse(api.mask(views.repo_at(self.root), out), 202)

    async def jobs(self, request: Request) -> Response:
        return JSONResponse(api.mask(views.repo_at(self.root), self.actions.jobs()))


def _number(text: str | None) -> int | None:
    """A page or byte offset from a URL: ASCII digits, at most 18 (a file offset fits
    64 bits; ``int`` refuses '²', which ``isdigit`` accepts); else None."""
    if text and text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


async def _form(request: Request) -> dict[str, str]:
    """A POST's urlencoded fields (what the pages' script sends), read without
    python-multipart (starlette's ``request.form()`` needs it even for these); at most
    64 KiB, the first value of each name; any other body reads as no fields."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 65536:
            return {}
    out: dict[str, str] = {}
    for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        out.setdefault(k, v)
    return out


_NO_CACHE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def _tail(repo: api.Repo, task_id: int, t: dict[str, Any], offset: int, reader: Live) -> Any:
    """The log from ``offset`` on, whole lines while the task runs, the rest once it
    ended. The file is read every ``reader.interval``; the task's row only when the one
    reader saw the state change (no query per open tab and tick)."""
    live = t["status"] in LIVE
    seq, quiet, since = reader.seq, 0.0, 0.0
    while True:
        chunk, end = await asyncio.to_thread(_read_tail, repo, t, offset, live)
        if end > offset:
            offset = end
            html = str(to_html(api.mask(repo, chunk.decode("utf-8", "replace"))))
            yield f"event: log\ndata: {json.dumps({'html': html, 'offset': offset})}\n\n"
            quiet = 0.0
            continue
        if not live:
            yield f"event: end\ndata: {json.dumps({'status': t['status']})}\n\n"
            return
        if reader.closing.is_set():
            return
        await asyncio.sleep(reader.interval)
        quiet += reader.interval
        if quiet >= HEARTBEAT:
            yield ": keep-alive\n\n"
            quiet = 0.0
        since += reader.interval
        if reader.seq != seq or since >= RECHECK:  # RECHECK: a runner killed writes nothing
            seq, since = reader.seq, 0.0
            t = await asyncio.to_thread(api.task, repo, task_id)
            live = t["status"] in LIVE


def _read_tail(repo: api.Repo, t: dict[str, Any], offset: int, live: bool) -> tuple[bytes, int]:
    """The log's next part from ``offset``, masked, and where it ends: whole lines while
    the task runs (``views.read_part``); (b"", offset) while there is no log."""
    f = views.open_log(repo, t.get("log_path"))
    if f is None:
        return b"", offset
    with f:
        size = os.fstat(f.fileno()).st_size
        return views.read_part(repo, f, offset, offset + views.LOG_PAGE, size, whole_lines=live)


def build(root: Path, token: str, allow_actions: bool = False, interval: float = 0.15) -> TokenGate:
    """The ASGI app for the repository at ``root``; its live reader runs while the app's
    lifespan does (``uvicorn``, or ``with TestClient(app)``)."""
    ui = UI(root, token, allow_actions, interval)
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await asyncio.to_thread(ui.live.start)
        await asyncio.to_thread(ui.warm)
        try:
            yield
        finally:
            ui.live.stop()

    routes = [
        Route("/", ui.overview),
        Route("/workflow/{name}", ui.workflow),
        Route("/workflow/{name}/plan", ui.plan),
        Route("/step", ui.step),
        Route("/run/{id:int}", ui.run),
        Route("/task/{id:int}", ui.task),
        Route("/task/{id:int}/tail", ui.tail),
        Route("/history", ui.history),
        Route("/events", ui.events),
        Route("/state", ui.state),
        Route("/jobs", ui.jobs),
        Route("/actions/{kind}", ui.act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return TokenGate(Starlette(routes=routes, lifespan=lifespan), token, ui)
