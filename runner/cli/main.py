"""``orch``: argparse wired to ``runner.api``, one error handler, exit codes.

Exit codes: 0 ok, 1 a step or validation failed, 2 usage error (one line naming the verb's
``--help``), 3 internal error, 130 interrupted (Ctrl-C, or the executor's
cluster lost mid-run: ``errors.Interrupted``), 143 ended by SIGTERM, 129 ended by
SIGHUP (128 + the signal's number, as shells report it), 141 when apply's reader went away
(``orch apply | head``: stopped as for Ctrl-C, silently). With ``--json`` every error is also
``{"error": MESSAGE, "exit": CODE}`` on stdout (docs/cli.md).
SIGTERM and SIGHUP (a CI cancel, ``docker stop``, a closed terminal) end a command exactly
as Ctrl-C does: running tasks' process trees are ended, their rows closed, ``on:``
handlers told; a second one while that happens is ignored (SIGKILL still ends us).
Commands live in ``runner/cli/``, a few lines each; heavy imports happen there, inside
the function that needs them, so ``orch --version`` stays near bare-Python start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from runner import __version__
from runner.cli import ending, errorline
from runner.cli.errorline import say_error, usage_code
from runner.cli.parsers import build_parser

if TYPE_CHECKING:
    from runner.errors import OrchError

Handler = Callable[[argparse.Namespace], int]


_ARGV: list[list[str]] = [[]]  # the command line main() was given, for the audit log


def verb_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the verb ``args`` were parsed for (``orch task list`` -> its own)."""
    for name in ("command", "subcommand"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, name, None)
        if not subs or chosen not in subs[0].choices:
            break
        parser = subs[0].choices[chosen]
    return parser


def _verb(argv: list[str]) -> str | None:
    """The top-level verb ``argv`` names (its first word that is not an option or the value
    of ``-C``), or None: ``--help`` before it, or none at all, needs the whole parser."""
    it = iter(argv)
    for word in it:
        if word == "-C":
            next(it, None)
        elif word in ("-h", "--help", "--version") or word == "--":
            return None
        elif not word.startswith("-"):
            return word
    return None


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices  # type: ignore[return-value]
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    opts = argv[: argv.index("--")] if "--" in argv else argv
    json_out = "--json" in opts or _events_to_stdout(opts)
    errorline.JSON_ERRORS[0] = json_out
    errorline.DETAILED[0] = "--detailed-exitcode" in argv
    if argv == ["--version"]:  # the one call scripts make in a loop: no parser at all
        try:
            print(f"orch {__version__}", flush=True)
        except BrokenPipeError:  # `orch --version | true`: quiet, as every verb's
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        return 0
    verb = _verb(argv)
    parser = build_parser(verb)
    if verb is None or verb not in _choices(parser):
        parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the verb's parser, so the line names the verb's --help
        verb_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "target", None):
        if args.command is None:
            parser.print_help()
            return 2
        parser.parse_args([*argv, "--help"])
        return 2
    module, _, func = args.target.partition(":")
    _ARGV[0] = argv
    _handle_termination()
    from runner.cli.common import mask_streams

    mask_streams()  # every line printed from here on is masked (runner.cli.common.masked)
    code = _dispatch(args, module, func, json_out)
    if args.target in _audited():
        _audit(argv, code)
    return code


def _audited() -> frozenset[str]:
    from runner.audit import AUDITED

    return AUDITED


def _audit(argv: list[str], code: int | None) -> None:
    """Append the command to the audit log (``runner.audit``) unless the verb said it
    changed nothing (``common.AUDIT_SKIP``: a no-op apply, a dry run) or no repository
    was opened. A row that cannot be written is a warning after a command that succeeded
    (after one that failed, its own error line said what is wrong), never a failure."""
    from runner.cli import common

    if common.AUDIT_SKIP[0] or not common.OPENED:
        return
    from runner.audit import record

    try:
        root, error = common.OPENED[0].root, errorline.LAST_ERROR[0] if code else None
        record(root, argv, code, error, common.masked, into=common.AUDIT_INTO[0])
    except Exception as e:  # StateError, OSError, sqlite3: the command's result stands
        if code not in (0, None):
            return  # its own error line said what is wrong (a read-only or full .orch/)
        from runner.render import shown

        print(shown(f"orch: warning: audit log not written: {e}"), file=sys.stderr)


def audit_start() -> None:
    """A row for a command that starts something long-lived (``watch``), before it runs
    (exit code null); its end is recorded as every command's is."""
    _audit(_ARGV[0], None)


def _dispatch(args: argparse.Namespace, module: str, func: str, json_out: bool) -> int:
    """Run the verb's handler; every error becomes its one line and exit code."""
    from runner.errors import OrchError  # after parsing: --version and --help never need it

    try:
        if args.directory and not os.path.isdir(args.directory):
            raise OrchError(f"-C {args.directory}: no such directory")
        import importlib

        mod = importlib.import_module(f"runner.cli.{module}")
        handler: Handler = getattr(mod, func)
        try:
            return handler(args)
        finally:
            _print_warnings()
    except OrchError as e:
        if e.exit_code == 2:
            e.exit_code = usage_code()
        errorline.LAST_ERROR[0] = "; ".join(e.lines())
        if json_out:
            return _json_error(e)
        from runner.render import shown

        for line in e.lines():
            print(shown(f"orch: {line}" if not e.diagnostics else line), file=sys.stderr)
        if e.diagnostics and len(e.diagnostics) > 1:
            print(f"orch: {len(e.diagnostics)} errors", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        if ending.by_closed_pipe():
            return 128 + signal.SIGPIPE  # quietly: whoever reads our output has gone
        if str(e):  # errors.Interrupted: not a signal, something to say (a cluster lost)
            say_error(f"interrupted: {e}", 130, json_out)
            return 130
        if ending.ENDED_BY:
            name = signal.Signals(ending.ENDED_BY[0]).name
            say_error(f"interrupted by {name}", 128 + ending.ENDED_BY[0], json_out)
            return 128 + ending.ENDED_BY[0]
        say_error("interrupted", 130, json_out)
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        return 0
    except OSError as e:
        line = environment_error(e)
        if line is None:
            return _crash(args, e)
        say_error(line, 1, json_out)
        return 1
    except Exception as e:  # the one place an unexpected error becomes one line
        return _crash(args, e)


def _events_to_stdout(opts: list[str]) -> bool:
    """``--events -``: stdout carries JSON lines only, so errors go there as JSON too."""
    return "--events=-" in opts or any(
        a == "--events" and b == "-" for a, b in zip(opts, opts[1:], strict=False)
    )


def _json_error(e: OrchError) -> int:
    """An OrchError with ``--json``: its lines on stderr as always, and one JSON object on
    stdout: ``{"error": MESSAGE, "exit": CODE}``, with ``"diagnostics": [{path, line, col,
    where, message, hint}]`` when the error has them."""
    if not e.diagnostics:  # one line, or a few (one per problem): the JSON joins them
        say_error("; ".join(e.lines()), e.exit_code, True)
        return e.exit_code
    from runner.render import shown

    for line in e.lines():
        print(shown(line), file=sys.stderr)
    say_error(str(e), e.exit_code, True, diagnostics=[d.to_json() for d in e.diagnostics])
    return e.exit_code


# what the machine, not orch or the manifests, failed at, and what to do about it
_ENVIRONMENT = {
    "ENOSPC": "the disk is full; free space on it, then run the command again",
    "EDQUOT": "the disk quota is used up; free space, then run the command again",
    "EFBIG": "over the file size limit (ulimit -f); raise it, then run the command again",
    "EROFS": "run this where it is writable (status, plan, history and logs read a "
    "read-only .orch/ as it is)",
    "EACCES": "permission denied; check the permissions, or run as the owner",
    "EPERM": "not permitted; check the permissions, or run as the owner",
    "EIO": "an I/O error; check the disk, then run the command again",
    "EMFILE": "too many open files; raise the limit (ulimit -n), then run the command again",
    "ENFILE": "too many open files on this machine; close some, then run the command again",
    "ENOMEM": "out of memory; free some, then run the command again",
}


def environment_error(e: OSError) -> str | None:
    """One line for an error of the machine (disk full, read-only, permissions...): what
    failed and what to do; None for any other OSError (a bug: the crash report)."""
    import errno

    hint = _ENVIRONMENT.get(errno.errorcode.get(e.errno or 0, ""))
    if hint is None:
        return None
    what = f"{os.fsdecode(e.filename)}: " if e.filename is not None else ""
    return f"{what}{e.strerror or e}: {hint}"


TERMINATING = ("SIGTERM", "SIGHUP")


def _handle_termination() -> None:
    """Turn SIGTERM and SIGHUP into the KeyboardInterrupt that Ctrl-C raises, so every
    command cleans up the one way; a signal someone set to be ignored (``nohup``) stays
    ignored. Commands with their own stop logic (watch, mcp) replace these handlers."""
    for name in TERMINATING:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, ending.terminate)


def _print_warnings() -> None:
    from runner.cli.common import OPENED

    said: set[str] = set()
    for repo in OPENED:
        for line in repo.warnings:
            if line not in said:
                said.add(line)
                from runner.render import shown

                print(f"orch: warning: {shown(line)}", file=sys.stderr)


def _damaged_state(where: os.PathLike[str]) -> str | None:
    """The state-reset line if ``.orch/state.db`` is damaged: a damaged page can hold values
    of any type, and whatever error that caused, the way out is the same as for any other
    damage. Read-only, on the error path only."""
    try:
        from pathlib import Path

        from runner.manifests.sources import find_root
        from runner.store.state import State

        orch_dir = find_root(Path(where)) / ".orch"
        if not (orch_dir / "state.db").exists():
            return None
        state = State(orch_dir, readonly=True)
        try:
            damage = state.damage()
        finally:
            state.close()
    except Exception:  # noqa: BLE001 - only a better message for an error already raised
        return None
    return str(damage) if damage is not None else None


def _crash(args: argparse.Namespace, e: BaseException) -> int:
    import traceback
    from pathlib import Path

    where = Path(args.directory or ".").resolve()
    damaged = _damaged_state(where)
    if damaged:
        say_error(damaged, 1, errorline.JSON_ERRORS[0])
        return 1
    log = None
    try:
        from runner.manifests.sources import find_root

        log = find_root(where) / ".orch" / "logs" / "crash.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"orch {__version__}: {' '.join(sys.argv)}\n")
            traceback.print_exc(file=f)
    except OSError:
        log = None

    msg = f"internal error: {type(e).__name__}: {e}"
    if log:
        msg += f" (traceback in {log}; please report it)"
    say_error(msg, 3, errorline.JSON_ERRORS[0])
    return 3
