"""Content hashes of files and folders, cached by stat as git's index does.

A cache entry is trusted only while the file's stat key (``runner.statkey``: size, mtime,
ctime, inode, type and executable bit) is unchanged. An entry whose file changed in the
same timestamp tick as it was hashed is never saved ("racy git": a second write in that
tick would be invisible to stat), so that file is re-read next time rather than wrongly
found unchanged.

A file's content is its bytes and, as git records it, its executable bit: ``chmod +x`` on
an input is a change.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_mod
import time
from pathlib import Path
from typing import TYPE_CHECKING

from runner import globs, links, statkey
from runner.digests import digest

if TYPE_CHECKING:
    from runner.store.state import State

# a cached hash: the stat key it was taken under, the hash, when it was taken (ns)
CacheEntry = tuple[statkey.StatKey, str, int]
MISSING = ""


class Hasher:
    def __init__(self, root: Path, state: State | None = None):
        self.root = root
        self.state = state
        self._cache: dict[str, CacheEntry] | None = None
        self._new: dict[str, CacheEntry] = {}
        self._memo: dict[str, str] = {}
        # folder -> the memoised paths below it, so forgetting an output folder costs what
        # it holds, not a scan of every path memoised in the run (quadratic in steps)
        self._under: dict[str, set[str]] = {}
        # every path whose stat a decision rested on (its stat key, or None when missing);
        # folders walked for globs by their own stat, under "path/". See runner/noop.py.
        self.seen: dict[str, statkey.StatKey | None] = {}
        self._env_key: bytes | None = None

    @property
    def env_key(self) -> bytes:
        """The repository's key for digests of environment values (see runner.masking);
        read once per hasher (it never changes), not once per step decided."""
        if self._env_key is not None:
            return self._env_key
        from runner.masking import repository_key

        key = repository_key(self.root / ".orch")
        assert key is not None
        self._env_key = key
        return key

    @property
    def cache(self) -> dict[str, CacheEntry]:
        if self._cache is None:
            self._cache = self.state.hash_cache() if self.state is not None else {}
        return self._cache

    def forget(self, paths: list[str] | None = None) -> None:
        """Drop memoised results (after a step ran and may have changed files)."""
        if paths is None:
            self._memo.clear()
            self._under.clear()
            return
        for p in paths:
            p = p.rstrip("/")
            self._memo.pop(p, None)
            for k in self._under.pop(p, ()):
                self._memo.pop(k, None)

    def _remember(self, rel: str, h: str) -> None:
        """Memoise ``rel``'s hash, filed under each folder above it (see ``forget``)."""
        self._memo[rel] = h
        parts = rel.split("/")
        for i in range(1, len(parts)):
            self._under.setdefault("/".join(parts[:i]), set()).add(rel)

    def file(self, rel: str, exclude: tuple[str, ...] = ()) -> str:
        """Hash of a file's content, or of a folder's (less the paths under ``exclude``,
        repo-relative patterns); '' if it does not exist."""
        if exclude:
            full = os.path.join(self.root, rel)
            if os.path.isdir(full):
                return self.tree(rel, exclude)
        memo = self._memo.get(rel)
        if memo is not None:
            return memo
        full = os.path.join(self.root, rel)
        try:
            st = os.stat(full)
        except OSError:
            self._remember(rel, MISSING)
            self.seen[rel] = None
            return MISSING
        key = statkey.of(st)
        self.seen[rel] = key
        if stat_mod.S_ISDIR(st.st_mode):
            h = self.tree(rel)
            self._remember(rel, h)
            return h
        entry = self.cache.get(rel)
        if entry is not None and entry[0] == key:
            self._remember(rel, entry[1])
            return entry[1]
        if os.path.islink(full) and not links.inside(
            links.real_root(str(self.root)), os.path.realpath(full)
        ):
            h = digest("symlink", os.readlink(full))  # an output's link out: git's view
        elif not stat_mod.S_ISREG(st.st_mode):
            # a FIFO, socket or device (perhaps through a link): not content, as git tracks
            # none; known by its type and never opened (a FIFO would block the plan)
            h = digest("special", oct(stat_mod.S_IFMT(st.st_mode)))
        else:
            h = _hash_file(full, statkey.executable(st))
        now = time.time_ns()
        if not statkey.is_racy(key, now):
            e = (key, h, now)
            self.cache[rel] = e
            self._new[rel] = e
        self._remember(rel, h)
        return h

    def tree(self, rel: str, exclude: tuple[str, ...] = ()) -> str:
        """Hash of an output folder: every file under it, by relative path and content,
        but those under ``exclude`` (a tool's cache folder inside the output)."""
        rel = rel.rstrip("/")
        files = self.walk(rel, outputs=True)
        if exclude:
            files = [f for f in files if not globs.excluded(f, exclude)]
        if not files and not os.path.isdir(os.path.join(self.root, rel)):
            return MISSING
        h = hashlib.blake2b(digest_size=16)
        for f in files:
            h.update(os.fsencode(f))  # the name's own bytes, UTF-8 or not
            h.update(b"\0")
            h.update(self.file(f).encode())
            h.update(b"\n")
        return "d" + h.hexdigest()

    def walk(
        self,
        rel_dir: str,
        *,
        outputs: bool = False,
        skip: frozenset[str] = links.SKIP_DIRS,
        exclude: tuple[str, ...] = (),
    ) -> list[str]:
        """Files under ``rel_dir`` (repo-relative), sorted; symlinks as ``runner.links``
        says (inside the repository followed, leaving it ``LinkEscape``, or in an output
        folder hashed as a link). Each folder's stat is noted in ``seen`` under "path/",
        so a file added there is noticed. What ``exclude`` leaves out is never entered
        nor followed (``runner.links.walk``)."""
        out: list[str] = []
        root = str(self.root)
        walked = links.walk(root, rel_dir, outputs=outputs, skip=skip, exclude=exclude)
        for rel, full, is_dir in walked:
            if is_dir:
                self.seen[rel + "/" if rel else "/"] = statkey.dir_stat(full)
            else:
                out.append(rel)
        out.sort()
        return out

    def expand(self, pattern: str, exclude: tuple[str, ...] = ()) -> list[str]:
        """Files matching a repo-relative input pattern (a literal path, folder or glob),
        less what ``exclude`` (the step's ``!`` patterns, without the "!") leaves out,
        which is never walked nor followed.

        A path that exists spelled exactly as the pattern is that file or folder, glob
        characters and all (a file named ``in[1].txt``), as make and the shells do."""
        literal = not globs.is_glob(pattern)
        p = (globs.literal(pattern) if literal else pattern).rstrip("/")
        try:
            st = os.stat(os.path.join(self.root, p))
        except (OSError, ValueError):
            self.seen[p] = None  # absent now: its appearing must be noticed
            if literal:
                return []
        else:
            if stat_mod.S_ISDIR(st.st_mode):
                return self.walk(p, exclude=exclude)
            return [p]
        prefix = globs.literal_prefix(pattern)
        rx = globs.compile_glob(pattern)
        # .git/, .orch/, __pycache__/ are entered only by a pattern that names them
        skip = links.SKIP_DIRS.difference(pattern.split("/"))
        return [f for f in self.walk(prefix, skip=skip, exclude=exclude) if rx.match(f)]

    def flush(self) -> None:
        if self.state is not None and self._new:
            self.state.save_hashes(self._new)
        self._new = {}


def _hash_file(path: str, executable: bool = False) -> str:
    """blake2b-128 of the bytes; an executable file's hash is personalised with git's mode
    ``100755``, so the same bytes hash differently with and without ``x``."""
    h = hashlib.blake2b(digest_size=16, person=b"100755" if executable else b"")
    try:
        # non-blocking: a file swapped for a FIFO since its stat never blocks the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return MISSING
    try:  # plain reads: a buffered file object costs an ioctl, lseek and fstat more
        mode = os.fstat(fd).st_mode
        if not stat_mod.S_ISREG(mode):
            return digest("special", oct(stat_mod.S_IFMT(mode)))
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    except OSError:
        return MISSING
    finally:
        os.close(fd)
    return h.hexdigest()


def bytes_hash(data: bytes, executable: bool = False) -> str:
    """What ``Hasher.file`` will say of a regular file holding ``data``, with or without
    its executable bit (``_hash_file``'s rule): for the plan, which predicts the hashes of
    files a restore from the result cache will write (``reconcile.predict``)."""
    return hashlib.blake2b(
        data, digest_size=16, person=b"100755" if executable else b""
    ).hexdigest()
