"""The result cache against a damaged or hostile store, through the real CLI: whatever
sits where a blob or an entry should be (a FIFO, a folder, a symlink elsewhere), orch
never hangs, never restores what is not the result, and heals the store by running."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow


@pytest.fixture(autouse=True)
def _cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache."""
    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)


STEP = """\
    - name: build
      inputs: [src.txt]
      outputs: [out.txt]
      run: |
        echo build >> runs.log
        cat src.txt > out.txt
"""


def _setup(repo: Repo) -> Path:
    """A step stored for src.txt 'one', then run for 'two': src.txt is back at 'one',
    so the next apply restores. Returns the path of the stored blob of 'one'."""
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    repo.write("wf.yaml", workflow("w", STEP))
    repo.write(".gitignore", "runs.log\nout.txt\n")
    repo.write("src.txt", "one\n")
    assert repo.apply()["ok"]
    repo.write("src.txt", "two\n")
    assert repo.apply()["ok"]
    repo.write("src.txt", "one\n")
    blobs = repo.path / ".orch/cache/results/blobs"
    return next(p for p in blobs.rglob("*") if p.is_file() and p.read_bytes() == b"one\n")


def _entry_of(repo: Repo, blob: Path) -> Path:
    entries = repo.path / ".orch/cache/results/entries"
    for p in entries.rglob("*.json"):
        if json.loads(p.read_text())["outputs"][0]["blob"] == blob.name:
            return p
    raise AssertionError("no entry refers to the blob")


def _runs(repo: Repo) -> list[str]:
    return repo.read("runs.log").split() if repo.exists("runs.log") else []


def _status(data: dict) -> dict[str, str]:
    return {s["step"]: s["status"] for s in data["steps"]}


def _replace(path: Path, kind: str) -> None:
    os.chmod(path, 0o644)
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
        (path / "x").write_text("x")
    else:
        target = path.parent / "elsewhere"
        target.write_text("not the result\n")
        os.symlink(target, path)


@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink"])
def test_a_blob_replaced_by_a_special_file_is_a_miss_and_heals(repo: Repo, kind: str) -> None:
    blob = _setup(repo)
    _replace(blob, kind)
    p = repo.orch("apply", timeout=30)
    assert p.returncode == 0, p.stderr
    assert "corrupted" in p.stderr
    assert repo.read("out.txt") == "one\n"
    assert _runs(repo) == ["build", "build", "build"]
    # the run stored the blob again: the next time 'one' comes back it is restored
    assert blob.is_file() and not blob.is_symlink() and blob.read_bytes() == b"one\n"
    repo.write("src.txt", "two\n")
    assert repo.apply()["ok"]
    repo.write("src.txt", "one\n")
    assert _status(repo.apply()) == {"build": "restored"}


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_an_entry_replaced_by_a_special_file_is_a_miss_and_heals(repo: Repo, kind: str) -> None:
    blob = _setup(repo)
    entry = _entry_of(repo, blob)
    _replace(entry, kind)
    p = repo.orch("plan", timeout=30)
    assert p.returncode == 0, p.stderr
    assert "will run" in p.stdout
    s = repo.orch("cache", "status", timeout=30)
    assert s.returncode == 0 and "entries:   1\n" in s.stdout, s.stdout + s.stderr
    assert repo.apply()["ok"]
    assert entry.is_file() and repo.read("out.txt") == "one\n"
    repo.write("src.txt", "two\n")
    assert repo.apply()["ok"]
    repo.write("src.txt", "one\n")
    assert _status(repo.apply()) == {"build": "restored"}


def test_clear_removes_a_folder_where_an_entry_should_be(repo: Repo) -> None:
    blob = _setup(repo)
    entry = _entry_of(repo, blob)
    _replace(entry, "dir")
    p = repo.orch("cache", "clear")
    assert p.returncode == 0, p.stderr
    assert not entry.exists()
    assert "removed 2 entries" in p.stdout, p.stdout
