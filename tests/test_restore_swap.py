"""A restore swaps a step's outputs into place all or nothing (runner.store.staging's
``swap_all``): a rename that fails partway -- a race, a disk, a permission -- puts back
every output it already replaced, and the restore is a miss with one warning. And a put
never writes an entry that relies on a blob it found damaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.store.results import open_store
from runner.store.staging import SwapFailed, swap_all


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` but ``.orch/``, by relative path: what it holds."""
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".orch" not in p.relative_to(root).parts
    }


def test_a_swap_failing_at_the_last_output_puts_back_the_ones_before(tmp_path: Path) -> None:
    """The race of a file made where a folder goes after the checks: the entry's last
    output ``d/x`` goes in the folder ``d``, which its output ``d`` (a file) replaced by
    then. Before all-or-nothing, ``a.txt`` stayed new and the folder ``d`` was lost."""
    root = tmp_path / "work"
    (root / "e").mkdir(parents=True)
    (root / "a.txt").write_text("new a\n")
    (root / "d").write_text("new d\n")
    (root / "e" / "x").write_text("new x\n")
    said: list[str] = []
    store = open_store(root, None, warn=said.append)
    assert store.put("k1", root=root, files=["a.txt", "d", "e/x"], values={}, meta={})
    entry = root / ".orch/cache/results/entries/k1/k1.json"
    body = entry.read_text().replace('"path":"e/x"', '"path":"d/x"')
    entry.unlink()
    entry.write_text(body)
    # the work tree as it is when the restore begins
    (root / "a.txt").write_text("old a\n")
    (root / "d").unlink()
    (root / "d").mkdir()
    (root / "d" / "x").write_text("old x\n")
    (root / "e" / "x").unlink()
    (root / "e").rmdir()
    before = _files(root)

    assert store.restore("k1", root) is None
    assert _files(root) == before == {"a.txt": "old a\n", "d/x": "old x\n"}
    assert len(said) == 1
    assert "cannot restore d/x" in said[0] and "nothing was restored" in said[0]
    assert store.stats()["misses"] == 1 and store.stats()["hits"] == 0
    store.close()
    assert not any((root / ".orch" / "tmp").rglob("*"))


def test_swap_all_undoes_every_move_and_the_folders_it_made(tmp_path: Path) -> None:
    root = tmp_path / "work"
    stage = tmp_path / "stage"
    stage.mkdir()
    root.mkdir()
    (root / "one.txt").write_text("old one\n")
    (root / "blocker").write_text("a file where a folder goes\n")
    (stage / "s0").write_text("new one\n")
    (stage / "s1").mkdir()
    (stage / "s1" / "f").write_text("new deep\n")
    (stage / "s2").write_text("new two\n")
    names = iter(range(100))
    moves = [
        (stage / "s0", root / "one.txt"),
        (stage / "s1", root / "made" / "deep" / "dir"),
        (stage / "s2", root / "blocker" / "two.txt"),
    ]
    with pytest.raises(SwapFailed) as got:
        swap_all(moves, lambda: stage / f"aside{next(names)}")
    assert got.value.index == 2 and got.value.stranded == []
    assert _files(root) == {"one.txt": "old one\n", "blocker": "a file where a folder goes\n"}
    assert not (root / "made").exists()
    assert (stage / "s0").read_text() == "new one\n"  # back where it was staged
    assert (stage / "s1" / "f").read_text() == "new deep\n"


def test_swap_all_replaces_whatever_is_in_the_way_and_keeps_nothing_aside(
    tmp_path: Path,
) -> None:
    root = tmp_path / "work"
    stage = tmp_path / "stage"
    (root / "was_dir" / "sub").mkdir(parents=True)
    (root / "was_dir" / "sub" / "f").write_text("old\n")
    (root / "was_file").write_text("old\n")
    stage.mkdir()
    (stage / "s0").write_text("new file\n")
    (stage / "s1").mkdir()
    (stage / "s1" / "g").write_text("new in dir\n")
    names = iter(range(100))
    moves = [(stage / "s0", root / "was_dir"), (stage / "s1", root / "was_file")]
    swap_all(moves, lambda: stage / f"aside{next(names)}")
    assert _files(root) == {"was_dir": "new file\n", "was_file/g": "new in dir\n"}
    assert list(stage.iterdir()) == []


def test_a_put_replaces_a_damaged_blob_of_another_size_it_would_rely_on(
    tmp_path: Path,
) -> None:
    """A put that finds its blob already stored skips writing it; one of another size is
    damaged (truncated), and the new entry would name a blob no restore can use."""
    root = tmp_path / "work"
    root.mkdir()
    (root / "out.txt").write_text("the result\n")
    said: list[str] = []
    store = open_store(root, None, warn=said.append)
    assert store.put("k1", root=root, files=["out.txt"], values={}, meta={})
    (blob,) = [p for p in (root / ".orch/cache/results/blobs").rglob("*") if p.is_file()]
    blob.chmod(0o644)
    blob.write_bytes(b"the re")  # truncated
    assert store.put("k2", root=root, files=["out.txt"], values={}, meta={})
    (root / "out.txt").unlink()
    assert store.restore("k2", root) == {}
    assert (root / "out.txt").read_text() == "the result\n" and said == []
    store.close()
