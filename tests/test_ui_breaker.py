"""orch ui against hostile input: repository strings, URLs and files made to break it.
Every answer is a page or a clear refusal, never a 500 and never a dead server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Repo, workflow

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient  # noqa: E402

from runner.ui.ansi import to_html  # noqa: E402
from runner.ui.server import build  # noqa: E402

TOKEN = "breaker-token"
H = {"x-orch-token": TOKEN}
HUGE = "9" * 5000  # past Python's 4,300-digit limit on int(str)


@pytest.fixture
def ran(repo: Repo) -> Repo:
    repo.write(
        "wf.yaml",
        workflow(
            "web", f"    - name: gen\n      run: printf '\\033[{HUGE}mhuge\\033[0m <b>x</b>\\n'\n"
        ),
    )
    repo.commit()
    assert repo.orch("apply").returncode == 0
    return repo


@pytest.fixture
def client(ran: Repo) -> Iterator[TestClient]:
    with TestClient(build(ran.path, TOKEN, interval=0.05), raise_server_exceptions=False) as c:
        yield c


def test_an_sgr_code_with_thousands_of_digits_is_text_not_a_crash(client: TestClient) -> None:
    assert "huge" in to_html(f"\x1b[{HUGE}mhuge")
    assert to_html(f"\x1b[38;5;{HUGE}mx") == "x"
    r = client.get("/task/1", headers=H)
    assert r.status_code == 200 and "huge" in r.text and "&lt;b&gt;x" in r.text


def test_an_id_past_64_bits_is_no_such_run_or_task(client: TestClient, ran: Repo) -> None:
    for url in ("/task/99999999999999999999999", "/run/99999999999999999999"):
        r = client.get(url, headers=H)
        assert r.status_code == 404 and "Cannot show this" in r.text, url
    p = ran.orch("task", "cancel", "99999999999999999999999")
    assert p.returncode != 0 and p.stderr.startswith("orch: no task with id"), p.stderr


def test_a_page_or_offset_no_int_can_hold_is_ignored(client: TestClient) -> None:
    """Thousands of digits, or digits that are not ASCII ('²'): the default page."""
    for url in (f"/task/1?page={HUGE}", "/task/1?page=%C2%B2"):
        r = client.get(url, headers=H)
        assert r.status_code == 200 and "huge" in r.text, url
    for offset in ("99999999999999999999999", HUGE, "%C2%B2"):
        r = client.get(f"/task/1/tail?offset={offset}", headers=H)
        assert r.status_code == 200 and "event: end" in r.text, offset


def test_cancel_of_a_task_id_that_is_no_number_is_a_refusal(ran: Repo) -> None:
    from runner.ui.server import csrf_for

    with TestClient(build(ran.path, TOKEN, allow_actions=True), raise_server_exceptions=False) as c:
        for task in ("%C2%B2", "99999999999999999999999"):
            r = c.post(
                "/actions/cancel",
                headers={**H, "content-type": "application/x-www-form-urlencoded"},
                content=f"csrf={csrf_for(TOKEN)}&task={task}",
            )
            assert r.status_code in (404, 409) and r.json()["error"], (task, r.text)


def test_a_task_page_says_why_the_task_ran(client: TestClient) -> None:
    """The task's reason is why it ran: a bare 'never ran' beside 'succeeded' read as
    a contradiction."""
    r = client.get("/task/1", headers=H)
    assert "why it ran: never ran" in r.text


def test_a_live_line_longer_than_a_page_is_tailed_while_the_task_runs(repo: Repo) -> None:
    """A task that writes more than a page (256 KiB) with no newline (a progress bar's
    carriage returns) still reaches the tail while it runs; the tail waited for a
    newline that was not in the page it read, so it stalled until the task ended."""
    import subprocess
    import sys
    import threading
    import time

    repo.write(
        "wf.yaml",
        workflow(
            "bar",
            "    - name: p\n"
            "      run: head -c 300000 /dev/zero | tr '\\0' x; "
            "while [ ! -f go ]; do sleep 0.05; done\n",
        ),
    )
    repo.commit()
    apply = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    release = threading.Timer(30, (repo.path / "go").touch)  # the task ends in any case
    release.start()
    try:
        with TestClient(build(repo.path, TOKEN, interval=0.05)) as c:
            deadline = time.monotonic() + 25
            while c.get("/state", headers=H).json()["steps"].get("bar/p") != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)  # the 300,000 bytes are written
            with c.stream("GET", "/task/1/tail?offset=0", headers=H) as r:
                for line in r.iter_lines():
                    if line.startswith("data: ") and "x" * 1000 in line:
                        break
            assert not (repo.path / "go").exists(), "the tail waited for the task to end"
    finally:
        (repo.path / "go").touch()
        release.cancel()
        apply.wait(60)


def test_the_overview_shows_the_warnings_the_cli_prints(ran: Repo, client: TestClient) -> None:
    """A manifest skipped for broken YAML is a warning on the CLI's stderr; the
    overview said only 'No workflows' for it."""
    ran.write("broken.yaml", ":\n  - [unclosed\n")
    assert "broken.yaml" in ran.orch("plan").stderr
    r = client.get("/", headers=H)
    assert r.status_code == 200 and "broken.yaml:1:1: yaml:" in r.text


def test_pages_forbid_inline_scripts_framing_and_referrers(client: TestClient) -> None:
    """Defence in depth behind the escaping: a Content-Security-Policy that runs only
    the server's own script (an injected <script> or onerror= would not run), no
    framing (no clickjacking of the action buttons), and no Referer that could carry
    the ?token= of the first URL; the pages hold no inline handler the policy blocks."""
    import re

    for url in ("/", "/workflow/web", "/run/1", "/task/1", "/history"):
        r = client.get(url, headers=H)
        csp = r.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert r.headers.get("referrer-policy") == "no-referrer", url
        assert r.headers.get("x-content-type-options") == "nosniff", url
        assert not re.search(r"<[^>]+\son[a-z]+=", r.text), url


def test_a_huge_log_has_a_short_pager(repo: Repo) -> None:
    """A 5 MB log is 21 pages: the pager links the first, the last and the pages near
    the one shown, not every page (a 100 MB log printed 400 links)."""
    import re

    big = "    - name: big\n      run: python3 -c \"print(('x' * 99 + chr(10)) * 53000)\"\n"
    repo.write("big.yaml", workflow("big", big))
    repo.commit()
    assert repo.orch("apply").returncode == 0
    with TestClient(build(repo.path, TOKEN)) as c:
        page = c.get("/task/1?page=10", headers=H).text
        assert "log page 11 of 21" in page
        links = re.findall(r'href="/task/1\?page=(\d+)"', page)
        assert links == ["0", "7", "8", "9", "11", "12", "13", "20"], links
        assert c.get("/task/1", headers=H).text.count("?page=") <= 5


def test_ctrl_c_during_an_apply_from_a_page_still_audits_it(repo: Repo) -> None:
    """Ctrl-C stops an apply started from a page the orderly way, and its audit row is
    written before the server exits (the apply's thread was a daemon the exit cut off
    between recording the run and writing the audit row)."""
    import json
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from runner.ui.server import csrf_for

    repo.write("wf.yaml", workflow("sl", "    - name: slow\n      run: sleep 30\n"))
    repo.commit()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "ui", "--port", "0",
         "--allow-actions"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        m = None
        while m is None:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            m = re.search(r"(http://\S+)/\?token=(\S+)", line)
        base, tok = m.groups()
        hdr = {"X-Orch-Token": tok, "X-Orch-CSRF": csrf_for(tok),
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
        req = urllib.request.Request(base + "/actions/apply", data=b"workflow=sl", headers=hdr)
        assert urllib.request.urlopen(req, timeout=30).status == 202
        deadline = time.monotonic() + 30
        while True:
            req = urllib.request.Request(base + "/state", headers=hdr)
            snap = json.loads(urllib.request.urlopen(req, timeout=30).read())
            if snap["steps"].get("sl/slow") == "running":
                break
            assert time.monotonic() < deadline, snap
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "Traceback" not in err, err
    rows = [r for r in repo.orch_json("audit") if r["argv"][0] == "ui"]
    assert rows and rows[-1]["argv"] == ["ui", "apply", "sl"], rows
    assert rows[-1]["exit_code"] != 0


def test_sigterm_right_after_the_url_ends_the_server(repo: Repo) -> None:
    """A SIGTERM that arrives before uvicorn catches signals (right after the URL is
    printed) was a KeyboardInterrupt raised where asyncio ignores it: the server ran on
    (about 1 start in 20). Now it stops, exiting 143 as any orch ended by SIGTERM.
    A race, so tried several times."""
    import subprocess
    import sys

    repo.write("wf.yaml", workflow("t", "    - name: s\n      run: 'true'\n"))
    repo.commit()
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "ui", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            while "open http" not in proc.stdout.readline():
                assert proc.poll() is None, proc.stderr.read()
            proc.terminate()
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 143 and "Traceback" not in err, err
