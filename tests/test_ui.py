"""orch ui over HTTP: every page, the token, CSRF, actions, escaping, the event stream,
a read-only .orch/, and the real ``orch ui --port 0`` in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Repo, workflow

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient  # noqa: E402

from runner.ui.server import build  # noqa: E402

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
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    return repo


@pytest.fixture
def client(ui_repo: Repo) -> Iterator[TestClient]:
    with TestClient(build(ui_repo.path, TOKEN, interval=0.05)) as c:
        yield c


def test_every_page_renders(client: TestClient) -> None:
    for url in ("/", "/workflow/build", "/run/1", "/task/1", "/history", "/history?workflow=build"):
        r = client.get(url, headers=H)
        assert r.status_code == 200, (url, r.text[:500])
        assert "<html" in r.text
    wf = client.get("/workflow/build", headers=H).text
    assert 'data-step="build/gen" data-status="succeeded"' in wf
    assert 'data-step="build/count"' in wf and "×2" in wf  # fan-out grouped
    assert ">needs</text>" in wf


def test_token_is_required(client: TestClient) -> None:
    assert client.get("/").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.get("/events").status_code == 403
    r = client.get(f"/?token={TOKEN}")
    assert r.status_code == 200
    # the cookie set from the URL's token lets the page's links in without it
    assert client.get("/history").status_code == 200


def test_repository_strings_are_escaped(client: TestClient) -> None:
    wf = client.get("/workflow/build", headers=H).text
    assert XSS not in wf
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in wf
    log = client.get("/task/1", headers=H).text
    assert "<b>bold</b>" not in log and "&lt;b&gt;bold&lt;/b&gt;" in log
    assert '<span class="ansi-fg-1">red</span>' in log
