"""What every CLI verb module shares: opening the repository, printing JSON.

One module per group of verbs (``basic``, ``run``, ``projects``, ``watch``, ``mcp``); each
handler is a few lines over ``runner.api``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from runner.api import Repo, open_repo

OPENED: list[Repo] = []  # the CLI prints their warnings when the verb ends
# set by a state-changing verb that changed nothing (a no-op apply, a dry run): the audit
# log (runner.audit) records no row for it
AUDIT_SKIP: list[bool] = [False]
AUDIT_INTO: list[Any] = [None]  # a Path: the state file to record into (state reset's backup)


# verbs that only read: they create nothing in .orch/, not even the manifest cache
# (docs/safety.md: "nothing is created by a reader")
READERS = frozenset({
    "records:status", "records:history", "logs:logs", "records:task_list",
    "records:task_status", "system:system_status", "system:system_metrics",
    "system:system_health",
    "projects:project_status", "projects:project_list", "basic:graph", "basic:workflow_list",
    "cache:status",
})  # fmt: skip


def repo_from(args: argparse.Namespace, exact: bool = False) -> Repo:
    repo = open_repo(args.directory, exact=exact)
    repo.writes_cache = getattr(args, "target", "") not in READERS
    OPENED.append(repo)
    return repo


def require_repository(repo: Repo) -> None:
    """A folder with no ``.orch/`` and no manifests is refused (``workspace.NotARepository``,
    "not an orch repository ... (run orch init)", as ``plan`` says) before anything is
    written or an empty table printed; manifests that do not load are the verb's own
    business (watch reports them each cycle; a state reader does not need them)."""
    if repo.orch_dir.is_dir():
        return
    from runner.errors import OrchError
    from runner.workspace import NotARepository

    try:
        repo.manifests()
    except NotARepository:
        raise
    except OrchError:
        pass


def executor_choice(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """``--executor`` and ``--dask-address`` as given; ``UsageError`` (exit 2) for
    ``--executor local --dask-address ...``, which would leave the address unused."""
    from runner.errors import UsageError

    kind, address = getattr(args, "executor", None), getattr(args, "dask_address", None)
    if kind == "local" and address:
        raise UsageError(
            "--dask-address needs the dask executor: drop --executor local, or the address"
        )
    return kind, address


def masked(value: Any) -> Any:
    """``value`` masked with the secrets of every repository this command opened
    (``api.mask``): everything the CLI prints passes here, through ``MaskedStream``."""
    if not OPENED:
        return value
    from runner import api

    for repo in OPENED:
        value = api.mask(repo, value)
    return value


class MaskedStream:
    """A text stream (stdout, stderr) whose every ``write`` goes through ``masked`` first.

    Installed by ``main`` before any verb runs, so no print of any verb, warning or error
    line can bypass masking, whatever it prints: a row stored in clear by an older orch,
    a log file, an error quoting a value. Each write is masked whole (``print`` writes its
    text in one call; ``print_json`` writes the document in one call), so a secret is
    only missed if a caller splits it across writes. Everything else (``isatty``,
    ``fileno``, ``buffer``...) is the wrapped stream's."""

    def __init__(self, stream: Any):
        self._stream = stream
        self._busy = False  # loading the manifests to learn the secrets never re-enters

    def write(self, text: str) -> int:
        if not self._busy:
            self._busy = True
            try:
                text = masked(text)
            finally:
                self._busy = False
        self._stream.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def mask_streams() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through ``MaskedStream`` (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskedStream):
            setattr(sys, name, MaskedStream(stream))


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout, in one write, masked (``masked``): rows recorded
    before a secret was declared must not show it either."""
    sys.stdout.write(json.dumps(masked(data), indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def reader_gone(stream: TextIO) -> Iterator[None]:
    """Writes during a run (task output, progress lines) run in task threads and inside
    the scheduling loop: a closed pipe there must not fail a task or leave the loop with
    tasks running. It stops the run the orderly way instead (``ending.reader_gone``)."""
    try:
        yield
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
        from runner.cli.ending import reader_gone as stop

        stop(stream.fileno())


def open_events(args: argparse.Namespace) -> Any:
    """``--events FILE`` as an ``runner.events.EventSink`` (None without the option).

    ``-`` is stdout (the command then writes nothing else there); a path is relative to
    ``-C DIR``, as ``--junit``'s, and is appended to (created if missing, never
    truncated: a watch's stream survives a restart). Opened before anything runs, so an
    unwritable path is one error line and no state changes (OrchError, exit 1)."""
    target = getattr(args, "events", None)
    if target is None:
        return None
    from runner.events import EventSink

    if target == "-":

        def to_stdout(line: str) -> None:
            with reader_gone(sys.stdout):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

        return EventSink(to_stdout, masked)
    import os

    path = os.path.join(args.directory or ".", target)
    try:
        f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole command
    except OSError as e:
        from runner.errors import OrchError

        raise OrchError(
            f"--events {target}: cannot write it ({e.strerror or e}); "
            "give a writable file, or - for stdout"
        ) from None

    def to_file(line: str) -> None:
        f.write(line + "\n")
        f.flush()

    return EventSink(to_file, masked)
