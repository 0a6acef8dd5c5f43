"""How a command is being ended: the signal that asked (SIGTERM, SIGHUP) or a reader that
went away (SIGPIPE), shared by ``main`` (exit codes), ``common`` (writes into a closed pipe)
and ``watch``. A leaf, so that none of them imports another to learn it."""

from __future__ import annotations

import contextlib
import os
import signal

ENDED_BY: list[int] = []  # the terminating signal received, if any


def terminate(signum: int, frame: object) -> None:
    """The SIGTERM/SIGHUP handler: once, as Ctrl-C (KeyboardInterrupt)."""
    if ENDED_BY:  # already ending: let the clean-up finish
        return
    ENDED_BY.append(signum)
    raise KeyboardInterrupt


def reader_gone(fd: int) -> None:
    """The reader of our stdout (``fd`` 1) or stderr (2) went away (``orch apply | head``):
    an orderly stop, as the SIGPIPE a shell pipeline relies on would be, but with tasks
    ended and rows closed. Called from any thread, by the first write that fails: that
    descriptor is pointed at /dev/null (nothing more is written to it, and the final flush
    cannot fail), and the main thread is interrupted as Ctrl-C would, once. The command
    then exits 141 (128 + SIGPIPE), saying nothing."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    if ENDED_BY:  # already ending
        return
    ENDED_BY.append(signal.SIGPIPE)
    import _thread

    _thread.interrupt_main()


def by_closed_pipe() -> bool:
    """Whether the command is ending because its reader went away (exit 141, silently)."""
    return bool(ENDED_BY) and ENDED_BY[0] == signal.SIGPIPE
