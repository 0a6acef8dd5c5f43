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
