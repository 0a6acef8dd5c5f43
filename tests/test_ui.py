"""orch ui over HTTP: every page, the token, CSRF, actions, escaping, the event stream,
a read-only .orch/, and the real ``orch ui --port 0`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient  # noqa: E402

from runner.ui.server import build, csrf_for  # noqa: E402

TOKEN = "test-token-123"
H = {"x-orch-token": TOKEN}
XSS = "<script>alert(1)</script>"

STEPS = f"""\
    - name: gen
      run: echo 'x={XSS}' >> "$ORCH_OUTPUT"; printf '\\033[31mred\\033[0m <b>bold</b>\\n'
    - name: use
      needs: [gen]
      run: "true"
    - name: count
      foreach: [a, b]
      run: echo {{{{ item }}}}
"""


@pytest.fixture
def ui_repo(repo: Repo) -> Repo:
    repo.write("wf.yaml", workflow("build", STEPS))
    repo.commit()
    # one at a time, so task 1 is gen's: steps that start together take task ids in the
    # order their threads write their rows
    p = repo.orch("apply", "-j", "1")
    assert p.returncode == 0, p.stderr
    return repo


@pytest.fixture
def client(ui_repo: Repo) -> Iterator[TestClient]:
    with TestClient(build(ui_repo.path, TOKEN, interval=0.05)) as c:
        yield c


def test_every_page_renders(client: TestClient) -> None:
    pages = ("/", "/workflow/build", "/workflow/build/plan", "/run/1", "/task/1", "/history")
    for url in (*pages, "/history?workflow=build"):
        r = client.get(url, headers=H)
        assert r.status_code == 200, (url, r.text[:500])
        assert "<html" in r.text or url.endswith("/plan") and 'id="plan"' in r.text
    wf = client.get("/workflow/build", headers=H).text
    assert 'data-step="build/gen" data-status="succeeded"' in wf
    assert 'data-step="build/count"' in wf and "×2" in wf  # fan-out grouped
    assert ">needs</text>" in wf


def test_token_is_required(client: TestClient) -> None:
    assert client.get("/").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.get("/?token=t%C3%A9st").status_code == 403  # not ASCII: still a 403
    assert client.get("/", headers={"x-orch-token": TOKEN + "x"}).status_code == 403
    assert client.get("/events").status_code == 403
    r = client.get(f"/?token={TOKEN}")
    assert r.status_code == 200
    # the cookie set from the URL's token lets the page's links in without it
    assert client.get("/history").status_code == 200


def test_repository_strings_are_escaped(client: TestClient) -> None:
    wf = client.get("/workflow/build/plan", headers=H).text
    assert XSS not in wf
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in wf
    log = client.get("/task/1", headers=H).text
    assert "<b>bold</b>" not in log and "&lt;b&gt;bold&lt;/b&gt;" in log
    assert '<span class="ansi-fg-1">red</span>' in log


def _events(lines: Iterator[str]) -> Iterator[dict]:
    """The ``state`` snapshots of an SSE stream, as dicts."""
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[6:])


def test_event_stream_follows_a_run(ui_repo: Repo, client: TestClient) -> None:
    """A step's status reaches the stream while it runs and when it ends, without a
    request per change: the one reader saw the state change."""
    ui_repo.write(
        "slow.yaml",
        workflow("slow", "    - name: wait\n      run: while [ ! -f go ]; do sleep 0.05; done\n"),
    )
    ui_repo.commit()
    with client.stream("GET", "/events", headers=H) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        snaps = _events(r.iter_lines())
        first = next(snaps)
        assert first["steps"]["build/gen"] == "succeeded"
        apply = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(ui_repo.path), "apply", "slow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            seen = []
            deadline = time.monotonic() + 60
            for snap in snaps:
                assert time.monotonic() < deadline, seen
                seen.append(snap["steps"].get("slow/wait"))
                if seen[-1] == "running":
                    (ui_repo.path / "go").write_text("", encoding="utf-8")
                if seen[-1] == "succeeded":
                    break
            assert "running" in seen and seen[-1] == "succeeded"
            assert snap["seq"] > first["seq"]
        finally:
            out, err = apply.communicate(timeout=60)
    assert apply.returncode == 0, err


def test_actions_are_refused_unless_allowed(client: TestClient, ui_repo: Repo) -> None:
    csrf = csrf_for(TOKEN)
    r = client.post("/actions/apply", headers=H, data={"csrf": csrf})
    assert r.status_code == 403 and "--allow-actions" in r.json()["error"]
    assert "Apply" not in client.get("/", headers=H).text
    assert ui_repo.orch_json("audit") == [] or all(
        row["argv"][0] != "ui" for row in ui_repo.orch_json("audit")
    )


def test_an_action_needs_the_csrf_token_and_is_audited(ui_repo: Repo) -> None:
    with TestClient(build(ui_repo.path, TOKEN, allow_actions=True, interval=0.05)) as c:
        page = c.get("/workflow/build", headers=H).text
        csrf = re.search(r'name="orch-csrf" content="([0-9a-f]+)"', page).group(1)
        assert csrf == csrf_for(TOKEN) and ">Apply build</button>" in page
        assert ">Force</button>" in c.get("/workflow/build/plan", headers=H).text
        for bad in ({}, {"csrf": "nope"}):
            r = c.post(
                "/actions/force", headers=H, data={"workflow": "build", "step": "use", **bad}
            )
            assert r.status_code == 403 and "CSRF" in r.json()["error"]
        # the token is needed before the CSRF check: a cross-site form has neither
        assert c.post("/actions/force", data={"csrf": csrf}).status_code == 403
        r = c.post(
            "/actions/force", headers=H, data={"csrf": csrf, "workflow": "build", "step": "use"}
        )
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while c.get("/jobs", headers=H).json()[-1]["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        job = c.get("/jobs", headers=H).json()[-1]
        assert job["state"] == "ok" and job["run_id"] == 2, job
    rows = [row for row in ui_repo.orch_json("audit") if row["argv"][0] == "ui"]
    assert rows[-1]["argv"] == ["ui", "apply", "build", "--force", "build/use"]
    assert rows[-1]["exit_code"] == 0
    assert ui_repo.orch_json("history")[0]["tasks"][0]["step"] == "use"


def test_cancel_of_a_task_that_is_not_running_is_a_clear_refusal(ui_repo: Repo) -> None:
    with TestClient(build(ui_repo.path, TOKEN, allow_actions=True)) as c:
        r = c.post("/actions/cancel", headers=H, data={"csrf": csrf_for(TOKEN), "task": "1"})
        assert r.status_code == 409 and "is not running" in r.json()["error"]


def test_unknown_things_are_404_pages_not_errors(client: TestClient) -> None:
    for url in (
        "/workflow/nope",
        "/workflow/nope/plan",
        "/run/99",
        "/task/99",
        "/step?workflow=build&step=nope",
    ):
        r = client.get(url, headers=H)
        assert r.status_code == 404 and "Cannot show this" in r.text, url


def test_run_page_shows_the_gantt_and_a_slowest_path(client: TestClient) -> None:
    page = client.get("/run/1", headers=H).text
    assert page.count('class="gantt-bar') == 4  # gen, use, count[a], count[b]
    assert "slowest path" in page
    assert page.count('<div class="gantt-row critical">') in (1, 2)  # gen+use, or one count


def test_the_slowest_path_follows_the_dag(ui_repo: Repo) -> None:
    """A chain of two short steps beats one long lone step only when their sum is larger."""
    from runner import api
    from runner.ui.views import slowest_path

    repo = api.open_repo(ui_repo.path)

    def task(step: str, start: float, end: float) -> dict:
        return {"workflow": "build", "step": step, "started": start, "ended": end}

    chain = [task("gen", 0, 5), task("use", 5, 6), task("count[a]", 0, 5.5)]
    assert slowest_path(repo, chain, 10) == {("build", "gen"), ("build", "use")}
    lone = [task("gen", 0, 5), task("use", 5, 6), task("count[a]", 0, 9)]
    assert slowest_path(repo, lone, 10) == {("build", "count[a]")}
    # attempts of one step count from the first start to the last end
    retried = [task("gen", 0, 1), task("gen", 4, 5), task("use", 5, 6), task("count[a]", 0, 5.5)]
    assert slowest_path(repo, retried, 10) == {("build", "gen"), ("build", "use")}
    assert slowest_path(repo, [], 10) == set()


def test_step_link_opens_its_last_task_and_masks_secrets(
    ui_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = "    - name: s\n      secrets: [API_KEY]\n      run: echo token=$API_KEY\n"
    ui_repo.write("sec.yaml", workflow("sec", step))
    ui_repo.commit()
    p = ui_repo.orch("apply", "sec", env={"API_KEY": "hunter2-secret"})
    assert p.returncode == 0, p.stderr
    monkeypatch.setenv("API_KEY", "hunter2-secret")
    with TestClient(build(ui_repo.path, TOKEN)) as c:
        page = c.get("/step?workflow=sec&step=s", headers=H).text
    assert "token=***" in page and "hunter2-secret" not in page


def test_task_tail_streams_the_log_of_an_ended_task_then_ends(client: TestClient) -> None:
    with client.stream("GET", "/task/1/tail?offset=0", headers=H) as r:
        body = "".join(r.iter_text())
    assert "event: log" in body and "event: end" in body
    assert "&lt;b&gt;bold&lt;/b&gt;" in body


def test_a_read_only_state_is_served_and_never_written(ui_repo: Repo) -> None:
    from tests.test_environment import read_only, snapshot

    orch = ui_repo.path / ".orch"
    before = snapshot(orch)
    with read_only(orch), TestClient(build(ui_repo.path, TOKEN)) as c:
        for url in ("/", "/workflow/build", "/run/1", "/task/1", "/history"):
            r = c.get(url, headers=H)
            assert r.status_code == 200, (url, r.text[:300])
        assert "read-only state" in c.get("/", headers=H).text
    assert snapshot(orch) == before


def test_no_state_yet_is_served_and_not_created(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("build", STEPS))
    repo.commit()
    with TestClient(build(repo.path, TOKEN)) as c:
        assert c.get("/", headers=H).status_code == 200
        assert 'data-status="never-ran"' in c.get("/workflow/build", headers=H).text
        assert "No runs yet" in c.get("/history", headers=H).text
    assert not (repo.path / ".orch/state.db").exists()


def test_the_real_server_prints_its_url_and_serves(ui_repo: Repo) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(ui_repo.path), "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = ""
        while not url:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            m = re.search(r"(http://127\.0\.0\.1:(\d+)/\?token=\S+)", line)
            url = m.group(1) if m else ""
        assert int(m.group(2)) != 0
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200 and b"build" in resp.read()
        base = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base, timeout=30)
        assert e.value.code == 403
        e.value.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_a_host_other_than_loopback_prints_a_warning(ui_repo: Repo) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "-C",
            str(ui_repo.path),
            "ui",
            "--port",
            "0",
            "--host",
            "0.0.0.0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # a wildcard address is no URL a browser opens: the printed one names loopback
        assert "orch ui: open http://127.0.0.1:" in proc.stdout.readline() + proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0, reachable from other machines" in err


def test_the_url_names_an_address_a_browser_opens() -> None:
    from runner.cli.ui import _url_host

    assert [_url_host(h) for h in ("0.0.0.0", "::", "::1", "10.1.2.3", "box.lan")] == [
        "127.0.0.1",
        "[::1]",
        "[::1]",
        "10.1.2.3",
        "box.lan",
    ]


def test_version_and_a_noop_plan_never_import_the_ui(ui_repo: Repo) -> None:
    from tests.test_noop import _imported

    ui_repo.plan()  # writes the no-op witness
    for args in (("plan",), ("--version",), ("--help",)):
        mods = _imported(ui_repo, *args)
        assert "runner.cli.main" in mods or args == ("--version",)
        heavy = {m for m in mods if m.split(".")[0] in ("starlette", "uvicorn", "anyio")}
        assert heavy | {m for m in mods if m.startswith("runner.ui")} == set(), args


def test_long_logs_are_paged_last_page_first(ui_repo: Repo) -> None:
    big = "    - name: big\n      run: python3 -c \"print(('x' * 99 + chr(10)) * 6000)\"\n"
    ui_repo.write("big.yaml", workflow("big", big))
    ui_repo.commit()
    assert ui_repo.orch("apply", "big").returncode == 0
    with TestClient(build(ui_repo.path, TOKEN)) as c:
        last = c.get("/step?workflow=big&step=big", headers=H).text
        assert "log page 3 of 3" in last and "# orch: exit 0" in last
        first = c.get(f"/task/{_task_id(last)}?page=0", headers=H).text
        assert "log page 1 of 3" in first and "# orch: big/big started" in first
        assert "# orch: exit 0" not in first


def _task_id(page: str) -> str:
    return re.search(r"<h1>Task (\d+):", page).group(1)


def test_broken_manifests_are_a_page_not_a_refusal_to_start(ui_repo: Repo) -> None:
    ui_repo.write("broken.yaml", "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: x}\n")
    with TestClient(build(ui_repo.path, TOKEN)) as c:
        r = c.get("/", headers=H)
        assert r.status_code == 200 and "broken.yaml:1:1:" in r.text
        assert c.get("/history", headers=H).status_code == 200  # the state still reads
        assert c.get("/state", headers=H).json()["error"]


def test_ansi_colours_become_classes_and_other_escapes_go() -> None:
    from runner.ui.ansi import to_html

    assert to_html("\x1b[1;31mbad\x1b[0m ok") == ('<span class="ansi-bold ansi-fg-1">bad</span> ok')
    assert to_html("\x1b[38;5;196mx\x1b[39m") == '<span style="color:rgb(255,0,0)">x</span>'
    assert to_html("\x1b[48;2;1;2;300my") == '<span style="background-color:rgb(1,2,255)">y</span>'
    assert to_html("\x1b]8;;http://e.x\x07link\x1b]8;;\x07\x1b[2K<i>") == "link&lt;i&gt;"
    assert to_html("\x1b[9999999999999999999999m") == ""


def test_ctrl_c_ends_the_server_while_a_page_listens(ui_repo: Repo) -> None:
    """An open event stream never ends by itself: at Ctrl-C the server ends it rather
    than wait for the browser tab to close."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(ui_repo.path), "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = ""
        while not url:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            m = re.search(r"(http://\S+)/\?token=(\S+)", line)
            url = m.group(0) if m else ""
        req = urllib.request.Request(m.group(1) + "/events", headers={"X-Orch-Token": m.group(2)})
        with urllib.request.urlopen(req, timeout=30) as stream:
            assert stream.readline() == b"event: state\n"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            assert stream.read().endswith(b"\n\n")  # the stream ended, not cut
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_without_the_extra_one_line_says_how_to_install_it(repo: Repo, tmp_path: Path) -> None:
    blocker = tmp_path / "no-starlette"
    (blocker / "starlette").mkdir(parents=True)
    (blocker / "starlette" / "__init__.py").write_text("raise ImportError('not installed')\n")
    root = Path(__file__).resolve().parents[1]
    p = repo.orch("ui", "--port", "0", env={"PYTHONPATH": f"{blocker}{os.pathsep}{root}"})
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == [
        "orch: orch ui needs starlette and uvicorn: pip install 'orch-gitops[ui]'"
    ]


def test_a_running_tasks_log_is_tailed_live_until_it_ends(
    ui_repo: Repo, client: TestClient
) -> None:
    step = (
        "    - name: talk\n"
        "      run: echo 'first <line>'; while [ ! -f go ]; do sleep 0.05; done; echo second\n"
    )
    ui_repo.write("talk.yaml", workflow("talk", step))
    ui_repo.commit()
    apply = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(ui_repo.path), "apply", "talk"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        running: list = []
        while not running:
            assert time.monotonic() < deadline and apply.poll() is None
            tasks = ui_repo.orch_json("task", "list")
            running = [t for t in tasks if t["workflow"] == "talk" and t["status"] == "running"]
        page = client.get(f"/task/{running[0]['id']}", headers=H).text
        tail = re.search(r'data-tail="([^"]+)"', page).group(1).replace("&amp;", "&")
        seen, ended = "", None
        with client.stream("GET", tail, headers=H) as r:
            (ui_repo.path / "go").write_text("", encoding="utf-8")  # the rest, while tailed
            lines = r.iter_lines()
            for line in lines:
                assert time.monotonic() < deadline, seen
                if line.startswith("data: ") and '"html"' in line:
                    seen += json.loads(line[6:])["html"]
                if line == "event: end":
                    ended = json.loads(next(lines)[6:])["status"]
                    break
        shown = page + seen
        assert "first &lt;line&gt;" in shown and "second" in seen and ended == "succeeded"
    finally:
        _, err = apply.communicate(timeout=60)
    assert apply.returncode == 0, err


def test_a_port_in_use_is_one_line(ui_repo: Repo) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        p = ui_repo.orch("ui", "--port", str(port))
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith(f"orch: --host 127.0.0.1 --port {port}: cannot listen there (")
    assert p.stderr.rstrip().endswith("pick another --port, or --port 0 for a free one")
    assert len(p.stderr.splitlines()) == 1
    p = ui_repo.orch("ui", "--port", "70000")
    assert p.returncode == 2 and "a port is 0 to 65535, not 70000" in p.stderr
