"""orch ui: serve the local web dashboard (runner/ui/) until Ctrl-C.

Needs the ``[ui]`` extra (starlette, uvicorn), imported only here: ``orch --version`` and
a no-op plan never load them. Prints the URL with its access token, as Jupyter does.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import signal
import socket
import sys
from typing import Any

from runner.cli.common import repo_from
from runner.errors import OrchError

INSTALL_HINT = "orch ui needs starlette and uvicorn: pip install 'orch-gitops[ui]'"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    """The host for the printed URL: a wildcard address (``0.0.0.0``, ``::``) listens on
    every interface but is no address a browser may open (Chrome refuses 0.0.0.0), so
    the URL names the loopback one, as Jupyter's does; an IPv6 address in brackets."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "[::1]"
    return f"[{host}]" if ip.version == 6 else host


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port); OrchError when taken."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        raise OrchError(
            f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
            "pick another --port, or --port 0 for a free one"
        ) from None
    return sock


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from runner.ui.server import build
    except ImportError:
        raise OrchError(INSTALL_HINT) from None
    repo = repo_from(args)
    from runner.workspace import NotARepository

    try:
        repo.manifests()  # a folder that is no repository is refused before serving
    except NotARepository:
        raise
    except OrchError:
        pass  # broken manifests: the pages say what is wrong until they are fixed
    token = secrets.token_urlsafe(24)
    app = build(repo.root, token, allow_actions=args.allow_actions)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown_host = _url_host(args.host)
    url = f"http://{shown_host}:{port}/?token={token}"
    # a backstop: a request still open 2 s after Ctrl-C is cancelled
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    ui = app.ui
    assert ui is not None

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            ui.live.close()  # the open event streams end, so the tabs are not waited for
            ui.actions.stop.set()  # an apply started from a page stops as at Ctrl-C
            super().handle_exit(sig, frame)

    server = Server(config)
    # uvicorn catches SIGINT/SIGTERM only once it runs: one arriving before (while the URL
    # is printed) raised KeyboardInterrupt where asyncio ignores it, and the server ran on
    got: list[int] = []

    def early(sig: int, frame: Any) -> None:
        got.append(sig)
        server.handle_exit(sig, frame)

    before = {sig: signal.signal(sig, early) for sig in (signal.SIGINT, signal.SIGTERM)}
    if not _is_loopback(args.host):
        can = "read this repository's state" + (" and run it" if args.allow_actions else "")
        print(
            f"orch ui: warning: listening on {args.host}, reachable from other machines; "
            f"anyone with the URL can {can}",
            file=sys.stderr,
        )
    print(f"orch ui: serving {repo.root}{' (actions on)' if args.allow_actions else ''}")
    print(f"orch ui: open {url}", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        ui.actions.stop.set()
        ui.actions.wait(10)  # the apply records its end and its audit row
        sock.close()
    if signal.SIGTERM in got:  # now to orch's own handler: exit 143, as any orch ended so
        signal.raise_signal(signal.SIGTERM)
    return 0
