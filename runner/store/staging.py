"""Where the result cache stages a restore before swapping it into the work tree
(``runner.store.results``): one folder per store and repository, made on the first restore
that needs it and removed by ``ResultStore.close`` (an apply closes its store when it ends,
however it ends).

One folder for the whole apply rather than a fresh one per restore: creating and removing
a folder are among the slowest things a file system does (each is a journal transaction
on ext4; a profile of 1,000 restores found the per-restore ``rmdir`` taking 3.9 ms each,
more than everything else a restore does together). Each restore stages its outputs
under names no other restore of the process uses, so restores never meet there.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
import threading
from pathlib import Path


class Staging:
    """The staging folders of one store: ``folder(root)`` makes ``root/.orch/tmp/restore-*``
    once (it must be on the work tree's file system, so that a swap is one rename),
    ``name()`` hands out names unused in this process, ``close()`` removes them all."""

    def __init__(self) -> None:
        self._folders: dict[str, Path] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def folder(self, root: Path) -> Path:
        """The staging folder for restores into ``root``; OSError when it cannot be made."""
        with self._lock:
            got = self._folders.get(str(root))
            if got is None:
                import tempfile

                parent = root / ".orch" / "tmp"
                parent.mkdir(parents=True, exist_ok=True)
                got = Path(tempfile.mkdtemp(prefix="restore-", dir=parent))
                self._folders[str(root)] = got
            return got

    def name(self, folder: Path, what: str = "o") -> Path:
        """A path in ``folder`` no other restore of this process stages at."""
        return folder / f"{what}{next(self._seq)}"

    def close(self) -> None:
        """Remove every staging folder made (what a failed restore left there too)."""
        with self._lock:
            folders, self._folders = list(self._folders.values()), {}
        for f in folders:
            shutil.rmtree(f, ignore_errors=True)


def discard(paths: list[Path]) -> None:
    """Remove what a restore staged and did not swap in (a file, or a folder and all
    it holds); what is already gone is fine."""
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)


def swap(staged: Path, target: Path, is_dir: bool, aside: Path) -> None:
    """Put ``staged`` (a folder when ``is_dir``) where ``target`` is, one rename: a folder
    in the way is moved to ``aside`` first and removed after, a file or link in the way of
    a folder removed; the parent folders made only when they are missing."""
    try:
        st: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        st = None
    moved = st is not None and stat.S_ISDIR(st.st_mode)
    if moved:
        os.replace(target, aside)
    elif is_dir and st is not None:
        target.unlink()
    try:
        try:
            os.replace(staged, target)
        except FileNotFoundError:
            if not os.path.lexists(staged):
                raise
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    except OSError:
        if moved:
            os.replace(aside, target)
        raise
    if moved:
        shutil.rmtree(aside, ignore_errors=True)
