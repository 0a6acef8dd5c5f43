"""Make docs/img/ui-workflow.png: the README's picture of ``orch ui``'s workflow page.

    python docs/img/make_screenshot.py [--out docs/img/ui-workflow.png] [--example build-and-test]

A real screenshot, never drawn by hand: the example is copied into a fresh git repository
in a temporary folder, applied once, then a test file is edited so the plan has something
to say; ``orch ui --port 0`` serves it, and headless Chromium (/usr/bin/chromium, driven
by Playwright; ``apt-get install chromium`` and ``pip install -e '.[test]'``) opens the
overview, clicks the workflow and saves the page. Run it from the repository root, with
the interpreter orch is installed in, after a change to the pages.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
GIT = ["git", "-c", "user.name=orch docs", "-c", "user.email=docs@orch.invalid"]
# The one edit after the first apply: lint and test would run again, and the page says why.
EDITS = {"build-and-test": ("tests/test_rpn.py", "# a comment: lint and test run again\n")}


def orch(repo: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "-C", str(repo), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        **kw,  # type: ignore[arg-type]
    )


def prepare(example: str, work: Path) -> Path:
    """A committed copy of the example, applied once, then edited (uncommitted)."""
    repo = work / example
    shutil.copytree(ROOT / "examples" / example, repo, ignore=shutil.ignore_patterns("dist"))
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", example], check=True)
    orch(repo, "apply", "-q")
    if example in EDITS:
        rel, line = EDITS[example]
        with (repo / rel).open("a", encoding="utf-8") as fh:
            fh.write(line)
    return repo


def serve(repo: Path) -> tuple[subprocess.Popen[str], str]:
    """``orch ui --port 0`` and the URL (with its token) it printed."""
    server = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo), "ui", "--port", "0"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert server.stdout is not None
    for line in server.stdout:
        found = URL_RE.search(line)
        if found:  # keep draining its output, so a full pipe never blocks it
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, found.group(0)
    raise SystemExit(f"orch ui exited {server.wait()} without printing its URL")


def shoot(url: str, workflow: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 600})
            page.goto(url)
            page.locator(f'a[href*="/workflow/{workflow}"]').first.click()
            page.wait_for_selector("[data-step]")
            # the plan is a fragment the page fetches once the DAG is drawn
            page.wait_for_function(
                "() => { const p = document.getElementById('plan');"
                " return !p || p.querySelector('[data-step]') !== null; }"
            )
            page.screenshot(path=str(out), full_page=False)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "ui-workflow.png")
    parser.add_argument("--example", default="build-and-test")
    args = parser.parse_args(argv)
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"no browser at {CHROMIUM}: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="orch-screenshot-") as tmp:
        repo = prepare(args.example, Path(tmp))
        server, url = serve(repo)
        try:
            shoot(url, args.example, args.out)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
