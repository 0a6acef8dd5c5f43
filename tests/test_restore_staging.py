"""The result cache's restores stage in one folder per apply (runner.store.staging), and
its stores happen in the task's thread: what an apply leaves behind (nothing staged, even
after a miss or a failed run), and what stays guaranteed (a miss is never half a restore,
a stored result is in the store before the step's dependants start, a put refuses a file
written after its task ended even while other puts run)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from runner.store.results import open_store, result_key
from tests.conftest import Repo, workflow

# the suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache
pytestmark = pytest.mark.usefixtures("cache_on")


def _staged(root: Path) -> list[str]:
    """Everything under ``root/.orch/tmp`` (the staging folders and what they hold)."""
    tmp = root / ".orch" / "tmp"
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")) if tmp.is_dir() else []


def _tree(root: Path) -> None:
    (root / "dist").mkdir(parents=True)
    (root / "dist" / "a.txt").write_text("alpha\n")
    (root / "dist" / "b.txt").write_text("beta\n")
    (root / "out.txt").write_text("one\n")


def test_restores_share_one_staging_folder_that_close_removes(tmp_path: Path) -> None:
    root = tmp_path / "work"
    _tree(root)
    store = open_store(root, None)
    for i, rel in enumerate(["dist", "out.txt"]):
        assert store.put(result_key(f"{i:032x}"), root=root, files=[rel], values={}, meta={})
    for i in range(2):
        assert store.restore(result_key(f"{i:032x}"), root) == {}
    (folder,) = _staged(root)  # one folder for both restores, and nothing left in it
    assert folder.startswith("restore-")
    assert (root / "dist" / "b.txt").read_text() == "beta\n"
    store.close()
    assert _staged(root) == []
    assert store.restore(result_key(f"{0:032x}"), root) == {}  # usable again after close
    store.close()
    assert _staged(root) == []


def test_a_miss_leaves_nothing_staged_and_the_work_tree_as_it_was(tmp_path: Path) -> None:
    root = tmp_path / "work"
    _tree(root)
    said: list[str] = []
    store = open_store(root, None, warn=said.append)
    assert store.put("k", root=root, files=["dist", "out.txt"], values={}, meta={})
    blob = root / ".orch/cache/results/blobs"
    victim = next(p for p in blob.rglob("*") if p.is_file() and p.read_bytes() == b"beta\n")
    os.chmod(victim, 0o644)
    victim.write_bytes(b"bad\n")
    (root / "out.txt").write_text("edited\n")
    assert store.restore("k", root) is None
    assert len(said) == 1 and "corrupted" in said[0]
    (folder,) = _staged(root)  # a.txt was staged before b.txt failed: gone again
    assert (root / "out.txt").read_text() == "edited\n"
    store.close()
    assert _staged(root) == []


def test_a_staging_folder_that_cannot_be_made_is_a_miss_that_keeps_the_blobs(
    tmp_path: Path,
) -> None:
    root = tmp_path / "work"
    _tree(root)
    said: list[str] = []
    store = open_store(root, None, warn=said.append)
    assert store.put("k", root=root, files=["out.txt"], values={"v": "1"}, meta={})
    (root / "out.txt").unlink()
    (root / ".orch" / "tmp").write_text("a file where orch stages restores\n")
    assert store.restore("k", root) is None  # a miss: the step would run
    assert len(said) == 1 and "cannot stage" in said[0] and "running the step" in said[0]
    (root / ".orch" / "tmp").unlink()
    assert store.restore("k", root) == {"v": "1"}  # the blob was not dropped as corrupt
    assert (root / "out.txt").read_text() == "one\n"
    store.close()


def test_a_put_refuses_a_late_file_while_other_threads_put(tmp_path: Path) -> None:
    """``written_before`` belongs to one put: a put from another thread (an apply stores
    each success in its task's thread) never lends its own to it."""
    root = tmp_path / "work"
    _tree(root)
    store = open_store(root, None)
    late = (root / "out.txt").stat().st_mtime - 10  # the task "ended" before the write
    stored: list[bool] = []
    stop = threading.Event()

    def other() -> None:
        while not stop.is_set():
            store.put("any", root=root, files=["dist"], values={}, meta={})

    t = threading.Thread(target=other)
    t.start()
    try:
        for i in range(200):
            key = f"late{i}"
            stored.append(
                store.put(
                    key, root=root, files=["out.txt"], values={}, meta={}, written_before=late
                )
            )
    finally:
        stop.set()
        t.join()
    assert not any(stored)
    store.close()


STEPS = """\
    - name: make
      outputs: [a.txt]
      run: echo made > a.txt
    - name: count
      needs: [make]
      inputs: [a.txt]
      outputs: [n.txt]
      run: ls .orch/cache/results/entries/*/*.json | wc -l | tr -d ' ' > n.txt
    - name: boom
      needs: [count]
      outputs: [boom.txt]
      run: test {{ params.boom }} = ok && echo ok > boom.txt
"""


def _setup(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", STEPS, extra="  params: {boom: ok}\n"))
    repo.write(".gitignore", "a.txt\nn.txt\nboom.txt\n")


def test_a_result_is_stored_before_its_dependants_start(repo: Repo) -> None:
    _setup(repo)
    data = repo.apply()
    assert data["ok"], data
    assert repo.read("n.txt") == "1\n"  # make's entry was there when count started
    assert _staged(repo.path) == []


def test_no_staging_folder_is_left_after_an_apply_even_a_failed_one(repo: Repo) -> None:
    _setup(repo)
    assert repo.apply()["ok"]
    for f in ("a.txt", "n.txt"):
        (repo.path / f).unlink()
    data = repo.apply("--param", "boom=no")
    assert not data["ok"]
    status = {s["step"]: s["status"] for s in data["steps"]}
    assert status == {"make": "restored", "count": "restored", "boom": "failed"}
    assert repo.read("a.txt") == "made\n" and repo.read("n.txt") == "1\n"
    assert _staged(repo.path) == []


def test_fifty_restores_in_one_apply_share_one_staging_folder(repo: Repo) -> None:
    """Every restore of an apply stages under its own name in the one folder: none
    meets another's files, and nothing is left once the apply ends."""
    steps = "".join(
        f"    - name: s{i}\n      outputs: [out/{i}.txt]\n"
        f"      run: mkdir -p out && echo {i} > out/{i}.txt\n"
        for i in range(50)
    )
    repo.write("wf.yaml", workflow("w", steps))
    repo.write(".gitignore", "out/\n")
    assert repo.apply()["ok"]
    for f in (repo.path / "out").iterdir():
        f.unlink()
    data = repo.apply()
    assert data["ok"] and data["counts"] == {"restored": 50}, data["counts"]
    assert [repo.read(f"out/{i}.txt") for i in range(50)] == [f"{i}\n" for i in range(50)]
    assert _staged(repo.path) == []
