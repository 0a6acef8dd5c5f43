"""The result cache against a damaged or hostile store, through the real CLI: whatever
sits where a blob or an entry should be (a FIFO, a folder, a symlink elsewhere), orch
never hangs, never restores what is not the result, and heals the store by running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

# the suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache
pytestmark = pytest.mark.usefixtures("cache_on")


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


def _remote_setup(repo: Repo, url: str) -> None:
    repo.write(
        ".orch/config.yaml", f"apiVersion: orch/v1\nkind: Config\ncache: {{remote: '{url}'}}\n"
    )
    repo.write("wf.yaml", workflow("w", STEP))
    repo.write(".gitignore", "runs.log\nout.txt\n")
    repo.write("src.txt", "one\n")


def _one_line_error(p: object, *words: str) -> None:
    lines = p.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert p.returncode not in (0, 3) and len(lines) == 1, p.stderr  # type: ignore[attr-defined]
    assert lines[0].startswith("orch: .orch/config.yaml: cache.remote "), lines[0]
    assert "internal error" not in lines[0] and all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize(
    ("url", "words"),
    [("foo://bucket/x", ["Protocol not known: foo", "file://"]), ("s3://bucket/x", ["s3fs"])],
)
def test_a_remote_that_cannot_be_reached_is_one_line_for_every_verb(
    repo: Repo, url: str, words: list[str]
) -> None:
    pytest.importorskip("fsspec")
    if url.startswith("s3:"):
        try:
            import s3fs  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("s3fs is installed here")
    _remote_setup(repo, url)
    for verb in (["plan"], ["apply"], ["cache", "status"], ["cache", "gc"], ["cache", "clear"]):
        _one_line_error(repo.orch(*verb), *words)
    assert not repo.exists("out.txt") and not repo.exists("runs.log")


def test_a_remote_without_fsspec_names_the_extra(repo: Repo, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "fsspec"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'fsspec'\", name='fsspec')\n"
    )
    _remote_setup(repo, "file:///nowhere")
    env = {"PYTHONPATH": str(shadow.parent)}
    for verb in (["plan"], ["cache", "status"]):
        p = repo.orch(*verb, env=env)
        _one_line_error(p, "needs fsspec", "orch-gitops[cache-remote]")


def test_a_relative_file_remote_is_relative_to_the_repository(repo: Repo, tmp_path: Path) -> None:
    """``remote: file://shared/x`` was taken relative to the process's current directory:
    ``orch -C repo`` from elsewhere made (and used) another store there."""
    pytest.importorskip("fsspec")
    _remote_setup(repo, "file://shared/x")
    repo.write(".gitignore", "runs.log\nout.txt\nshared/\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def orch(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "runner", "-C", str(repo.path), *args]
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        return subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, env=env)

    assert orch("apply").returncode == 0
    assert (repo.path / "shared" / "x").is_dir() and not (elsewhere / "shared").exists()
    repo.write("src.txt", "two\n")
    assert orch("apply").returncode == 0
    repo.write("src.txt", "one\n")
    p = orch("apply")
    assert p.returncode == 0, p.stderr
    assert repo.read("runs.log") == "build\nbuild\n" and repo.read("out.txt") == "one\n"


NESTED = """\
    - name: build
      inputs: [src.txt]
      outputs: [a.txt, sub/x.txt]
      run: |
        echo build >> runs.log
        cat src.txt > a.txt
        mkdir -p sub && cat src.txt > sub/x.txt
"""


def test_a_file_where_an_output_folder_belongs_is_no_half_restore(repo: Repo) -> None:
    """A user put a file where a restore needs a folder (``sub`` for ``sub/x.txt``): the
    restore was an internal error after it had already replaced ``a.txt``."""
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    repo.write("wf.yaml", workflow("w", NESTED))
    repo.write(".gitignore", "runs.log\na.txt\nsub\n")
    repo.write("src.txt", "one\n")
    assert repo.apply()["ok"]
    repo.write("src.txt", "two\n")
    assert repo.apply()["ok"]
    repo.write("src.txt", "one\n")
    shutil.rmtree(repo.path / "sub")
    repo.write("sub", "mine\n")
    p = repo.orch("apply")
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert "cannot restore sub/x.txt: sub is not a folder" in p.stderr, p.stderr
    # the step ran instead (and failed on the file, as it would without a cache)
    assert repo.read("runs.log").split() == ["build"] * 3
    assert repo.read("sub") == "mine\n"


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["outputs"][0].update(blob=123),
        lambda d: d["outputs"][0].update(mode="rw"),
        lambda d: d["outputs"][0].update(size="big"),
        lambda d: d["outputs"][0].pop("blob"),
        lambda d: d.update(outputs=[{"path": "out.txt", "kind": "dir", "files": [["x"]]}]),
        lambda d: d.update(outputs=[{"path": 5, "kind": "file"}]),
        lambda d: d.update(outputs=[1]),
        lambda d: d.update(values="str"),
        lambda d: d.update(created="x"),
        lambda d: d.update(meta=[1]),
    ],
)
def test_an_entry_of_another_shape_is_a_miss_for_every_verb(repo: Repo, damage: object) -> None:
    """An entry is data from a store that may be shared: valid JSON of another shape was
    an internal error in plan, apply, cache status and cache gc."""
    blob = _setup(repo)
    entry = _entry_of(repo, blob)
    data = json.loads(entry.read_text())
    damage(data)  # type: ignore[operator]
    entry.write_text(json.dumps(data))
    for verb in (["plan"], ["cache", "status"], ["cache", "gc"], ["apply"]):
        p = repo.orch(*verb)
        assert p.returncode == 0 and "internal error" not in p.stderr, (verb, p.stderr)
    assert repo.read("out.txt") == "one\n"
    assert _runs(repo) == ["build", "build", "build"]


def test_a_symlinked_blob_never_becomes_a_link_in_the_work_tree(repo: Repo) -> None:
    """``link: hardlink`` and a blob that is a symlink to a file of the right content
    elsewhere: the restore must not put that symlink (or a hard link to the file it
    names) in the work tree; the blob is dropped and the step runs."""
    blob = _setup(repo)
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\ncache: {link: hardlink}\n")
    outside = repo.path.parent / "elsewhere.txt"
    outside.write_text("one\n")
    os.chmod(blob, 0o644)
    blob.unlink()
    os.symlink(outside, blob)
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    out = repo.path / "out.txt"
    assert not out.is_symlink() and os.lstat(out).st_ino != os.stat(outside).st_ino
    assert out.read_text() == "one\n"
    assert not blob.is_symlink()


DIST = """\
    - name: build
      inputs: [src.txt]
      outputs: [dist/]
      run: |
        echo build >> runs.log
        mkdir -p dist && cat src.txt > dist/a.txt
"""


def test_an_entry_holding_an_output_of_the_other_kind_is_damaged(repo: Repo) -> None:
    """The step makes the folder ``dist/``; an entry holding ``dist`` as a file was
    restored (the folder replaced by a file) and the plan promised it."""
    repo.write("wf.yaml", workflow("w", DIST))
    repo.write(".gitignore", "runs.log\ndist/\n")
    repo.write("src.txt", "one\n")
    assert repo.apply()["ok"]
    (entry,) = (repo.path / ".orch" / "cache" / "results" / "entries").rglob("*.json")
    data = json.loads(entry.read_text())
    (out,) = data["outputs"]
    _sub, blob, mode, size = out["files"][0]
    data["outputs"] = [{"path": "dist", "kind": "file", "blob": blob, "mode": mode, "size": size}]
    entry.write_text(json.dumps(data))
    repo.write("src.txt", "two\n")
    assert repo.apply()["ok"]
    repo.write("src.txt", "one\n")
    action, reasons = repo.plan()[("w", "build")]
    assert action == "run", reasons
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    assert (repo.path / "dist").is_dir() and repo.read("dist/a.txt") == "one\n"
    assert repo.read("runs.log") == "build\nbuild\nbuild\n"
    warned = [ln for ln in p.stderr.splitlines() if "as a file" in ln]
    assert len(warned) == 1, p.stderr
    assert "the step's output is a folder" in warned[0], warned[0]
