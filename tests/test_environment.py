"""The machine fails, not orch (fault kind 9): a full disk, a read-only or damaged state.

Each case gets one line saying what failed and what to do, exit 1, never ``internal error``;
the commands that only read work on a read-only ``.orch/`` and never write to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

READERS = [
    ["plan"],
    ["status"],
    ["history"],
    ["history", "--tasks"],
    ["logs", "w", "a"],
    ["task", "list"],
    ["task", "status", "1"],
    ["system", "status"],
    ["system", "metrics"],
    ["audit"],
]
WRITERS = [["apply"], ["task", "cancel", "1"]]
RESET = "run 'orch state reset' to move it aside"


def one_line(p: subprocess.CompletedProcess[str]) -> str:
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("orch: ")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture
def ran(repo: Repo) -> Repo:
    repo.write(
        "w.yaml",
        workflow(
            "w", "    - {name: a, run: 'echo hi'}\n    - {name: b, run: 'true', needs: [a]}\n"
        ),
    )
    repo.commit()
    for _ in range(3):
        assert repo.orch("apply", "--force-all").returncode == 0
    return repo


def snapshot(d: Path) -> dict[str, bytes]:
    """Every file of the state but SQLite's WAL index files (a reader of a WAL database
    may create those; they hold no data) and caches."""
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and "cache" not in p.parts and not p.name.endswith(("-wal", "-shm"))
    }


def killed_mid_run(db: Path) -> None:
    """Leave the last run as a runner killed with -9 leaves it: running, its task too."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE runs SET status='running', ended=NULL WHERE id=(SELECT max(id) FROM runs)"
        )
        conn.execute("UPDATE tasks SET status='running' WHERE run_id=(SELECT max(id) FROM runs)")
        conn.execute("UPDATE steps SET status='running'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_commands_that_read_never_write_the_state(ran: Repo) -> None:
    orch = ran.path / ".orch"
    killed_mid_run(orch / "state.db")
    before = snapshot(orch)
    outs = []
    for verb in READERS[1:]:  # plan may reap and save its hash cache
        p = ran.orch(*verb, "--json") if verb[0] in ("status", "history") else ran.orch(*verb)
        assert p.returncode == 0, (verb, p.stderr)
        outs.append(p.stdout)
    assert snapshot(orch) == before
    # a run whose runner is gone reads as interrupted, as the next writer will record it
    status = {s["step"]: s["status"] for s in json.loads(outs[0])["steps"]}
    assert status == {"a": "interrupted", "b": "interrupted"}
    assert json.loads(outs[1])[0]["status"] == "interrupted"


@contextlib.contextmanager
def read_only(d: Path) -> Iterator[None]:
    """``d`` on a read-only mount (as root; chmod does not stop root), else read-only modes."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(d)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(d)], check=True)
        return
    mounted = subprocess.run(["mount", "--bind", str(d), str(d)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_a_read_only_state_is_read_and_writers_say_so(ran: Repo) -> None:
    orch = ran.path / ".orch"
    before = snapshot(orch)
    with read_only(orch):
        outs = {}
        for verb in READERS:
            p = ran.orch(*verb)
            assert p.returncode == 0, (verb, p.stderr)
            outs[verb[0] + (verb[1] if len(verb) > 1 else "")] = p.stdout
        p = ran.orch("apply", "--force-all")
        assert p.returncode == 1
        assert "read-only" in one_line(p)
    assert "up to date" in outs["plan"] and "succeeded" in outs["status"]
    assert "\nhi\n" in outs["logsw"]
    assert snapshot(orch) == before


def test_a_read_only_state_that_was_never_written_reads_as_empty(repo: Repo) -> None:
    repo.write("w.yaml", workflow("w", "    - {name: a, run: 'true'}\n"))
    with read_only(repo.path / ".orch"):
        p = repo.orch("status")
        assert p.returncode == 0, p.stderr
        assert "never-ran" in p.stdout
        p = repo.orch("plan")
        assert p.returncode == 0, p.stderr
    assert not (repo.path / ".orch/state.db").exists()


@contextlib.contextmanager
def small_disk(d: Path, size: str) -> Iterator[None]:
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small file system")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)


def test_a_full_disk_is_one_line_and_readers_still_work(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "2m"):
        repo = Repo(tmp_path / "disk" / "repo")
        repo.path.mkdir()
        subprocess.run(["git", "init", "-q", str(repo.path)], check=True)
        repo.write(".orch/config.yaml", 'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\n')
        big = "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 3000000"
        repo.write("w.yaml", workflow("w", f"    - {{name: a, run: '{big}'}}\n"))
        p = repo.orch("apply")
        assert p.returncode == 1
        assert "disk is full" in one_line(p)
        for verb in (["status"], ["history"], ["plan"]):
            p = repo.orch(*verb)
            assert p.returncode == 0, (verb, p.stderr)


def damage(db: Path, table: str) -> None:
    """Overwrite the cells of ``table``'s root page, as a bad sector or a torn copy would."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as f:
        f.seek((page - 1) * size + 8)
        f.write(b"A" * (size // 3))


@pytest.mark.parametrize("verb", READERS + WRITERS + [["system", "health"]])
def test_every_verb_over_a_state_that_is_not_a_database(ran: Repo, verb: list[str]) -> None:
    db = ran.path / ".orch/state.db"
    db.write_bytes(os.urandom(20000))
    p = ran.orch(*verb)
    assert p.returncode == 1, p.stderr
    assert RESET in (p.stdout + p.stderr)
    if verb != ["system", "health"]:  # health lists every check, this one BAD
        assert RESET in one_line(p)


@pytest.mark.parametrize("table", ["runs", "tasks", "steps"])
def test_every_verb_over_a_damaged_page(ran: Repo, table: str) -> None:
    damage(ran.path / ".orch/state.db", table)
    for verb in [*READERS, ["apply"]]:
        p = ran.orch(*verb)
        if p.returncode != 0:  # a verb that never reads the damaged page may not notice
            assert p.returncode == 1 and RESET in one_line(p), (verb, p.stderr)
    p = ran.orch("system", "health")  # the health check reads every page
    assert p.returncode == 1 and RESET in p.stdout, p.stdout


def test_a_file_where_orch_keeps_its_logs_folder_is_one_clear_line(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", '    - {name: a, run: "true"}\n'))
    repo.write(".orch/logs", "not a folder\n")
    r = repo.apply()
    step = r["by_step"]["a"]
    assert step["status"] == "failed"
    assert "internal error" not in step["message"], step["message"]
    assert ".orch/logs" in step["message"] and "Not a directory" in step["message"]
    assert "move it away" in step["message"]
    rows = {s["step"]: s for s in repo.orch_json("status")["steps"]}
    assert rows["a"]["status"] == "failed"


def test_a_file_named_orch_says_what_to_do(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    r.path.mkdir()
    r.git("init", "-q")
    r.write("wf.yaml", workflow("w", '    - {name: a, run: "true"}\n'))
    r.write(".orch", "not a folder\n")
    for verb in ("plan", "apply"):
        p = r.orch(verb)
        assert p.returncode == 1
        assert "Not a directory" in p.stderr and "move it away" in p.stderr, p.stderr
        assert "internal error" not in p.stderr
    assert r.read(".orch") == "not a folder\n"
