"""``orch logs``: a task's log, printed or followed (``-f``) through its retries."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from runner import api
from runner.cli.common import (
    print_json,
    reader_gone,
    repo_from,
)
from runner.render import shown


def logs(args: argparse.Namespace) -> int:
    if args.follow and args.json:
        from runner.errors import UsageError

        raise UsageError("logs: --follow prints text as it comes; --json prints the log once")
    repo = repo_from(args)
    row = api.log_task(repo, args.workflow, args.step, args.run, args.attempt)
    path = repo.root / row["log_path"]
    if args.follow:
        _await_log(repo, row["id"], path)
    with _open_log(path) as f:
        if args.json:
            print_json(
                {
                    "workflow": args.workflow,
                    "step": args.step,
                    "run_id": row["run_id"],
                    "attempt": row["attempt"],
                    "status": row["status"],
                    "path": str(path),
                    "log": f.read(),
                }
            )
            return 0
        if args.follow:
            _follow(repo, row["id"], f)
        else:
            for line in f:
                sys.stdout.write(line)
    if args.follow and args.attempt is None:  # the step, not one attempt: on into retries
        _follow_retries(repo, args, row)
    return 0


def _open_log(path: Path) -> Any:
    """A task's log opened for reading: OrchError (one line) when it is gone or is not a
    regular file. Non-blocking: a FIFO put in the log's place must not hang the reader."""
    import stat

    from runner.errors import OrchError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OrchError(
            f"{path}: the log is gone (was .orch/logs cleaned?); re-run the step with orch apply --force"
        ) from None
    f = open(fd, encoding="utf-8", errors="replace")  # noqa: SIM115 - the caller's with
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise OrchError(f"{path}: not a regular file (a FIFO or device); remove it")
    return f


def _follow_retries(repo: api.Repo, args: argparse.Namespace, row: dict[str, Any]) -> None:
    """After a followed attempt ends, follow the step's next ones while its runner
    retries it (``api.retry_pending``): each retry's log from its first line, a line on
    stderr saying where it begins. Ends with the step's last attempt, as ``-f`` does."""
    while True:
        while api.retry_pending(repo, row["id"]):
            time.sleep(FOLLOW_POLL)
        nxt = api.log_task(repo, args.workflow, args.step, row["run_id"])
        if nxt["attempt"] <= row["attempt"]:
            return  # no retry came: the runner ended, or the attempt was cancelled
        row = nxt
        path = repo.root / row["log_path"]
        with reader_gone(sys.stderr):
            print(
                f"orch: attempt {row['attempt']} (log: {shown(row['log_path'])})", file=sys.stderr
            )
        _await_log(repo, row["id"], path)
        with _open_log(path) as f:
            _follow(repo, row["id"], f)


FOLLOW_POLL = 0.2  # seconds between looks at a followed log, and at its task's row


def _await_log(repo: api.Repo, task_id: int, path: Any) -> None:
    """A task that has just started may not have created its log yet: wait while it runs."""
    from runner.status import LIVE

    while not path.exists() and api.task(repo, task_id)["status"] in LIVE:
        time.sleep(FOLLOW_POLL)


def _follow(repo: api.Repo, task_id: int, f: Any) -> None:
    """Print the task's log ``f`` from where it stands, and what the task appends, until the
    task is no longer running, then the rest. Polls the file, as ``tail -f`` does where
    inotify is missing; the row is read only when the file had nothing new, and a task of
    a runner that died counts as ended (``api.task``). Each read's end is held back by
    the secrets' overlap (``TextStreamMasker``): a secret the writer had half written is
    masked whole once the rest comes, never printed as two halves."""
    from runner.masking import TextStreamMasker
    from runner.status import LIVE

    masker = TextStreamMasker(api.secrets(repo))
    while True:
        chunk = f.read(1 << 20)
        if chunk:
            sys.stdout.write(masker.feed(chunk))
            sys.stdout.flush()
            continue
        if api.task(repo, task_id)["status"] not in LIVE:
            sys.stdout.write(masker.feed(f.read()) + masker.flush())  # its last words
            sys.stdout.flush()
            return
        time.sleep(FOLLOW_POLL)
