"""Bytes that are not UTF-8 (file names, environment values, step output) never become an
internal error, and no error path leaves a task "running"."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

NAME = b"caf\xe9.txt"  # Latin-1, as an old archive or a Windows share leaves it
SHOWN = "caf\\xe9.txt"


def make(folder: Path, name: bytes, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(data)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")


def open_tasks(repo: Repo) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(repo.path / ".orch" / "state.db")
    try:
        return conn.execute(
            "SELECT step, status FROM tasks WHERE status IN ('running', 'queued')"
        ).fetchall()
    finally:
        conn.close()


def test_a_file_name_that_is_not_utf8_in_an_input_folder(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow("w", "    - name: a\n      run: ls src > out.txt\n      inputs: [src/]\n"),
    )
    make(repo.path / "src", NAME, b"v1\n")
    assert repo.apply()["ok"]
    assert repo.plan()[("w", "a")][0] == "up-to-date"
    make(repo.path / "src", NAME, b"v2\n")
    p = repo.orch("plan")
    assert p.returncode == 0 and f"input changed: src/{SHOWN}" in p.stdout, p.stderr
    assert repo.plan()[("w", "a")] == ("run", [f"input changed: src/{SHOWN}"])
    assert repo.apply()["ok"]
    assert repo.orch("status").returncode == 0
    assert open_tasks(repo) == []


def test_a_step_writing_such_a_name_into_its_output_folder(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - name: o\n      run: mkdir -p od && printf x > \"od/caf$(printf '\\351')\"\n"
            "      outputs: [od/]\n",
        ),
    )
    r = repo.apply()
    assert r["ok"], r["by_step"]["o"]
    assert open_tasks(repo) == []
    assert repo.plan()[("w", "o")][0] == "up-to-date"
    os.remove(os.path.join(os.fsencode(repo.path / "od"), b"caf\xe9"))
    assert repo.plan()[("w", "o")] == ("run", ["output modified: od/"])


def test_an_environment_value_that_is_not_utf8(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow("w", "    - name: g\n      run: echo {{ env.GREETING }} > g.txt\n"),
    )
    env = {**os.environ}
    env.pop("GREETING", None)
    import subprocess
    import sys

    def orch(value: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
        envb = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        envb[b"GREETING"] = value
        return subprocess.run(
            [sys.executable, "-m", "runner", "-C", str(repo.path), *args],
            env=envb,
            capture_output=True,
        )

    assert orch(b"caf\xe9", "apply").returncode == 0
    assert (repo.path / "g.txt").read_bytes() == b"caf\xe9\n"  # the bytes, unchanged
    p = orch(b"caf\xe9", "plan", "--json")
    assert json.loads(p.stdout)["summary"]["up-to-date"] == 1, p.stderr
    p = orch(b"caf\xe8", "plan", "--json")
    (step,) = json.loads(p.stdout)["steps"]
    assert step["reasons"] == ["definition changed (environ: GREETING)"]


def test_step_output_that_is_not_utf8_fails_the_step_clearly_and_closes_its_task(
    repo: Repo,
) -> None:
    repo.write(
        "wf.yaml",
        workflow("w", "    - name: v\n      run: printf 'k=caf\\351\\n' >> \"$ORCH_OUTPUT\"\n"),
    )
    r = repo.apply()
    res = r["by_step"]["v"]
    assert res["status"] == "failed" and "UTF-8" in res["message"], res
    assert "internal error" not in res["message"]
    assert open_tasks(repo) == []


def test_an_error_while_recording_a_task_closes_it_with_the_step(repo: Repo) -> None:
    """Whatever fails after a task started (here: a result that cannot be stored), the
    step is recorded failed and its task row ends in the same transaction."""
    from tests.fakes import Exit, FakeExecutor, apply

    repo.write("wf.yaml", workflow("w", "    - name: a\n      run: echo\n"))
    fake = FakeExecutor({"w/a": [Exit(outputs={"k": object()})]})  # type: ignore[dict-item]
    result = apply(repo.path, fake)
    (res,) = result.results
    assert res.status == "failed" and res.message.startswith("internal error")
    assert open_tasks(repo) == []
    assert repo.plan()[("w", "a")] == ("run", ["last run failed"])
