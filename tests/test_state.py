"""The state store's schema versions: old files upgrade in place, newer ones are refused."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from runner.errors import StateError
from runner.store.state import APP_ID, MIGRATIONS, SCHEMA_VERSION, State


def make_v1(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    for stmt in MIGRATIONS[1].split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute(
        "INSERT INTO steps (workflow, step, env, fingerprint, status, updated) VALUES ('w','a','','f1','succeeded',1)"
    )
    conn.execute(f"PRAGMA application_id={APP_ID}")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()


def test_version_1_state_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    make_v1(tmp_path / ".orch" / "state.db")
    st = State(tmp_path / ".orch")
    rec = st.step_record("w", "a")
    assert rec is not None and rec.fingerprint == "f1" and rec.status == "succeeded"
    assert st.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    cols = {r[1] for r in st.query("PRAGMA table_info(steps)")}
    assert "result_digest" in cols
    st.close()


def test_version_3_task_rows_are_kept_and_get_an_empty_worker(tmp_path: Path) -> None:
    db = tmp_path / ".orch" / "state.db"
    make_v1(db)
    conn = sqlite3.connect(db)
    for v in (2, 3):
        for stmt in MIGRATIONS[v].split(";"):
            if stmt.strip():
                conn.execute(stmt)
    conn.execute(
        "INSERT INTO tasks (run_id, workflow, step, status, exit_code) VALUES (1,'w','a','failed',3)"
    )
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    st = State(tmp_path / ".orch")
    rows = [dict(r) for r in st.query("SELECT * FROM tasks")]
    assert st.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert [(r["step"], r["status"], r["exit_code"], r["worker"]) for r in rows] == [
        ("a", "failed", 3, None)
    ]
    st.update_task(rows[0]["id"], worker="tcp://10.0.0.7:40123")
    assert st.query("SELECT worker FROM tasks")[0][0] == "tcp://10.0.0.7:40123"
    st.close()


def test_state_from_a_newer_orch_is_refused_untouched(tmp_path: Path) -> None:
    make_v1(tmp_path / ".orch" / "state.db")
    conn = sqlite3.connect(tmp_path / ".orch" / "state.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="written by a newer orch"):
        State(tmp_path / ".orch").step_records("w")
    conn = sqlite3.connect(tmp_path / ".orch" / "state.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


def test_a_migration_that_cannot_apply_is_a_clear_error_and_rolls_back(tmp_path: Path) -> None:
    make_v1(tmp_path / ".orch" / "state.db")
    conn = sqlite3.connect(tmp_path / ".orch" / "state.db")
    conn.execute("ALTER TABLE steps ADD COLUMN result_digest TEXT")  # in the way of migration 2
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="upgrading it from version 1 failed.*orch state reset"):
        State(tmp_path / ".orch").step_records("w")
    conn = sqlite3.connect(tmp_path / ".orch" / "state.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT fingerprint FROM steps").fetchall() == [("f1",)]
    conn.close()


def test_many_runners_creating_the_state_at_once_all_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    # every process imports first, then waits for the same instant to open the state
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom runner.store.state import State\n"
        "t = float(sys.argv[2])\nwhile time.time() < t: pass\n"
        "st = State(Path(sys.argv[1]))\nst.step_records('w')\nst.close()\n"
    )
    for round_ in range(6):
        orch = tmp_path / f"r{round_}" / ".orch"
        go = str(time.time() + 0.4)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(orch), go], stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        errs = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errs


def test_step_claims_exclude_threads_and_survive_other_descriptors_closing(tmp_path: Path) -> None:
    """Long-lived processes (orch mcp, orch watch) open a State per call, in threads."""
    import threading

    orch = tmp_path / ".orch"
    a, b = State(orch), State(orch)
    assert a.try_claim("w/s")
    seen: list[bool] = []
    t = threading.Thread(target=lambda: seen.append(b.try_claim("w/s")))
    t.start()
    t.join()
    assert seen == [False]
    b.close()  # with plain POSIX locks this would drop every lock the process holds
    c = State(orch)
    assert not c.try_claim("w/s")
    a.release("w/s")
    assert c.try_claim("w/s")
    a.close()
    c.close()


def test_a_batch_commits_its_writes_together_and_a_failed_part_alone_is_undone(
    tmp_path: Path,
) -> None:
    """State.batch: each tx() inside is all or nothing on its own (a savepoint); what
    succeeded is committed at the end, seen by another connection only then; a batch that
    raises leaves nothing of itself."""
    st = State(tmp_path / ".orch")
    other = State(tmp_path / ".orch")
    a = st.start_task(1, "w", "a", "", 1, "r")
    with st.batch():
        st.update_task(a, status="succeeded")
        with pytest.raises(ZeroDivisionError), st.tx() as c:
            c.execute("UPDATE tasks SET status='failed' WHERE id=?", (a,))
            _ = 1 / 0
        b = st.start_task(1, "w", "b", "", 1, "r")
        assert other.query("SELECT count(*) FROM tasks")[0][0] == 1  # not committed yet
    statuses = {r[0]: r[1] for r in other.query("SELECT step, status FROM tasks")}
    assert statuses == {"a": "succeeded", "b": "running"}
    with pytest.raises(RuntimeError), st.batch():
        st.update_task(b, status="failed")
        raise RuntimeError("stop")
    assert other.query("SELECT status FROM tasks WHERE id=?", (b,))[0][0] == "running"
    st.close()
    other.close()


def test_an_ended_run_leaves_no_task_or_step_running(tmp_path: Path) -> None:
    """Whatever stopped it (a closed pipe mid-submit, an error), a run that has ended
    has no task or step still ``running``: they are closed ``interrupted``."""
    st = State(tmp_path / ".orch")
    run = st.begin_run(["apply"], "", None, None, ["w"])
    task = st.start_task(run, "w", "s", "", 1, "never ran", started=time.time())
    st.end_run(run, "interrupted", {})
    (row,) = st.query("SELECT status, ended, message FROM tasks WHERE id=?", (task,))
    assert row["status"] == "interrupted" and row["ended"] is not None
    assert "before its result was recorded" in row["message"]
    (step,) = st.query("SELECT status FROM steps WHERE workflow='w' AND step='s'")
    assert step["status"] == "interrupted"
    st.close()


def test_reset_that_fails_partway_moves_nothing_aside(tmp_path: Path) -> None:
    """``orch state reset`` moves state.db and its -wal aside together or not at all: a
    state.db moved without its -wal loses the runs not yet checkpointed into it."""
    from runner.store.state import reset

    orch = tmp_path / ".orch"
    orch.mkdir()
    (orch / "state.db").write_bytes(b"db")
    (orch / "state.db-wal").write_bytes(b"wal")
    now = time.time()
    for s in range(-1, 30):  # the backup's -wal name, whatever second the reset takes
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now + s))
        (orch / f"state.db.bak-{stamp}-wal" / "in-the-way").mkdir(parents=True)
    with pytest.raises(StateError, match=r"state\.db: cannot move it aside .*nothing was moved"):
        reset(orch)
    assert (orch / "state.db").read_bytes() == b"db"
    assert (orch / "state.db-wal").read_bytes() == b"wal"
    assert not [p for p in orch.iterdir() if p.is_file() and p.name.startswith("state.db.bak")]
