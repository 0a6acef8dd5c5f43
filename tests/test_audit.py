"""The audit log: every state-changing command is a row; read verbs and no-ops are not."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from runner.store.state import APP_ID, MIGRATIONS, SCHEMA_VERSION, State
from tests.conftest import Repo, workflow

STEP = "    - name: a\n      run: echo {{ params.msg }} > a.txt\n      outputs: [a.txt]\n"
WF = workflow("w", STEP, extra="  params: {msg: hi}\n")


def audit(repo: Repo, *args: str) -> list[dict[str, Any]]:
    p = repo.orch("audit", "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_apply_is_recorded_with_who_where_and_outcome(repo: Repo) -> None:
    repo.write("orch.yaml", WF)
    commit = repo.commit()
    assert repo.orch("apply", "-q").returncode == 0
    (row,) = audit(repo)
    assert row["argv"][-2:] == ["apply", "-q"]
    assert (row["exit_code"], row["error"]) == (0, None)
    assert row["commit"] == commit and row["dirty"] is False
    assert isinstance(row["pid"], int) and row["pid"] != os.getpid()
    assert row["user"] and row["host"] and row["time"].endswith("Z")
    text = repo.orch("audit").stdout
    assert "orch -C" in text and "apply -q" in text


def test_read_verbs_and_a_no_op_apply_are_not_recorded(repo: Repo) -> None:
    repo.write("orch.yaml", WF)
    assert repo.orch("apply").returncode == 0
    for verb in (
        ["plan"],
        ["status"],
        ["history"],
        ["logs", "w", "a"],
        ["validate"],
        ["apply"],  # nothing to do: no run began
        ["apply", "--dry-run", "--force-all"],
        ["audit"],
    ):
        assert repo.orch(*verb).returncode == 0, verb
    assert len(audit(repo)) == 1


def test_failures_are_recorded_with_their_line_but_never_create_the_state(repo: Repo) -> None:
    repo.write("orch.yaml", WF)
    p = repo.orch("apply", "nope")
    assert p.returncode == 1 and not repo.exists(".orch/state.db")
    repo.write("orch.yaml", WF.replace("echo", "exit 4; echo"))
    assert repo.orch("apply").returncode == 1
    assert repo.orch("apply", "nope").returncode == 1
    rows = audit(repo)
    assert [(r["argv"][-1], r["exit_code"]) for r in rows] == [("apply", 1), ("nope", 1)]
    assert rows[0]["error"] is None  # a step failed: its exit code says so
    assert "nope" in rows[1]["error"]


def test_secrets_in_the_command_line_are_masked(repo: Repo) -> None:
    tok = "hunter2-not-for-the-log"
    repo.write("orch.yaml", WF.replace("name: a\n", "name: a\n      secrets: [TOK]\n"))
    p = repo.orch("apply", "--param", f"msg={tok}", env={"TOK": tok})
    assert p.returncode == 0, p.stderr
    rows = audit(repo)
    assert rows[0]["argv"][-1] == "msg=***"
    assert tok.encode() not in (repo.path / ".orch" / "state.db").read_bytes()


def test_state_reset_and_task_cancel_are_recorded(repo: Repo) -> None:
    repo.write("orch.yaml", WF)
    assert repo.orch("apply").returncode == 0
    assert repo.orch("task", "cancel", "999").returncode == 1  # no such task
    assert [r["argv"][-3:] for r in audit(repo)][-1] == ["task", "cancel", "999"]
    moved = json.loads(repo.orch("state", "reset", "--json").stdout)["moved_to"]
    # the log went with the old state, the backup: the reset is its last row, and no new
    # state.db is made to hold it
    assert not repo.exists(".orch/state.db") and audit(repo) == []
    from runner.store.audit import rows

    st = State(repo.path / ".orch", readonly=True, path=Path(moved))
    assert [(r["argv"][-3:], r["exit_code"]) for r in rows(st)][-1] == (
        ["state", "reset", "--json"],
        0,
    )
    st.close()
    assert repo.orch("state", "reset").returncode == 0  # nothing to reset: no row anywhere
    assert not repo.exists(".orch/state.db")


def test_rows_are_pruned_by_count_and_age(repo: Repo) -> None:
    repo.write(
        ".orch/config.yaml",
        'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\naudit: {max_rows: 2, max_age: 30d}\n',
    )
    repo.write("orch.yaml", WF)
    for _ in range(3):
        assert repo.orch("apply", "--force-all").returncode == 0
    rows = audit(repo)
    assert len(rows) == 2 and rows[0]["id"] == 2
    conn = sqlite3.connect(repo.path / ".orch" / "state.db")
    conn.execute("UPDATE audit SET at = at - 31 * 86400 WHERE id = 3")  # a month ago
    conn.commit()
    conn.close()
    assert repo.orch("apply", "--force-all").returncode == 0
    # 3 is gone by age, though by count alone 3 and 4 would be kept
    assert [r["id"] for r in audit(repo)] == [2, 4]


def test_since_filters_and_a_bad_date_is_one_line(repo: Repo) -> None:
    repo.write("orch.yaml", WF)
    assert repo.orch("apply").returncode == 0
    assert len(audit(repo, "--since", "1d")) == 1
    assert len(audit(repo, "--since", "2000-01-01")) == 1
    assert audit(repo, "--since", "2999-01-01T00:00Z") == []
    before = (repo.path / ".orch" / "state.db").read_bytes()
    p = repo.orch("audit", "--since", "2026-13-45")
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "--since 2026-13-45" in p.stderr
    assert (repo.path / ".orch" / "state.db").read_bytes() == before


def test_a_config_with_bad_audit_settings_is_a_positioned_error(repo: Repo) -> None:
    repo.write(
        ".orch/config.yaml",
        'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\naudit: {max_rows: 0}\n',
    )
    repo.write("orch.yaml", WF)
    p = repo.orch("validate")
    assert p.returncode == 1 and ".orch/config.yaml:4" in p.stderr and "max_rows" in p.stderr


def _v4(db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    for v in range(1, 5):
        for stmt in MIGRATIONS[v].split(";"):
            if stmt.strip():
                conn.execute(stmt)
    conn.execute(f"PRAGMA application_id={APP_ID}")
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()


def test_a_version_4_state_upgrades_and_reads_read_only_as_it_is(repo: Repo) -> None:
    db = repo.path / ".orch" / "state.db"
    _v4(db)
    ro = State(db.parent, readonly=True)  # a read verb on a read-only .orch/: no upgrade
    assert ro.query("PRAGMA user_version")[0][0] == 4
    from runner.store.audit import rows

    assert rows(ro) == []
    ro.close()
    repo.write("orch.yaml", WF)
    assert audit(repo) == [] and repo.orch("status").returncode == 0
    assert repo.orch("apply").returncode == 0  # a writer upgrades it
    st = State(db.parent)
    assert st.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    st.close()
    assert len(audit(repo)) == 1


def test_a_no_op_apply_writes_nothing_and_keeps_its_fast_path(repo: Repo) -> None:
    from tests.test_noop import age_everything

    repo.write("orch.yaml", WF)
    assert repo.orch("apply").returncode == 0
    age_everything(repo.path)
    assert repo.orch("apply").returncode == 0  # writes the no-op witness
    orch = repo.path / ".orch"
    before = {p.name: p.stat().st_mtime_ns for p in (orch / "state.db", orch / "cache/noop.json")}
    code = (
        "import sys\nfrom runner.cli.main import main\n"
        f"main(['-C', {str(repo.path)!r}, 'apply'])\n"
        "print('audit-store', 'runner.store.audit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "audit-store False" in out.stdout, out.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (orch / "state.db", orch / "cache/noop.json")}
    assert after == before  # the witness still holds: the next no-op is as fast
    assert len(audit(repo)) == 1


def test_project_and_workflow_verbs_are_recorded(repo: Repo) -> None:
    repo.commit()
    assert (
        repo.orch(
            "workflow", "create", "d", "--template", "data-pipeline", "--path", "d"
        ).returncode
        == 0
    )
    assert repo.orch("project", "create", "web", "--template", "web-app").returncode == 0
    repo.commit()
    assert repo.orch("project", "archive", "web").returncode == 0
    assert repo.orch("project", "restore", "web").returncode == 0
    assert repo.orch("project", "list").returncode == 0  # a read: not recorded
    verbs = [(r["argv"][2:4], r["exit_code"]) for r in audit(repo)]
    assert verbs == [
        (["workflow", "create"], 0),
        (["project", "create"], 0),
        (["project", "archive"], 0),
        (["project", "restore"], 0),
    ]
