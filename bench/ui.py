"""orch ui benchmark: the workflow page of a 1,000-step workflow, and live-event latency.

    python bench/ui.py [--steps 1000] [--reps 10] [--events 10] [--no-browser]

One generated repository (``gen.py``, shape ``layered``, N trivial steps) with one more
step, ``probe``, in the same workflow::

    probe   run: wait for .probe/go; date +%s%N > .probe/ended      (forced each rep)

The workflow is applied once (so every node has a status), then ``orch ui --port 0`` is
started once and its printed URL (with the token) read.

- *workflow page, HTTP GET* and *plan fragment, HTTP GET* (``/workflow/WF/plan``, which
  the page fetches after the DAG is drawn): a fresh connection per request
  (``http.client``), from the request to the last byte of the body: the server's work
  plus the transfer. One untimed warm-up. A ``Server-Timing`` header is kept if sent.
- *workflow page, browser load* (headless Chromium at /usr/bin/chromium under
  Playwright, when both are here): ``page.goto`` until the ``load`` event: render,
  transfer, parse, styles, scripts, layout; *... and its plan shown*: until the plan
  region holds its table.
- *event -> SSE client*: one ``/events`` stream read by a thread of this process. Each
  rep forces ``probe`` with ``orch apply --force WF/probe``; once a snapshot says it is
  ``running`` and ``--hold`` (1 s) has passed -- a task that ran a while, so the page's
  own work for ``running`` is done -- ``.probe/go`` is created, the step writes its own
  end time (``date +%s%N``, CLOCK_REALTIME, its last command) and exits. The figure is
  the wall clock when the first snapshot saying ``succeeded`` is parsed, minus that end
  time: the runner recording the end, the server's reader noticing the state changed,
  reading every step's status, and the stream carrying it.
- *event -> browser*: the same, seen by the open workflow page: a ``MutationObserver``
  on the probe node notes ``Date.now()`` when its ``data-status`` becomes
  ``succeeded`` (so the page's own update of 1,000 nodes is inside the figure).

Targets (issue #16): page <= 1 s; event <= 500 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import generate  # noqa: E402
from harness import (  # noqa: E402
    Result,
    default_report_path,
    environment,
    git,
    orch_command,
    print_table,
    wait_until,
    write_report,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
URL_RE = re.compile(r"http://127\.0\.0\.1:\d+/\S*token=\S+")
PROBE_STEP = """\
    - name: probe
      run: "while [ ! -f .probe/go ]; do sleep 0.01; done; date +%s%N > .probe/ended"
"""
# Where a page load's time went (ms from the navigation's start), Navigation Timing 2.
NAV_PHASES_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return {'last byte': n.responseEnd, 'DOM ready': n.domContentLoadedEventEnd,
          'load': n.loadEventEnd};
}"""
# The plan region (a fragment the page fetches after the DAG is drawn) holds its table.
PLAN_SHOWN_JS = """() => {
  const plan = document.getElementById('plan');
  return !plan || plan.querySelector('[data-step]') !== null;
}"""
# Notes when the probe node first says `succeeded` after `armed` (re-armed per rep).
OBSERVER_JS = """(sel) => {
  window.__probe = {armed: false, seenAt: null};
  const check = () => {
    const node = document.querySelector(sel);
    if (window.__probe.armed && window.__probe.seenAt === null && node
        && node.getAttribute('data-status') === 'succeeded') {
      window.__probe.seenAt = Date.now();
    }
  };
  new MutationObserver(check).observe(document.body,
    {attributes: true, subtree: true, childList: true, attributeFilter: ['data-status']});
}"""


def make_repo(root: Path, steps: int) -> str:
    """The N-step workflow plus ``probe``, committed; the workflow's name."""
    gen = generate(root, steps, "layered", name="ui-bench")
    manifest = root / "workflow.yaml"
    manifest.write_text(manifest.read_text() + PROBE_STEP)
    (root / ".gitignore").write_text((root / ".gitignore").read_text() + ".probe/\n")
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "bench: ui probe step", cwd=root)
    return gen.workflow


class Server:
    """``orch ui --port 0`` in its own session; its URL, token and output."""

    def __init__(self, orch: list[str], root: Path, timeout: float = 120.0):
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [*orch, "-C", str(root), "ui", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            line = lines.get(timeout=timeout)
            if line is None:
                raise RuntimeError(f"orch ui exited: {''.join(self.output)[-300:]}")
            found = URL_RE.search(line)
            if found:
                break
        self.startup_s = time.monotonic() - started
        self.url = found.group(0)
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]

    def page_url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}?token={self.token}"

    def get(self, path: str) -> tuple[float, int, int, str | None]:
        """GET path on a fresh connection: (seconds to the last byte, status, bytes,
        Server-Timing header)."""
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request("GET", path, headers={"X-Orch-Token": self.token})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        return time.perf_counter() - t0, resp.status, len(body), resp.getheader("Server-Timing")

    def stop(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


class SseClient(threading.Thread):
    """Reads ``/events``; keeps (wall clock ns, status of `key`) for every snapshot."""

    def __init__(self, server: Server, key: str):
        super().__init__(daemon=True)
        self.server, self.key = server, key
        self.seen: list[tuple[int, str | None]] = []
        self.lock = threading.Lock()
        self.error: str | None = None

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=None)
        try:
            conn.request("GET", "/events", headers={"X-Orch-Token": self.server.token})
            resp = conn.getresponse()
            while True:
                line = resp.readline()
                if not line:
                    break
                if line.startswith(b"data:"):
                    now = time.time_ns()
                    status = json.loads(line[5:]).get("steps", {}).get(self.key)
                    with self.lock:
                        self.seen.append((now, status))
        except (OSError, ValueError, http.client.HTTPException) as e:
            self.error = f"/events: {e}"

    def first(self, status: str, after_ns: int) -> int | None:
        with self.lock:
            return next((t for t, s in self.seen if t >= after_ns and s == status), None)


def server_cpu(server: Server) -> float:
    """CPU seconds the server process has used so far (psutil; orch depends on it)."""
    import psutil

    t = psutil.Process(server.proc.pid).cpu_times()
    return t.user + t.system


def time_page(server: Server, name: str, path: str, reps: int) -> tuple[Result, list[str]]:
    """GET the page reps (+1 warm-up) times; the note says its size and the server's CPU
    per request, a figure a loaded machine inflates less than wall time."""
    result = Result(name, target=1.0)
    timings: list[str] = []
    size = 0
    cpu0 = 0.0
    for i in range(reps + 1):
        if i == 1:
            cpu0 = server_cpu(server)
        seconds, status, size, st = server.get(path)
        if status != 200:
            result.error = f"GET {path}: HTTP {status}"
            break
        if i:  # the first is the warm-up
            result.samples.append(seconds)
            if st:
                timings.append(st)
    if result.samples:
        cpu_ms = (server_cpu(server) - cpu0) / len(result.samples) * 1000
        result.note = f"{size:,} bytes; server CPU {cpu_ms:.0f} ms per request"
    return result, timings


@dataclass
class Probe:
    """Where the probe step lives and how to force it."""

    root: Path
    workflow: str
    orch: list[str]
    deadline: float
    hold: float

    @property
    def key(self) -> str:
        return f"{self.workflow}/probe"


def browser_session(
    server: Server, path: str, reps: int, events: int, probe: Probe
) -> list[Result]:
    load = Result("workflow page, browser load", target=1.0)
    whole = Result("... and its plan shown", target=None)
    event = Result("event -> browser", target=0.5)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        load.error = whole.error = event.error = "Playwright for Python is not installed"
        return [load, whole, event]
    if not os.access(CHROMIUM, os.X_OK):
        load.error = whole.error = event.error = f"no browser at {CHROMIUM}"
        return [load, whole, event]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            url = server.page_url(path)
            phases: list[dict[str, float]] = []
            for i in range(reps + 1):
                t0 = time.perf_counter()
                page.goto(url, wait_until="load", timeout=120_000)
                loaded = time.perf_counter() - t0
                page.wait_for_function(PLAN_SHOWN_JS, timeout=120_000, polling=10)
                if i:
                    load.samples.append(loaded)
                    whole.samples.append(time.perf_counter() - t0)
                    phases.append(page.evaluate(NAV_PHASES_JS))
            load.note = "median ms: " + ", ".join(
                f"{k} {statistics.median(p[k] for p in phases):.0f}" for k in phases[0]
            )
            sel = f'[data-step="{probe.key}"]'
            page.evaluate(OBSERVER_JS, sel)

            def arm() -> None:
                page.evaluate("window.__probe.armed = true; window.__probe.seenAt = null")

            def seen() -> int | None:
                at = page.evaluate("window.__probe.seenAt")
                return None if at is None else int(at) * 1_000_000

            def running() -> bool:
                return page.get_attribute(sel, "data-status") == "running"

            run_events(event, events, probe, arm, running, seen, poll=page)
        finally:
            browser.close()
    return [load, whole, event]


def run_events(
    result: Result,
    reps: int,
    probe: Probe,
    arm: Callable[[], None],
    running: Callable[[], bool],
    seen: Callable[[], int | None],
    poll: Any = None,
) -> None:
    """Force the probe `reps` (+1 warm-up) times; latency = seen - the step's end stamp.

    `arm()` starts a sighting: `running()` and `seen()` (ns, wall clock, of the first
    `succeeded`) only count what a client saw after the last `arm()`.
    """
    go, ended = probe.root / ".probe" / "go", probe.root / ".probe" / "ended"
    go.parent.mkdir(exist_ok=True)

    def wait(pred: Callable[[], bool]) -> bool:
        if poll is None:
            return wait_until(pred, probe.deadline, 0.005)
        end = time.monotonic() + probe.deadline  # a page is polled from this thread only
        while time.monotonic() < end:
            if pred():
                return True
            poll.wait_for_timeout(20)  # each look is a round trip to the browser
        return pred()

    for i in range(reps + 1):
        go.unlink(missing_ok=True)
        ended.unlink(missing_ok=True)
        arm()
        apply = subprocess.Popen(
            [*probe.orch, "-C", str(probe.root), "apply", "-q", "--force", probe.key],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            if not wait(running):
                result.error = f"rep {i}: the probe never showed as running"
                break
            time.sleep(probe.hold)  # a task that ran a while: `running`'s own update is done
            arm()  # again: a `succeeded` sent before `running` (the last rep's) is not it
            go.write_text("go\n")
            if not wait(lambda: seen() is not None):
                result.error = f"rep {i}: succeeded never reached the client"
                break
            seen_ns = seen() or 0  # the first sighting: it stays put once set
            end_ns = int(ended.read_text().strip())
            if i:
                result.samples.append((seen_ns - end_ns) / 1e9)
        finally:
            go.write_text("go\n")
            _, err = apply.communicate(timeout=120)
        if apply.returncode != 0:
            result.error = f"rep {i}: orch apply exited {apply.returncode}: {err[-200:]!r}"
            break


def sse_events(server: Server, reps: int, probe: Probe) -> Result:
    result = Result("event -> SSE client", target=0.5)
    client = SseClient(server, probe.key)
    client.start()
    armed = [0]

    def arm() -> None:
        armed[0] = time.time_ns()

    def running() -> bool:
        return client.first("running", armed[0]) is not None

    def seen() -> int | None:
        return client.first("succeeded", armed[0])

    run_events(result, reps, probe, arm, running, seen)
    if client.error and not result.samples:
        result.error = client.error
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", "-n", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=10, help="page loads")
    parser.add_argument("--events", type=int, default=10, help="probe runs per client")
    parser.add_argument("--no-browser", action="store_true", help="HTTP and SSE only")
    parser.add_argument("--deadline", type=float, default=60.0, help="per wait, seconds")
    parser.add_argument(
        "--hold", type=float, default=1.0, help="seconds the probe stays running once seen"
    )
    parser.add_argument("--orch", help="command that runs orch (default: python -m runner)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    orch = orch_command(args.orch)
    work = Path(tempfile.mkdtemp(prefix="orch-ui-bench-"))
    root = work / "repo"
    results: list[Result] = []
    extra: dict[str, Any] = {"load_average_1m_at_start": os.getloadavg()[0]}
    server: Server | None = None
    try:
        wf = make_repo(root, args.steps)
        probe = Probe(root, wf, orch, args.deadline, args.hold)
        (root / ".probe").mkdir()
        (root / ".probe" / "go").write_text("go\n")  # the first apply's probe ends at once
        first = subprocess.run(
            [*orch, "-C", str(root), "apply", "-q", "-j", "2"],
            capture_output=True,
            text=True,
        )
        if first.returncode != 0:
            print(f"first apply exited {first.returncode}: {first.stderr[-300:]}", file=sys.stderr)
        server = Server(orch, root)
        extra["server_startup_s"] = server.startup_s
        path = f"/workflow/{wf}"
        page, timings = time_page(server, "workflow page, HTTP GET", path, args.reps)
        plan, plan_timings = time_page(server, "plan fragment, HTTP GET", path + "/plan", args.reps)
        results += [page, plan]
        extra["server_timing"] = timings + plan_timings
        results.append(sse_events(server, args.events, probe))
        if not args.no_browser:
            results += browser_session(server, path, args.reps, args.events, probe)
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for r in results:
        r.n = args.steps + 1
        r.shape = "layered"
    print_table(results)
    if "server_startup_s" in extra:
        print(f"\norch ui start -> URL printed: {extra['server_startup_s']:.2f} s")
    extra["load_average_1m_at_end"] = os.getloadavg()[0]
    print(
        f"load average (1 min): {extra['load_average_1m_at_start']:.1f} at start, "
        f"{extra['load_average_1m_at_end']:.1f} at end, on {os.cpu_count()} CPUs"
    )
    payload = {
        "suite": "ui",
        "environment": environment(orch),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": [r.to_json() for r in results],
        **extra,
    }
    write_report(args.out or default_report_path("ui"), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
