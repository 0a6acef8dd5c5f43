"""A real browser against ``orch ui``: a DAG node turns running, then succeeded, live.

Headless Chromium from the distribution (``/usr/bin/chromium``; Debian's ``apt-get install
chromium``, which ``.ci/run`` does when it is missing), driven by Playwright for Python
pointed at that executable: Playwright's own browser downloads are never used. Without
Playwright or the browser the test skips and says which is missing; with
``ORCH_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) it fails instead, so CI cannot pass by
skipping it.

The page under test is the one a person watches: the overview, a click on the workflow,
then an ``orch apply`` started in the background. The step waits for a file the test
creates, so it stays ``running`` for as long as the browser needs to see it, however
loaded the machine. A marker set on ``window`` before the apply proves the page was
updated in place (server-sent events), not reloaded. A screenshot of the final page is
kept under ``$ORCH_TEST_ARTIFACTS`` (else the test's tmp_path) and its path printed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo, workflow

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("ORCH_TEST_CHROMIUM", "/usr/bin/chromium")
# Flags that start Chromium as root in a container with no GPU and no network to spare;
# Playwright adds --headless and a fresh --user-data-dir of its own.
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
WAIT_MS = 90_000  # generous: the suite runs with -n auto on two shared cores


def _unavailable(reason: str) -> None:
    """Skip with the reason, or fail with it where CI requires the browser."""
    if os.environ.get("ORCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ORCH_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _missing() -> str | None:
    """What keeps the browser test from running here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no browser at {CHROMIUM} (apt-get install chromium)"
    gone = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if gone:
        return f"the [ui] extra is not installed (no {', '.join(gone)})"
    if importlib.util.find_spec("runner.ui") is None:
        return "this checkout has no runner.ui (orch ui)"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium at CHROMIUM under Playwright, or a skip saying what is missing."""
    missing = _missing()
    if missing:
        _unavailable(missing)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as pw:
        failed = None
        try:
            chromium = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS
            )
        except Error as e:
            failed = (str(e).strip() or repr(e)).splitlines()[0]
        if failed is not None:
            _unavailable(f"{CHROMIUM} did not start under Playwright: {failed}")
        try:
            yield chromium
        finally:
            chromium.close()


def _end(proc: subprocess.Popen[str]) -> None:
    """End a process started in its own session, and everything it started."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _stop(proc: subprocess.Popen[str] | None) -> None:
    """End it (see _end) and close its output pipe."""
    if proc is not None:
        _end(proc)
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()


def _orch(repo: Repo, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


class UiServer:
    """``orch ui --port 0`` in its own session; a thread drains its output (a full pipe
    would block it) and keeps it for the failure message."""

    def __init__(self, repo: Repo):
        self.proc = _orch(repo, "ui", "--port", "0")
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pump = threading.Thread(target=self._drain, daemon=True)
        self._pump.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def url(self, timeout: float = 90) -> str:
        """The ``http://127.0.0.1:PORT/?token=...`` it prints."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"orch ui printed no URL in {timeout:.0f} s: {''.join(self.output)!r}")
            if line is None:
                code = self.proc.wait()
                pytest.fail(f"orch ui exited {code} before printing a URL: {''.join(self.output)}")
            found = URL_RE.search(line)
            if found:
                return found.group(0)

    def stop(self) -> None:
        _end(self.proc)
        self._pump.join(timeout=20)  # the pipe's end: no reader left when it is closed
        _stop(self.proc)


def _artifact_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ORCH_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Every element naming the step (the DAG node, the plan table's status) says `want`.
STATUS_IS = """([sel, want]) => {
  const nodes = [...document.querySelectorAll(sel)];
  return nodes.length > 0 && nodes.every(n => n.getAttribute('data-status') === want);
}"""


def _await_status(page: Any, selector: str, want: str) -> None:
    """Poll the DOM until every `selector` element has data-status `want`; else fail
    saying what the page shows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(STATUS_IS, arg=[selector, want], timeout=WAIT_MS, polling=100)
        return
    except PlaywrightTimeout:
        pass
    shown = page.eval_on_selector_all(selector, "ns => ns.map(n => n.dataset.status)")
    pytest.fail(f"{selector} never showed {want!r} in {WAIT_MS // 1000} s; shows {shown}")


def test_a_running_step_turns_succeeded_on_the_open_page(
    repo: Repo, browser: Any, tmp_path: Path
) -> None:
    go = tmp_path / "go"  # outside the repository: creating it changes no input
    repo.write(
        "wf.yaml",
        workflow(
            "live",
            # waits (at most 10 minutes) for the test's signal, so it is `running` until then
            f"    - name: wait\n"
            f"      run: i=0; while [ ! -f {go} ] && [ $i -lt 6000 ]; do sleep 0.1; "
            f"i=$((i+1)); done; test -f {go}\n"
            f"    - name: report\n"
            f"      needs: [wait]\n"
            f"      run: echo done\n",
        ),
    )
    repo.commit("a workflow with a step that waits for the test")
    server = UiServer(repo)
    apply: subprocess.Popen[str] | None = None
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    shot = _artifact_dir(tmp_path) / "ui-browser-workflow.png"
    try:
        page.goto(server.url(), timeout=WAIT_MS)
        # the overview lists the workflow; the test goes on as a person would, by a click
        page.locator('a[href*="/workflow/live"]').first.click(timeout=WAIT_MS)
        wait_node = '[data-step="live/wait"]'
        page.wait_for_selector(wait_node, timeout=WAIT_MS)
        assert page.get_attribute(wait_node, "data-status") != "succeeded"
        page.evaluate("window.__orchNotReloaded = true")

        apply = _orch(repo, "apply")
        _await_status(page, wait_node, "running")
        go.write_text("go\n")
        _await_status(page, wait_node, "succeeded")
        _await_status(page, '[data-step="live/report"]', "succeeded")
        assert page.evaluate("window.__orchNotReloaded === true"), "the page was reloaded"
        out, _ = apply.communicate(timeout=WAIT_MS / 1000)
        assert apply.returncode == 0, out
    finally:
        with contextlib.suppress(Exception):  # what the page showed, also when it failed
            page.screenshot(path=str(shot), full_page=True)
            shot.with_suffix(".html").write_text(page.content(), encoding="utf-8")
            print(f"screenshot: {shot}")
        go.write_text("go\n")  # a failed test still lets the step end
        _stop(apply)
        server.stop()
    assert shot.stat().st_size > 0


def test_the_token_leaves_the_address_bar_and_the_cookie_keeps_the_session(
    repo: Repo, browser: Any
) -> None:
    """As JupyterLab does: once the cookie holds the token, the page drops ``?token=``
    from its URL (the browser's history, a bookmark or a screen share never shows it);
    a reload still gets in."""
    repo.write("wf.yaml", workflow("tok", "    - name: s\n      run: 'true'\n"))
    repo.commit()
    server = UiServer(repo)
    page = browser.new_page()
    try:
        url = server.url()
        page.goto(url, timeout=WAIT_MS)
        page.wait_for_function("() => !location.search.includes('token')", timeout=WAIT_MS)
        assert page.url == url.split("?")[0]
        assert page.reload(timeout=WAIT_MS).status == 200
        page.wait_for_selector('a[href*="/workflow/tok"]', timeout=WAIT_MS)
    finally:
        server.stop()
