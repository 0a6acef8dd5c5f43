"""Start the built archive as a real server and check it answers as configured.

The archive must hash to what ``build`` reported; started with ``--port 0`` (any free port,
so a prod port like 80 needs no privileges) it must answer ``/health`` with the settings it
was built with and serve its title on ``/``. The server is stopped whatever happens.

Usage: python3 tools/smoke.py dist/dev/app.pyz --sha256 HEX --port 8080 --debug true
Passes on ``title=`` (what the running app reports).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from orch_output import emit

STARTUP = 20.0  # seconds the server may take to start listening


def wait_for_port(port_file: Path, server: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if port_file.exists():
            return int(port_file.read_text(encoding="utf-8"))
        if server.poll() is not None:
            raise SystemExit(f"smoke: the server exited with {server.returncode} before listening")
        time.sleep(0.02)
    raise SystemExit(f"smoke: the server did not listen within {STARTUP:.0f}s")


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return reply.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--port", type=int, required=True, help="the port it was built with")
    parser.add_argument("--debug", choices=["true", "false"], required=True)
    args = parser.parse_args()
    if hashlib.sha256(args.archive.read_bytes()).hexdigest() != args.sha256:
        print(f"smoke: {args.archive} changed since build reported it", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen(
            [sys.executable, str(args.archive), "--port", "0", "--port-file", str(port_file)]
        )
        try:
            port = wait_for_port(port_file, server)
            health = json.loads(get(port, "/health"))
            home = get(port, "/").decode()
        finally:
            server.terminate()
            server.wait(timeout=10)
    problems = []
    if health.get("status") != "ok":
        problems.append(f"/health says {health}")
    if health.get("port") != args.port:
        problems.append(f"built with port {args.port}, its settings say {health.get('port')}")
    if str(health.get("debug")).lower() != args.debug:
        problems.append(f"built with debug={args.debug}, running with debug={health.get('debug')}")
    if "<h1>" not in home:
        problems.append("/ has no heading")
    for problem in problems:
        print(f"smoke: {problem}", file=sys.stderr)
    if problems:
        return 1
    port_note = f"port {health['port']} in its settings"
    print(f"smoke: {args.archive} serves {health['title']!r} ({port_note})")
    emit(title=health["title"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
