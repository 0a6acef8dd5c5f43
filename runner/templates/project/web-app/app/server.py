"""The routes and the server.

``respond`` is a pure function from a request path to a response, so most of the app is
tested without a socket; ``make_server`` wires it to ``http.server``.

    GET /              an HTML page with the app's title
    GET /health        {"status": "ok", "title": ..., "port": ..., "debug": ...}
    GET /api/greet     {"greeting": "Hello, NAME!"}  (?name=NAME, default "world")
"""

from __future__ import annotations

import argparse
import html
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from app.settings import Settings, load_settings

Response = tuple[int, str, bytes]


def _json(status: int, data: object) -> Response:
    return status, "application/json", (json.dumps(data, sort_keys=True) + "\n").encode()


def respond(target: str, settings: Settings) -> Response:
    """The response to ``GET target``: (status, content type, body)."""
    url = urlsplit(target)
    if url.path == "/":
        title = html.escape(settings.title)
        page = f"<!doctype html>\n<title>{title}</title>\n<h1>{title}</h1>\n"
        return 200, "text/html; charset=utf-8", page.encode()
    if url.path == "/health":
        return _json(200, {"status": "ok", **settings.to_json()})
    if url.path == "/api/greet":
        name = parse_qs(url.query).get("name", ["world"])[0].strip() or "world"
        return _json(200, {"greeting": f"Hello, {name}!"})
    return _json(404, {"error": f"no route for {url.path}"})


def make_server(
    settings: Settings, host: str = "127.0.0.1", port: int | None = None
) -> ThreadingHTTPServer:
    """A server for ``settings`` (``port`` overrides theirs; 0 picks a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            status, content_type, body = respond(self.path, settings)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            if settings.debug:
                sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return ThreadingHTTPServer((host, settings.port if port is None else port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the app.")
    parser.add_argument("--settings", type=Path, help="a settings JSON file (default: built in)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="override the settings' port (0: any free port)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args(argv)
    settings = load_settings(args.settings)
    server = make_server(settings, args.host, args.port)
    port = server.server_address[1]
    if args.port_file:
        partial = args.port_file.with_name(args.port_file.name + ".partial")
        partial.write_text(f"{port}\n", encoding="utf-8")
        partial.replace(args.port_file)  # whole or absent: a reader never sees half a number
    print(f"{settings.title}: listening on http://{args.host}:{port}/", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
