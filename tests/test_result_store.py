"""The result cache's store (runner.store.results), on real files: put, verified restore,
gc, clear, concurrent writers, a file:// remote, hard links that are not symlinks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.store.results import CacheSetting, open_store, result_key


def _tree(root: Path) -> None:
    (root / "dist" / "sub").mkdir(parents=True)
    (root / "dist" / "empty").mkdir()
    (root / "dist" / "a.txt").write_text("alpha\n")
    (root / "dist" / "sub" / "b.sh").write_text("#!/bin/sh\necho b\n")
    os.chmod(root / "dist" / "sub" / "b.sh", 0o755)
    (root / "out.txt").write_text("one\n")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    _tree(root)
    return root


def _wipe(root: Path) -> None:
    import shutil

    shutil.rmtree(root / "dist")
    (root / "out.txt").unlink()


def test_put_then_restore_brings_back_files_folders_modes_and_values(work: Path) -> None:
    store = open_store(work, None)
    key = result_key("f" * 32)
    assert store.put(key, root=work, files=["dist", "out.txt"], values={"v": "1"}, meta={})
    _wipe(work)
    assert store.restore(key, work) == {"v": "1"}
    assert (work / "dist" / "a.txt").read_text() == "alpha\n"
    assert (work / "dist" / "empty").is_dir()
    assert stat.S_IMODE(os.stat(work / "dist" / "sub" / "b.sh").st_mode) == 0o755
    assert (work / "out.txt").read_text() == "one\n"
    assert not (work / "out.txt").is_symlink()
    (entry,) = store.entries()
    assert (entry.key, entry.files) == (key, 3)
    assert store.stats()["hits"] == 1 and store.stats()["entries"] == 1


def test_restore_replaces_a_folder_exactly(work: Path) -> None:
    store = open_store(work, None)
    store.put("k1", root=work, files=["dist"], values={}, meta={})
    (work / "dist" / "extra.txt").write_text("not ours\n")
    (work / "dist" / "a.txt").write_text("edited\n")
    assert store.restore("k1", work) == {}
    assert sorted(os.listdir(work / "dist")) == ["a.txt", "empty", "sub"]
    assert (work / "dist" / "a.txt").read_text() == "alpha\n"


def test_a_miss_is_none_and_counted(work: Path) -> None:
    store = open_store(work, None)
    assert store.get("nope") is None
    assert store.restore("nope", work) is None
    assert store.stats()["misses"] == 1


def test_corrupted_blob_is_a_miss_with_one_warning_and_nothing_touched(work: Path) -> None:
    said: list[str] = []
    store = open_store(work, None, warn=said.append)
    store.put("k", root=work, files=["dist", "out.txt"], values={}, meta={})
    blobs = work / ".orch/cache/results/blobs"
    victim = next(p for p in blobs.rglob("*") if p.is_file() and p.read_bytes() == b"one\n")
    os.chmod(victim, 0o644)
    victim.write_text("evil\n")
    (work / "out.txt").write_text("current\n")
    (work / "dist" / "a.txt").write_text("current\n")
    assert store.restore("k", work) is None
    assert len(said) == 1 and "corrupted" in said[0]
    assert (work / "out.txt").read_text() == "current\n"
    assert (work / "dist" / "a.txt").read_text() == "current\n"
    assert not victim.exists()  # dropped: the next success stores it again


def test_an_entry_naming_a_path_outside_is_refused(work: Path) -> None:
    said: list[str] = []
    store = open_store(work, None, warn=said.append)
    store.put("k", root=work, files=["out.txt"], values={}, meta={})
    entry = next((work / ".orch/cache/results/entries").rglob("*.json"))
    entry.write_text(entry.read_text().replace('"path":"out.txt"', '"path":"../escaped"'))
    assert store.restore("k", work) is None
    assert not (work.parent / "escaped").exists()
    assert said


def test_symlinks_and_missing_outputs_are_refused(work: Path) -> None:
    store = open_store(work, None)
    os.symlink("a.txt", work / "dist" / "link")
    assert not store.put("k", root=work, files=["dist"], values={}, meta={})
    assert not store.put("k2", root=work, files=["missing.txt"], values={}, meta={})
    assert store.entries() == []


def test_copy_restore_is_not_a_link_and_an_edit_never_reaches_the_cache(work: Path) -> None:
    store = open_store(work, None)
    store.put("k", root=work, files=["out.txt"], values={}, meta={})
    (work / "out.txt").unlink()
    store.restore("k", work)
    with open(work / "out.txt", "w") as f:  # an in-place edit
        f.write("edited\n")
    (work / "out.txt").unlink()
    assert store.restore("k", work) == {}
    assert (work / "out.txt").read_text() == "one\n"


def test_hardlink_restore_is_a_read_only_hard_link_not_a_symlink(work: Path) -> None:
    store = open_store(work, {"link": "hardlink"})
    store.put("k", root=work, files=["out.txt"], values={}, meta={})
    (work / "out.txt").unlink()
    assert store.restore("k", work) == {}
    st = os.lstat(work / "out.txt")
    assert not stat.S_ISLNK(st.st_mode) and st.st_nlink == 2
    assert stat.S_IMODE(st.st_mode) & 0o222 == 0  # read-only, as the blob
    # an in-place write (root may) damages the blob: the next restore finds it
    said: list[str] = []
    store.warn = said.append
    os.chmod(work / "out.txt", 0o644)
    (work / "out.txt").write_text("edited\n")
    assert store.restore("k", work) is None and said


def test_hardlink_restore_keeps_x_bits_and_links_only_a_blob_of_the_right_mode(
    work: Path,
) -> None:
    store = open_store(work, {"link": "hardlink"})
    os.chmod(work / "out.txt", 0o644)
    assert store.put("k", root=work, files=["dist", "out.txt"], values={}, meta={})
    blobs = work / ".orch/cache/results/blobs"
    exe = next(blobs.rglob("*.x"))
    assert stat.S_IMODE(os.lstat(exe).st_mode) == 0o555
    _wipe(work)
    assert store.restore("k", work) == {}
    st = os.lstat(work / "dist/sub/b.sh")
    assert (stat.S_IMODE(st.st_mode), st.st_ino) == (0o555, os.lstat(exe).st_ino)
    # a blob chmodded since (a user's chmod on a link changes the blob): copied, not linked
    plain = next(b for b in blobs.rglob("*") if b.is_file() and b.read_bytes() == b"one\n")
    os.chmod(plain, 0o755)
    _wipe(work)
    said: list[str] = []
    store.warn = said.append
    assert store.restore("k", work) == {} and said == []
    st = os.lstat(work / "out.txt")
    assert (stat.S_IMODE(st.st_mode), st.st_nlink) == (0o644, 1)


def test_an_executable_stored_in_one_blob_for_both_kinds_is_restored_with_its_mode(
    work: Path,
) -> None:
    """A store written by an orch that kept an executable file's bytes in the plain
    0444 blob: the restore copies from it, with the mode stored, and warns of nothing."""
    store = open_store(work, {"link": "hardlink"})
    assert store.put("k", root=work, files=["dist"], values={}, meta={})
    exe = next((work / ".orch/cache/results/blobs").rglob("*.x"))
    os.chmod(exe, 0o444)
    os.rename(exe, exe.with_name(exe.name.removesuffix(".x")))
    _wipe(work)
    said: list[str] = []
    store.warn = said.append
    assert store.restore("k", work) == {} and said == []
    st = os.lstat(work / "dist/sub/b.sh")
    assert (stat.S_IMODE(st.st_mode), st.st_nlink) == (0o755, 1)
    assert store.gc() == (0, 0)  # the plain blob is the executable's: kept


def test_gc_by_size_and_age_least_recently_used_first(work: Path) -> None:
    store = open_store(work, None)
    for i in range(3):
        (work / "out.txt").write_text(f"content {i}\n" * 100)
        assert store.put(f"k{i}", root=work, files=["out.txt"], values={}, meta={})
        os.utime(next((work / ".orch/cache/results/entries").rglob(f"k{i}.json")), (i, 1000 + i))
    removed, freed = store.gc(max_size=1200)
    assert removed == 2 and freed == 2 * 1000
    assert [e.key for e in store.entries()] == ["k2"]
    assert store.gc(older_than=60) == (1, 1000)
    assert store.stats()["bytes"] == 0


def test_clear(work: Path) -> None:
    store = open_store(work, None)
    store.put("a", root=work, files=["out.txt"], values={}, meta={})
    store.put("b", root=work, files=["dist"], values={}, meta={})
    assert store.clear() == 2
    assert store.stats() | {"hits": 0, "misses": 0} == {
        "entries": 0,
        "bytes": 0,
        "hits": 0,
        "misses": 0,
    }


def test_two_processes_putting_one_key_at_once(work: Path, tmp_path: Path) -> None:
    (work / "big.bin").write_bytes(os.urandom(4 << 20))
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from runner.store.results import open_store
        store = open_store(Path({str(work)!r}), None)
        for _ in range(5):
            assert store.put("same", root=Path({str(work)!r}), files=["big.bin", "dist"],
                             values={{"who": sys.argv[1]}}, meta={{}})
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=Path(__file__).parents[1])
        for i in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = open_store(work, None)
    want = (work / "big.bin").read_bytes()
    (work / "big.bin").unlink()
    assert store.restore("same", work)["who"] in ("0", "1")
    assert (work / "big.bin").read_bytes() == want
    assert not os.listdir(work / ".orch/cache/results/tmp")


def test_file_remote_through_fsspec(work: Path, tmp_path: Path) -> None:
    url = (tmp_path / "remote").as_uri()
    store = open_store(work, {"remote": url})
    assert store.location == url
    assert store.put("k", root=work, files=["dist", "out.txt"], values={"x": "y"}, meta={})
    other = tmp_path / "other"
    other.mkdir()
    fresh = open_store(other, CacheSetting(remote=url))
    got = fresh.get("k")
    assert got is not None and url in got.where
    assert fresh.restore("k", other) == {"x": "y"}
    assert (other / "dist" / "sub" / "b.sh").read_text() == "#!/bin/sh\necho b\n"
    assert os.access(other / "dist" / "sub" / "b.sh", os.X_OK)
    assert fresh.stats()["entries"] == 1
    assert fresh.gc(max_size=0)[0] == 1 and fresh.stats()["bytes"] == 0
