"""Entries crafted by whoever else writes a shared or remote result cache, through the
real CLI: a restore writes only the step's declared outputs, never a special mode bit,
and an entry it will not follow is a miss with one warning (the step runs)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo
from tests.test_result_cache import _apply_ok, _runs, _setup, _status

# the suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache
pytestmark = pytest.mark.usefixtures("cache_on")


def _craft(repo: Repo, step: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite every entry of ``step`` in place, as another writer of the store could."""
    for p in (repo.path / ".orch/cache/results/entries").rglob("*.json"):
        data = json.loads(p.read_text())
        if data["meta"]["step"] == step:
            change(data)
            p.chmod(0o644)
            p.write_text(json.dumps(data))


def _add_output(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        out = next(o for o in data["outputs"] if o["kind"] == "file")
        data["outputs"].append({**out, "path": path})

    return change


@pytest.mark.parametrize("path", ["src.txt", "wf.yaml", "notes/new.txt"])
def test_an_entry_naming_a_path_the_step_does_not_output_is_a_miss(repo: Repo, path: str) -> None:
    _setup(repo)
    _apply_ok(repo)
    _craft(repo, "build", _add_output(path))
    before = repo.read(path) if repo.exists(path) else None
    shutil.rmtree(repo.path / "dist")
    assert repo.plan()[("w", "build")][0] == "run"  # the plan does not promise it either
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if "warning" in ln]
    assert (
        len(warnings) == 1 and f"names {path!r}, not one of the step's outputs" in (warnings[0])
    ), p.stderr
    assert _runs(repo) == ["build", "use", "build"]  # ran instead
    assert (repo.read(path) if repo.exists(path) else None) == before


def test_a_restore_never_sets_setuid_setgid_or_sticky_bits(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)

    def special(data: dict[str, Any]) -> None:
        for o in data["outputs"]:
            if o["kind"] == "dir":
                o["mode"] = 0o7755
                o["files"] = [[s, b, m | 0o6000, n] for s, b, m, n in o["files"]]
            else:
                o["mode"] |= 0o7000

    _craft(repo, "build", special)
    shutil.rmtree(repo.path / "dist")
    (repo.path / "out.txt").unlink()
    assert _status(_apply_ok(repo))["build"] == "restored"
    for rel in ["out.txt", "dist", "dist/tool.sh", "dist/sub/version.txt"]:
        mode = os.lstat(repo.path / rel).st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX), (rel, oct(mode))
    assert os.access(repo.path / "dist/tool.sh", os.X_OK)  # the permission bits stay


@pytest.mark.parametrize("mode", [2**70, -1])
def test_an_entry_with_a_mode_no_file_has_is_a_miss(repo: Repo, mode: int) -> None:
    _setup(repo)
    _apply_ok(repo)

    def bad(data: dict[str, Any]) -> None:
        for o in data["outputs"]:
            o["mode"] = mode

    _craft(repo, "build", bad)
    shutil.rmtree(repo.path / "dist")
    p = repo.orch("apply")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "internal error" not in p.stderr, p.stderr
    assert _runs(repo) == ["build", "use", "build"]
    assert Path(repo.path / "dist/sub/version.txt").read_text() == "1\n"


@pytest.mark.parametrize("verb", ["gc", "clear"])
@pytest.mark.parametrize("below", ["", "/sub"])
def test_a_cache_dir_that_is_a_file_is_one_line(
    repo: Repo, tmp_path: Path, verb: str, below: str
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x\n")
    _setup(repo, f"cache: {{dir: {blocker}{below}}}\n")
    p = repo.orch("cache", verb)
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines() == [
        f"orch: .orch/config.yaml: result cache {blocker}{below}: a file is where a folder"
        " should be; make it a folder orch can write, or change cache.dir"
    ]
    assert blocker.read_text() == "x\n"


def test_an_apply_that_cannot_write_the_cache_says_so_once(repo: Repo, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x\n")
    _setup(repo, f"cache: {{dir: {blocker}}}\n")
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr  # the steps ran and are recorded: only storing failed
    warnings = [ln for ln in p.stderr.splitlines() if "warning" in ln]
    assert warnings == [
        f"orch: warning: result cache {blocker} cannot be written: File exists; results are"
        " not stored (make it a folder orch can write, or set cache: false)"
    ], p.stderr
    assert _runs(repo) == ["build", "use"] and blocker.read_text() == "x\n"


def _nul_in_sub(data: dict[str, Any]) -> None:
    folder = next(o for o in data["outputs"] if o["kind"] == "dir")
    folder["files"][0][0] = "a\x00b"


def _nul_in_value(data: dict[str, Any]) -> None:
    data["values"]["size"] = "4\x00; echo pwned"


@pytest.mark.parametrize("damage", [_nul_in_sub, _nul_in_value])
def test_an_entry_holding_a_nul_is_a_damaged_entry(repo: Repo, damage) -> None:
    _setup(repo)
    _apply_ok(repo)
    _craft(repo, "build", damage)
    shutil.rmtree(repo.path / "dist")
    (repo.path / "out.txt").write_text("edited\n")  # so that use must run after build
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    assert "has a shape orch does not write (damaged)" in p.stderr, p.stderr
    assert _runs(repo) == ["build", "use", "build"]
    assert repo.read("final.txt") == "one\n4\n"


@pytest.mark.parametrize("blob", ["xyz", "../" + "a" * 30, "A" * 32])
def test_an_entry_naming_a_blob_put_never_names_is_a_damaged_entry(repo: Repo, blob: str) -> None:
    _setup(repo)
    _apply_ok(repo)

    def bad(data: dict[str, Any]) -> None:
        out = next(o for o in data["outputs"] if o["kind"] == "file")
        out["blob"], out["mode"] = blob, 0o755  # executable: the plan reads its blob

    _craft(repo, "build", bad)
    (repo.path / "out.txt").unlink()
    assert repo.plan()[("w", "build")][0] == "run"
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    assert "has a shape orch does not write (damaged)" in p.stderr, p.stderr
    assert _runs(repo) == ["build", "use", "build"] and repo.read("out.txt") == "one\n"


def test_a_max_size_that_is_not_a_size_is_one_line_in_words(repo: Repo) -> None:
    _setup(repo, "cache: {max_size: lots}\n")
    p = repo.orch("plan")
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines() == [
        ".orch/config.yaml:3:8: cache: 'lots' is not a size (use e.g. 500MB, 5GiB, 1024)"
    ]


@pytest.mark.parametrize("created", [1e300, float("nan"), -5.0])
def test_an_entry_stored_at_no_possible_time_is_a_damaged_entry(repo: Repo, created: float) -> None:
    _setup(repo)
    _apply_ok(repo)
    _craft(repo, "build", lambda data: data.update(created=created))
    (repo.path / "out.txt").unlink()
    assert repo.plan()[("w", "build")][0] == "run"
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    assert "has a shape orch does not write (damaged)" in p.stderr, p.stderr
    assert _runs(repo) == ["build", "use", "build"]
