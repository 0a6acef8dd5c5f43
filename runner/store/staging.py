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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class Staging:
    """The staging folders of one store: ``folder(root)`` makes ``root/.orch/tmp/restore-*``
    once (it must be on the work tree's file system, so that a swap is one rename),
    ``name()`` hands out names unused in this process, ``close()`` removes them all."""

    def __init__(self) -> None:
        self._folders: dict[str, Path] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._kept: set[str] = set()

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

    def keep(self, folder: Path) -> None:
        """Never remove ``folder``: it holds a user's file a failed swap could not put
        back (``SwapFailed.stranded``), which the warning tells them where to find."""
        with self._lock:
            self._kept.add(str(folder))

    def close(self) -> None:
        """Remove every staging folder made (what a failed restore left there too), but
        those ``keep`` named."""
        with self._lock:
            folders, self._folders = list(self._folders.values()), {}
            kept = set(self._kept)
        for f in folders:
            if str(f) not in kept:
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


class SwapFailed(OSError):
    """A ``swap_all`` that did not finish and was undone: ``index`` (of the move that
    failed), ``error`` (its OSError), ``stranded`` (``(target, where it is now)`` for what
    was in the way and could not be put back -- empty unless the undo failed too)."""

    def __init__(self, index: int, error: OSError, stranded: list[tuple[Path, Path]]) -> None:
        super().__init__(error.errno, error.strerror or str(error))
        self.index = index
        self.error = error
        self.stranded = stranded

    def warning(self, location: str, rel: str) -> str:
        """The one warning of the result store at ``location`` whose restore failed at
        the output ``rel``: why, that nothing changed, what to do (and, were the undo to
        fail too, where the user's files are kept)."""
        said = (
            f"result cache {location}: cannot restore {rel}: {self.strerror}; nothing was"
            " restored (the outputs are as they were) and the step runs instead: check that"
            f" {rel} and the folders it goes in are writable and that none of them is a file"
        )
        for target, kept in self.stranded:
            said += f"; {target} could not be put back: it is kept at {kept}, move it back"
        return said


@dataclass
class _Move:
    """One move of ``swap_all`` and how far it got, so that it can be undone."""

    staged: Path
    target: Path
    old: Path | None = None  # where what was at ``target`` was moved aside to
    placed: bool = False  # ``staged`` is at ``target`` now
    made: list[Path] = field(default_factory=list)  # parent folders made, top first


def swap_all(moves: list[tuple[Path, Path]], aside: Callable[[], Path]) -> None:
    """Put each ``staged`` (a file or a folder) where its ``target`` is, all or nothing.

    Each target in the way (a file, a folder, a link) is first moved to ``aside()`` (a
    fresh path on the same file system), then the staged one renamed in, its missing
    parent folders made. When any rename fails (a disk error, a permission, a race: a
    file made where a folder goes) every move done so far is undone in reverse -- the new
    ones moved back to where they were staged, the folders made removed, the old ones put
    back -- and SwapFailed is raised: the targets are as they were. Only after the last
    move is what was moved aside removed. Two renames per output where one would do
    without the promise; a rename is a metadata write, no data is copied."""
    done: list[_Move] = []
    try:
        for staged, target in moves:
            done.append(_Move(staged, target))
            _move(done[-1], aside)
    except OSError as e:
        raise SwapFailed(len(done) - 1, e, _undo(done)) from None
    discard([m.old for m in done if m.old is not None])


def _move(m: _Move, aside: Callable[[], Path]) -> None:
    if os.path.lexists(m.target):
        old = aside()
        os.replace(m.target, old)
        m.old = old
    try:
        os.replace(m.staged, m.target)
    except FileNotFoundError:
        if not os.path.lexists(m.staged):
            raise
        _make_parents(m.target.parent, m.made)
        os.replace(m.staged, m.target)
    m.placed = True


def _make_parents(folder: Path, made: list[Path]) -> None:
    """Make ``folder`` and its missing parents, adding each made to ``made``."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        os.mkdir(f)
        made.append(f)


def _undo(done: list[_Move]) -> list[tuple[Path, Path]]:
    """Undo ``done`` in reverse; ``(target, where it is)`` for each old one that could not
    be put back (each step is tried even when one before it failed)."""
    stranded = []
    for m in reversed(done):
        if m.placed:
            with contextlib.suppress(OSError):
                os.replace(m.target, m.staged)
        for f in reversed(m.made):
            with contextlib.suppress(OSError):
                os.rmdir(f)
        if m.old is not None:
            try:
                os.replace(m.old, m.target)
            except OSError:
                stranded.append((m.target, m.old))
    return stranded
