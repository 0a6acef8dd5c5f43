"""Hasher.forget: after a step wrote its outputs, the hashes memoised under them are
dropped, and only those."""

from __future__ import annotations

from pathlib import Path

from runner.manifests.hashing import Hasher


def test_forget_drops_what_is_under_an_output_and_nothing_beside_it(tmp_path: Path) -> None:
    for rel in ("dist/a.txt", "dist/sub/b.txt", "dist2/c.txt", "distx"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("old")
    h = Hasher(tmp_path)
    before = {rel: h.file(rel) for rel in ("dist/a.txt", "dist/sub/b.txt", "dist2/c.txt", "distx")}
    for rel in before:
        (tmp_path / rel).write_text("new")
    h.forget(["dist/"])
    assert h.file("dist/a.txt") != before["dist/a.txt"]  # under the output: hashed again
    assert h.file("dist/sub/b.txt") != before["dist/sub/b.txt"]
    assert h.file("dist2/c.txt") == before["dist2/c.txt"]  # beside it: still memoised
    assert h.file("distx") == before["distx"]
    h.forget(["dist2/c.txt"])
    assert h.file("dist2/c.txt") != before["dist2/c.txt"]
