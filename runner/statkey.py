"""When a file's stat may stand in for its content: the stat key and git's racy-clean rule.

Every cache that skips re-reading a file (the hash cache in ``runner.manifests.hashing``, the
manifest cache in ``runner.manifests.cache``, the no-op witness in ``runner.noop``) trusts the same
key and the same rule, kept here so they can never disagree.

The key is what git's index records (``Documentation/technical/index-format.txt``): size,
mtime, ctime, inode, and the file type and executable bit. ctime is the part a user cannot
set: ``cp -p``, ``touch -r``, ``rsync -t`` and ``tar x`` put back an old mtime on new bytes
of the same size, but the kernel moves ctime on every write, rename and chmod.

A key recorded in the same timestamp tick as the file's last change proves nothing: a
second write in that tick leaves every field as it was ("racy git",
``Documentation/technical/racy-git.txt``). git re-hashes an entry whose mtime is not
strictly older than the index file; ``is_racy`` is that rule, with the tick sized to the
file system's timestamp granularity (read off the ctime itself: FAT keeps 2 s, HFS+ and
ext3 1 s, most others 1 ns) plus ``CLOCK_SLACK_NS`` for the kernel's coarse clock, which
stamps files up to one scheduler tick behind the time a process reads.
"""

from __future__ import annotations

import os
import stat as stat_mod

# (size, mtime_ns, ctime_ns, inode, mode bits that count: file type and user-executable)
StatKey = tuple[int, int, int, int, int]

CLOCK_SLACK_NS = 50_000_000  # 50 ms: above any kernel's timestamp tick (jiffy) lag
_MODE_BITS = 0o170000 | stat_mod.S_IXUSR  # S_IFMT: the file type
_GRANULARITIES = (2_000_000_000, 1_000_000_000, 100_000_000, 10_000_000)


def of(st: os.stat_result, *, folder: bool = False) -> StatKey:
    """The key of a stat result; a folder's size is left out (it moves with no meaning on
    some file systems; an entry added or removed moves mtime and ctime anyway)."""
    return (
        0 if folder else st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_mode & _MODE_BITS,
    )


def stat(path: str | os.PathLike[str]) -> StatKey | None:
    """The key of ``path`` (following symlinks), or None when it does not exist."""
    try:
        return of(os.stat(path))
    except (OSError, ValueError):
        return None


def dir_stat(path: str | os.PathLike[str]) -> StatKey | None:
    try:
        return of(os.stat(path), folder=True)
    except (OSError, ValueError):
        return None


def executable(st: os.stat_result) -> bool:
    """Whether git would record the file as ``100755``: the owner may execute it."""
    return bool(st.st_mode & stat_mod.S_IXUSR)


def granularity_ns(ts_ns: int) -> int:
    """The coarsest timestamp tick ``ts_ns`` could come from: 2 s on FAT, 1 s on HFS+ or
    ext3, 1 ns (reported as 1) on file systems with fine timestamps. A fine file system
    gives a whole second by chance once in 10**9 stats; it then only re-hashes a little
    more."""
    for g in _GRANULARITIES:
        if ts_ns % g == 0:
            return g
    return 1


def is_racy(key: StatKey, recorded_ns: int) -> bool:
    """git's racy-clean rule: the key cannot vouch for the content unless the file's last
    change (mtime or ctime, whichever is newer) is strictly older than the tick in which the
    key was recorded at ``recorded_ns`` (wall-clock ns). A racy key must not be saved; the
    file is re-read next time."""
    newest = max(key[1], key[2])
    g = granularity_ns(key[2])
    cutoff = (recorded_ns - CLOCK_SLACK_NS) // g * g
    return newest >= cutoff
