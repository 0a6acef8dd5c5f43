"""Where the result cache's bytes live (``runner.store.results``): a folder on this
machine (``Local``), or anything fsspec reaches (``Remote``: ``file://``, ``s3://``,
``gs://``, ``az://``; fsspec is imported only when one is configured).

Paths are relative to the store (``blobs/ab/ab12...``, ``entries/cd/cd34....json``); every
write is a whole temp file, then a rename (a move on object stores), so a reader never sees
half of one. A local store's ``locked`` is the kernel's ``flock`` on ``lock``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def new_hash() -> Any:
    """The hash blobs are named by: BLAKE2b, 128 bits."""
    return hashlib.blake2b(digest_size=16)


def hash_path(path: Path | str) -> str:
    """The blob hash of the file at ``path`` (hex), or "" when it cannot be read."""
    h = new_hash()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except OSError:
        return ""
    return h.hexdigest()


class Backend:
    location: str

    def read(self, rel: str) -> bytes | None:
        raise NotImplementedError

    def write(self, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def temp(self) -> contextlib.AbstractContextManager[tuple[str, Any]]:
        raise NotImplementedError

    def create(self, rel: str, data: bytes) -> None:
        """Write ``rel`` unless it exists (two writers: one wins, both read it after)."""
        raise NotImplementedError

    def commit_blob(self, tmp: str, rel: str, mode: int = 0o444) -> None:
        """Move the temp file ``tmp`` to the blob ``rel`` (kept if already there), with
        ``mode`` where the store has modes (0444, or 0555 for an executable's blob)."""
        raise NotImplementedError

    def fetch(self, rel: str, dest: Path) -> None:
        raise NotImplementedError

    def copy_out(self, rel: str, dest: Path) -> str:
        """Copy the blob ``rel`` to the new file ``dest`` and return the hash of the bytes
        that reached it ("" when the blob cannot be read); OSError when ``dest`` cannot be
        written."""
        self.fetch(rel, dest)
        return hash_path(dest)

    def hardlink(self, rel: str, dest: Path, mode: int) -> bool:
        return False

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def size(self, rel: str) -> int:
        raise NotImplementedError

    def mtime(self, rel: str) -> float | None:
        raise NotImplementedError

    def touch(self, rel: str) -> None:
        raise NotImplementedError

    def remove(self, rel: str) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        yield


class Local(Backend):
    """A folder on this machine (perhaps shared by clones)."""

    def __init__(self, path: Path, shown: str) -> None:
        self.path = path
        self.location = shown
        self._made: set[str] = set()  # folders known to exist: no mkdir per write
        self._reflinks = True  # until the first FICLONE fails: the file system has none

    def read(self, rel: str) -> bytes | None:
        try:
            with _open_regular(self.path / rel) as f:
                return f.read()
        except OSError:
            return None

    def write(self, rel: str, data: bytes) -> None:
        with self.temp() as (tmp, out):
            out.write(data)
            out.close()
            _place(tmp, self.path / rel)

    def create(self, rel: str, data: bytes) -> None:
        with self.temp() as (tmp, out):
            out.write(data)
            out.close()
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.path / rel)  # never replaces: the first one stands

    @contextlib.contextmanager
    def temp(self) -> Iterator[tuple[str, Any]]:
        import tempfile

        tmpdir = self.path / "tmp"
        if "tmp" not in self._made:
            tmpdir.mkdir(parents=True, exist_ok=True)
            self._made.add("tmp")
        try:
            fd, tmp = tempfile.mkstemp(prefix="put-", dir=tmpdir)
        except FileNotFoundError:  # removed since (orch cache clear in another process)
            tmpdir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="put-", dir=tmpdir)
        out = os.fdopen(fd, "wb")
        try:
            yield tmp, out
        finally:
            out.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def commit_blob(self, tmp: str, rel: str, mode: int = 0o444) -> None:
        dest = self.path / rel
        if _clear_odd(dest) and os.path.getsize(dest) == os.path.getsize(tmp):
            os.utime(dest)  # in use again: a sweep's grace starts over
            return  # (one of another size is damaged: the entry must not rely on it)
        os.chmod(tmp, mode)
        _place(tmp, dest)

    def fetch(self, rel: str, dest: Path) -> None:
        src = self.path / rel
        with contextlib.suppress(OSError), _open_regular(src) as f, open(dest, "wb") as out:
            if not _reflink(f.fileno(), out.fileno()):
                import shutil

                shutil.copyfileobj(f, out, CHUNK)

    def copy_out(self, rel: str, dest: Path) -> str:
        """Copy the blob ``rel`` to the new file ``dest`` (a reflink where the file system
        makes one), hashing the bytes as they are written: one read of the blob, none of
        the copy (a reflink's copy is read back instead). "" when the blob is not a
        regular file or cannot be read; OSError when ``dest`` cannot be written."""
        try:
            src = _open_regular(self.path / rel)
        except OSError:
            return ""
        with src:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            with open(os.open(dest, flags, 0o600), "wb", buffering=0) as out:
                if self._reflinks:
                    if _reflink(src.fileno(), out.fileno()):
                        out.close()
                        return hash_path(dest)
                    self._reflinks = False
                h = new_hash()
                while True:
                    try:
                        chunk = src.read(CHUNK)
                    except OSError:
                        return ""
                    if not chunk:
                        return h.hexdigest()
                    h.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view) :]

    def hardlink(self, rel: str, dest: Path, mode: int) -> bool:
        """Hard-link the blob ``rel`` to ``dest``, which then has the blob's mode; False
        where that mode is not ``mode`` (the file would not come back as it was stored:
        a blob chmodded since, or a file whose mode no blob has), where the blob is not a
        regular file (a symlink there would become a symlink, or a link to a file out of
        the store, in the work tree) or the link cannot be made (another device). The
        link's own type and mode are checked once it is made, so a blob replaced or
        chmodded meanwhile is never left linked."""
        import stat

        try:
            os.link(self.path / rel, dest, follow_symlinks=False)
        except OSError:
            return False
        st = os.lstat(dest)
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode:
            return True
        os.unlink(dest)
        return False

    def list(self, prefix: str) -> list[str]:
        base = self.path / prefix
        out = []
        with contextlib.suppress(OSError):
            for d in sorted(os.listdir(base)):
                with contextlib.suppress(OSError):
                    out += [f"{prefix}/{d}/{n}" for n in sorted(os.listdir(base / d))]
        return out

    def size(self, rel: str) -> int:
        try:
            return (self.path / rel).stat().st_size
        except OSError:
            return 0

    def mtime(self, rel: str) -> float | None:
        try:
            return (self.path / rel).stat().st_mtime
        except OSError:
            return None

    def touch(self, rel: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.path / rel)

    def remove(self, rel: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path / rel)
        _clear_odd(self.path / rel)

    @contextlib.contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)


def _open_regular(path: Path) -> Any:
    """``path`` opened for reading only if it is a regular file itself: a FIFO put where a
    blob or entry belongs would block a reader forever, a symlink would lead it anywhere
    (O_NOFOLLOW, O_NONBLOCK, then fstat); anything else raises OSError, a miss."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path}: not a regular file")
    return os.fdopen(fd, "rb")


def _place(tmp: str, dest: Path) -> None:
    """Rename ``tmp`` to ``dest``: its folder made only when missing, and a folder in the
    way (a damaged store) cleared only when one is: no syscall spent on either otherwise."""
    try:
        os.replace(tmp, dest)
    except FileNotFoundError:
        if not os.path.lexists(tmp):
            raise
        dest.parent.mkdir(parents=True, exist_ok=True)
        _clear_odd(dest)
        os.replace(tmp, dest)
    except IsADirectoryError:
        _clear_odd(dest)
        os.replace(tmp, dest)


def _clear_odd(path: Path) -> bool:
    """Whether ``path`` is a regular file; anything else there (a folder, a symlink, a
    FIFO: a damaged store) is removed, so a write can take its place again."""
    import shutil
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISREG(st.st_mode):
        return True
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return False


def _reflink(src: int, dst: int) -> bool:
    """A copy-on-write clone of ``src`` into ``dst`` (btrfs, XFS, APFS-like file systems):
    instant, and a later write to either copy leaves the other alone."""
    try:
        import fcntl

        fcntl.ioctl(dst, 0x40049409, src)  # FICLONE
    except (OSError, ImportError, AttributeError):
        return False
    return True


class Remote(Backend):
    """A store reached through fsspec (``file://``, ``s3://``, ``gs://``, ``az://``...):
    imported only when a remote is configured. Writes go to a temp name, then a move
    (a rename where the file system has one; content-addressed blobs make a copying move
    safe too)."""

    def __init__(self, url: str) -> None:
        import fsspec  # the cache-remote extra

        self.fs, base = fsspec.core.url_to_fs(url)
        self.base = base.rstrip("/")
        self.location = url

    def _p(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def read(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._p(rel))
        except (OSError, ValueError):
            return None

    def write(self, rel: str, data: bytes) -> None:
        tmp = self._p(f"tmp/{os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}")
        self.fs.makedirs(self._p("tmp"), exist_ok=True)
        self.fs.pipe_file(tmp, data)
        self._move(tmp, self._p(rel))

    def create(self, rel: str, data: bytes) -> None:
        if self.read(rel) is None:  # object stores have no link: a race is two keys, then one
            self.write(rel, data)

    def _move(self, src: str, dest: str) -> None:
        self.fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(src, dest)

    @contextlib.contextmanager
    def temp(self) -> Iterator[tuple[str, Any]]:
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="orch-put-")
        out = os.fdopen(fd, "wb")
        try:
            yield tmp, out
        finally:
            out.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def commit_blob(self, tmp: str, rel: str, mode: int = 0o444) -> None:
        if self.fs.exists(self._p(rel)):
            return
        name = self._p(f"tmp/{os.getpid()}-{time.time_ns()}-{os.urandom(4).hex()}")
        self.fs.makedirs(self._p("tmp"), exist_ok=True)
        self.fs.put_file(tmp, name)
        self._move(name, self._p(rel))

    def fetch(self, rel: str, dest: Path) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.fs.get_file(self._p(rel), str(dest))

    def list(self, prefix: str) -> list[str]:
        try:
            found = self.fs.find(self._p(prefix))
        except (OSError, ValueError):
            return []
        start = len(self.base) + 1
        return sorted(p[start:] if p.startswith(self.base) else p for p in found)

    def size(self, rel: str) -> int:
        try:
            return int(self.fs.size(self._p(rel)) or 0)
        except (OSError, ValueError):
            return 0

    def mtime(self, rel: str) -> float | None:
        """When ``rel`` was last written or, for an entry, last used (``touch``)."""
        used = self._modified(_used(rel)) if rel.startswith("entries/") else None
        times = [t for t in (self._modified(rel), used) if t is not None]
        return max(times, default=None)

    def _modified(self, rel: str) -> float | None:
        try:
            m = self.fs.modified(self._p(rel))
        except (OSError, ValueError, NotImplementedError):
            return None
        return m.timestamp()

    def touch(self, rel: str) -> None:
        """Mark a use: object stores have no utime, and rewriting the entry would race a
        gc; an empty marker under ``used/`` (its mtime is the use) is all ``mtime`` needs
        for gc's least-recently-used order. A failed write only loses the mark."""
        with contextlib.suppress(OSError, ValueError):
            self.fs.makedirs(self._p(_used(rel)).rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(self._p(_used(rel)), b"")

    def remove(self, rel: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.fs.rm_file(self._p(rel))
        if rel.startswith("entries/"):  # its use marker, if it was ever restored
            with contextlib.suppress(OSError, ValueError):
                self.fs.rm_file(self._p(_used(rel)))


def _used(rel: str) -> str:
    """Where a remote store marks the last use of ``rel`` (``Remote.touch``)."""
    return f"used/{rel}"
