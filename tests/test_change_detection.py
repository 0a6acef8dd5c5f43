"""A change that stat alone could hide is always seen: new bytes of the same size under an
old mtime (``cp -p``, ``touch -r``, ``rsync -t``, ``tar x``), a ``chmod +x``, and a write in
the same timestamp tick as the recording (git's racy-clean rule)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runner.statkey import CLOCK_SLACK_NS, is_racy
from tests.conftest import Repo, workflow

WF = workflow(
    "w",
    """\
    - name: a
      run: cat in.txt > out.txt
      inputs: [in.txt]
      outputs: [out.txt]
    - name: b
      run: echo aa > b.txt
      outputs: [b.txt]
""",
)


def age(root: Path) -> None:
    """Every mtime into the past, then wait out the tick of the ctimes that moved."""
    old = time.time_ns() - 10 * 10**9
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            os.utime(os.path.join(dirpath, name), ns=(old, old))
        os.utime(dirpath, ns=(old, old))
    time.sleep(3 * CLOCK_SLACK_NS / 1e9)


def replace_keeping_mtime(path: Path, data: bytes) -> None:
    """What ``cp -p new path`` does: new bytes, the old file's times put back."""
    st = os.stat(path)
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def settled(repo: Repo) -> Repo:
    repo.write("wf.yaml", WF)
    repo.write("in.txt", "aaaa\n")
    assert repo.apply()["ok"]
    age(repo.path)
    assert all(a == "up-to-date" for a, _ in repo.plan().values())  # hashes cached, witness
    assert (repo.path / ".orch" / "cache" / "noop.json").exists()
    return repo


def test_same_size_bytes_under_the_old_mtime_are_an_input_change(settled: Repo) -> None:
    replace_keeping_mtime(settled.path / "in.txt", b"bbbb\n")
    assert settled.plan()[("w", "a")] == ("run", ["input changed: in.txt"])
    (settled.path / ".orch" / "cache" / "noop.json").unlink()  # the hash cache alone
    assert settled.plan()[("w", "a")] == ("run", ["input changed: in.txt"])


def test_chmod_x_is_an_input_change(settled: Repo) -> None:
    os.chmod(settled.path / "in.txt", 0o755)
    assert settled.plan()[("w", "a")] == ("run", ["input changed: in.txt"])
    assert settled.apply()["ran"] == ["a"]
    os.chmod(settled.path / "in.txt", 0o644)
    assert settled.plan()[("w", "a")] == ("run", ["input changed: in.txt"])


def test_chmod_x_on_an_output_is_a_modified_output(settled: Repo) -> None:
    os.chmod(settled.path / "b.txt", 0o755)
    assert settled.plan()[("w", "b")] == ("run", ["output modified: b.txt"])


def test_manifest_edited_under_its_old_mtime_is_reloaded(settled: Repo) -> None:
    wf = settled.path / "wf.yaml"
    replace_keeping_mtime(wf, wf.read_bytes().replace(b"echo aa", b"echo bb"))
    assert settled.plan()[("w", "b")] == ("run", ["definition changed (run)"])
    (settled.path / ".orch" / "cache" / "noop.json").unlink()  # the manifest cache alone
    replace_keeping_mtime(wf, wf.read_bytes().replace(b"echo bb", b"echo cc"))
    assert settled.plan()[("w", "b")] == ("run", ["definition changed (run)"])


def test_hash_cache_distrusts_a_same_size_rewrite_under_the_old_mtime(tmp_path: Path) -> None:
    from runner.manifests.hashing import Hasher
    from runner.store.state import State

    state = State(tmp_path / ".orch")
    f = tmp_path / "in.txt"
    f.write_text("aaaa\n")
    age(tmp_path)
    first = Hasher(tmp_path, state)
    h1 = first.file("in.txt")
    first.flush()
    assert state.hash_cache()["in.txt"][1] == h1  # cached: the next read trusts stat
    replace_keeping_mtime(f, b"bbbb\n")
    assert Hasher(tmp_path, state).file("in.txt") != h1
    state.close()


def test_racy_window_is_sized_to_the_timestamp_granularity() -> None:
    """On a file system with whole-second timestamps (HFS+, ext3; FAT has 2 s) a file
    changed at 11.2 s is stamped 11.0 s; recorded at 11.9 s, a second write at 11.95 s
    would keep every field. The key is racy until the next whole second has begun."""
    sec = 1_000_000_000
    coarse = (5, 11 * sec, 11 * sec, 1, 0o100644)
    assert is_racy(coarse, 11 * sec + 900_000_000)
    assert not is_racy(coarse, 12 * sec + 2 * CLOCK_SLACK_NS)
    fat = (5, 10 * sec, 10 * sec, 1, 0o100644)  # 2 s ticks: stamped 10 s until 12 s
    assert is_racy(fat, 11 * sec + 500_000_000)
    fine = (5, 10 * sec + 123_457, 10 * sec + 123_457, 1, 0o100644)
    assert is_racy(fine, 10 * sec + 123_457 + CLOCK_SLACK_NS // 2)
    assert not is_racy(fine, 10 * sec + 123_457 + 2 * CLOCK_SLACK_NS)


def test_new_ctime_alone_makes_a_key_racy() -> None:
    """``touch -r`` puts an old mtime back, but the kernel stamps ctime now: the key of a
    file changed this instant is racy whatever its mtime says."""
    now = time.time_ns()
    assert is_racy((5, now - 10 * 10**9, now, 1, 0o100644), now)
