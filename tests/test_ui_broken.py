"""orch ui while the manifests do not load: the overview is a 200 page of the one-line
errors (file:line: what), pages that need the catalog a clear 409, and pages of the
recorded state still 200; never a 500 for what a user wrote (a monitor polls ``/``)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Repo, workflow

pytest.importorskip("starlette")

from starlette.testclient import TestClient  # noqa: E402

from runner.ui.server import build  # noqa: E402

H = {"x-orch-token": "tok"}
BROKEN = "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: x}\n"


def test_broken_manifests_are_pages_with_their_errors_never_500(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("build", "    - name: gen\n      run: echo hi\n"))
    repo.commit()
    assert repo.orch("apply").returncode == 0
    repo.write("broken.yaml", BROKEN)
    expected = {
        "/": 200,
        "/run/1": 200,
        "/task/1": 200,
        "/history": 200,
        "/history?workflow=build": 200,
        "/workflow/build": 409,
        "/workflow/build/plan": 409,
        "/step?workflow=build&step=gen": 409,
        "/run/99": 404,
    }
    with TestClient(build(repo.path, "tok"), raise_server_exceptions=False) as c:
        got = {url: c.get(url, headers=H) for url in expected}
    assert {url: r.status_code for url, r in got.items()} == expected
    errors = re.findall(r'class="error">([^<]*)</p>', got["/"].text)
    assert errors == ["broken.yaml:1:1: (document): missing required field &#39;spec&#39;"]
    cli = repo.orch("validate")
    assert (
        cli.returncode == 1 and "broken.yaml:1:1: (document): missing required field" in cli.stderr
    )
    assert "fix the errors above" in got["/"].text
    assert "broken.yaml:1:1:" in got["/workflow/build"].text


def test_a_damaged_state_is_a_page_saying_the_way_out_never_500(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("build", "    - name: gen\n      run: echo hi\n"))
    repo.commit()
    assert repo.orch("apply").returncode == 0
    for name in ("state.db-wal", "state.db-shm"):
        (repo.path / ".orch" / name).unlink(missing_ok=True)
    (repo.path / ".orch/state.db").write_bytes(b"not a database, not at all" * 100)
    urls = ["/run/1", "/task/1", "/history", "/step?workflow=build&step=gen", "/run/99"]
    with TestClient(build(repo.path, "tok"), raise_server_exceptions=False) as c:
        overview = c.get("/", headers=H)
        got = {url: c.get(url, headers=H) for url in urls}
    assert overview.status_code == 200 and "orch state reset" in overview.text
    assert {url: r.status_code for url, r in got.items()} == dict.fromkeys(urls, 409)
    assert all("orch state reset" in r.text for r in got.values())
