"""Reading task logs in parts and while they change, through every reader: the UI's
pager and live tail (starlette TestClient), ``orch logs -f`` (the real CLI in a
subprocess). A secret cut by a part's edge is masked whole; a log that goes away
between a row's read and the file's open is no log, never an error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Repo
from tests.test_resilience import background_apply, setup, wait_until, wf

SECRET = "S3CRET-VALUE-xyz"
HALVES = (SECRET[:7], SECRET[7:])  # what a reader masking each part alone shows
# the first half, then the rest once the file go exists; the halves built by the shell,
# so the log's header line (the command) holds neither
HALF_THEN_REST = (
    'a=S3C; printf "tok=${a}RET-"; while [ ! -e go ]; do sleep 0.05; done; b=VALUE; echo "$b-xyz"'
)


DECLARES = wf("x", [{"name": "d", "secrets": ["API_KEY"], "run": "true"}])


def _secret_step(repo: Repo, run: str) -> None:
    """Step w/s runs ``run``; workflow x declares API_KEY, which the apply of w alone
    runs without: the log holds the value in clear, as a log written before the secret
    was declared does, and readers with API_KEY set must mask it."""
    setup(repo, wf("w", [{"name": "s", "run": run}]), DECLARES)
    p = repo.orch("apply", "w")
    assert p.returncode == 0, p.stderr


def _log(repo: Repo) -> Path:
    return repo.path / ".orch" / "logs" / "1" / "w" / "s.1.log"


@pytest.fixture
def split_log(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Repo, int]]:
    """A log whose secret straddles the UI's first page boundary; API_KEY set."""
    pytest.importorskip("starlette")
    from runner.ui.views import LOG_PAGE

    _secret_step(repo, "true")
    cut = LOG_PAGE - 5
    _log(repo).write_bytes(b"a" * cut + SECRET.encode() + b"\ntail line\n")
    monkeypatch.setenv("API_KEY", SECRET)
    yield repo, cut


def _client(repo: Repo) -> object:
    from starlette.testclient import TestClient

    from runner.ui.server import build

    return TestClient(build(repo.path, "tok", interval=0.05))


def _no_part_of_the_secret(text: str) -> None:
    assert SECRET not in text
    for half in HALVES:
        assert half not in text, half


def test_a_secret_across_the_ui_page_boundary_is_masked_whole(split_log: tuple) -> None:
    repo, cut = split_log
    with _client(repo) as c:
        first = c.get("/task/1?page=0", headers={"x-orch-token": "tok"})
        last = c.get("/task/1?page=1", headers={"x-orch-token": "tok"})
    assert first.status_code == last.status_code == 200
    assert "log page 1 of 2" in first.text and "log page 2 of 2" in last.text
    _no_part_of_the_secret(first.text)
    _no_part_of_the_secret(last.text)
    assert "a***" in first.text  # the secret belongs to the page it starts on
    assert "tail line" in last.text


def test_a_secret_across_the_live_tails_parts_is_masked_whole(split_log: tuple) -> None:
    repo, cut = split_log
    with (
        _client(repo) as c,
        c.stream("GET", "/task/1/tail?offset=0", headers={"x-orch-token": "tok"}) as r,
    ):
        body = "".join(r.iter_text())
    assert body.count("event: log") == 2 and "event: end" in body
    _no_part_of_the_secret(body)
    assert "a***" in body and "tail line" in body


def _has_open(pid: int, path: Path) -> bool:
    """Process ``pid`` holds ``path`` open (Linux's /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir())
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
def test_logs_follow_masks_a_secret_the_task_had_half_written(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    half = SECRET[:7]
    setup(repo, wf("w", [{"name": "s", "run": HALF_THEN_REST}]), DECLARES)
    with background_apply(repo, "w") as apply:  # API_KEY unset: the log holds it in clear
        wait_until(lambda: _log(repo).exists() and half in _log(repo).read_text(), "half")
        follow = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "logs", "w", "s", "-f"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "API_KEY": SECRET},
        )
        try:
            wait_until(lambda: _has_open(follow.pid, _log(repo)), "the reader's open", 30)
            time.sleep(0.5)  # it read the first half right after its open
            (repo.path / "go").touch()
            out, err = follow.communicate(timeout=30)
        finally:
            if follow.poll() is None:
                follow.kill()
        apply.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert SECRET in _log(repo).read_text()  # the precondition: the log holds it in clear
    assert "tok=***" in out, out
    _no_part_of_the_secret(out)


def test_a_log_that_goes_away_while_the_ui_reads_it_is_no_log(repo: Repo) -> None:
    pytest.importorskip("starlette")
    _secret_step(repo, "seq 1 2000")
    log = _log(repo)
    away = log.with_name("away")
    # another process takes the log away and back as fast as it can, so some reads
    # land between a check that it exists and the open that would follow
    flip = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\nwhile True:\n os.rename(sys.argv[1], sys.argv[2])\n"
            " os.rename(sys.argv[2], sys.argv[1])",
            str(log),
            str(away),
        ]
    )
    statuses = set()
    try:
        with _client(repo) as c:
            for _ in range(300):
                statuses.add(c.get("/task/1", headers={"x-orch-token": "tok"}).status_code)
                with c.stream("GET", "/task/1/tail?offset=0", headers={"x-orch-token": "tok"}) as r:
                    statuses.add(r.status_code)
                    "".join(r.iter_text())
    finally:
        flip.kill()
        flip.wait()
    assert statuses == {200}


def test_parts_cut_anywhere_read_as_the_whole_text_masked() -> None:
    from runner.masking import Secrets, TextStreamMasker

    secrets = Secrets([SECRET, "other-token-42"])
    text = ("x" * 37 + SECRET + "y" * 11 + "other-token-42" + SECRET + "\n") * 3
    data = text.encode()
    whole = secrets.mask_bytes(data)
    h = secrets.overlap
    for size in (1, 5, 16, 17, 40, 100):
        out, start = b"", 0
        while start < len(data):
            lo, hi = max(0, start - h), min(len(data), start + size + h)
            part, stop = secrets.mask_span(
                data[lo:hi], start - lo, min(start + size, len(data)) - lo
            )
            out, start = out + part, lo + stop
        assert out == whole, size
        masker = TextStreamMasker(secrets)
        fed = "".join(masker.feed(text[k : k + size]) for k in range(0, len(text), size))
        assert fed + masker.flush() == whole.decode(), size


def test_mcp_logs_of_a_fifo_is_one_line_not_a_hang(repo: Repo) -> None:
    pytest.importorskip("mcp")
    import threading

    from runner.errors import OrchError
    from runner.mcp.server import Tools

    _secret_step(repo, "echo hi")
    assert Tools(repo.path).logs("w", "s")["lines"][-2] == "hi"
    _log(repo).unlink()
    os.mkfifo(_log(repo))  # as a bad hand or tool may leave it: must not block the server
    errors: list[str] = []

    def read() -> None:
        try:
            Tools(repo.path).logs("w", "s")
        except OrchError as e:
            errors.append(str(e))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(20)
    if reader.is_alive():  # unblock the open so the thread ends, then fail
        os.close(os.open(_log(repo), os.O_WRONLY | os.O_NONBLOCK))
    assert not reader.is_alive() and errors, "logs blocked on a FIFO"
    assert "not a regular file" in errors[0] and "\n" not in errors[0]
    _log(repo).unlink()
    with pytest.raises(OrchError, match="is gone"):
        Tools(repo.path).logs("w", "s")


@pytest.mark.slow
def test_a_live_logs_last_page_and_its_tail_never_split_a_secret(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page of a running task ends after its last newline: a line still being
    written may hold the first half of a secret, which the tail then masks whole."""
    pytest.importorskip("starlette")
    setup(repo, wf("w", [{"name": "s", "run": "echo start; " + HALF_THEN_REST}]), DECLARES)
    monkeypatch.delenv("API_KEY", raising=False)
    with background_apply(repo, "w") as apply:  # API_KEY unset: the log holds it in clear
        wait_until(lambda: _log(repo).exists() and HALVES[0] in _log(repo).read_text(), "half")
        monkeypatch.setenv("API_KEY", SECRET)  # the UI knows the secret
        with _client(repo) as c:
            page = c.get("/task/1", headers={"x-orch-token": "tok"}).text
            tail = re.search(r'data-tail="([^"]+)"', page).group(1).replace("&amp;", "&")
            (repo.path / "go").touch()
            with c.stream("GET", tail, headers={"x-orch-token": "tok"}) as r:
                body = "".join(r.iter_text())
        apply.communicate(timeout=30)
    assert "start" in page and "event: end" in body
    _no_part_of_the_secret(page + body)
    assert "tok=***" in body
