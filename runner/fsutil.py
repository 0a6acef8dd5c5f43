"""Writes that complete or leave nothing, and reads that end.

``atomic_write``: a temp file beside the target, then a rename. The temp name comes from
``tempfile.mkstemp``, unique per call, so threads of one process (orch mcp, orch watch)
never write through each other's temp files.

``read_regular``: repository files orch reads as text (manifests, templates) are read only
when they are regular files, and only up to a limit: a committed ``zero.yaml -> /dev/zero``,
a FIFO or a 50 GB file each end in one clear error, not a hang or an exhausted memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, data: bytes | str, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` at once; ``durable`` also fsyncs before the rename."""
    import tempfile  # here, not at the top: readers on the no-op path never write

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class NotRegularFile(OSError):
    """The path is a device, FIFO or socket (perhaps through a symlink), not a file."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(errno.EINVAL, "not a regular file (a device, FIFO or socket)", str(path))


def read_regular(path: str | os.PathLike[str], limit: int) -> tuple[bytes, int]:
    """At most ``limit + 1`` bytes of the regular file ``path``, and its size in bytes.

    One byte over ``limit`` is enough for the caller to say "too big" without reading the
    rest. Opened non-blocking, so a FIFO never blocks the open. Raises NotRegularFile for
    anything but a regular file (symlinks are followed), and OSError as ``open`` does.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return data, max(st.st_size, len(data))
    finally:
        os.close(fd)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """The regular file ``path`` opened for reading in binary (the caller closes it).

    Opened first and checked after, through the open descriptor: a check before the open
    races a file deleted or replaced in between. Non-blocking, so a FIFO never blocks the
    open. Raises NotRegularFile for anything but a regular file (symlinks are followed),
    and OSError as ``open`` does (FileNotFoundError for a file that is gone)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb")  # noqa: SIM115 - the caller's with


def same_bytes(path: str | os.PathLike[str], data: bytes) -> bool:
    """Whether the regular file ``path`` holds exactly ``data``, reading at most one byte
    more than ``data`` (a huge file, a device or a FIFO is simply not the same)."""
    try:
        got, size = read_regular(path, len(data))
    except OSError:
        return False
    return size == len(data) and got == data
