"""orch completion SHELL: a completion script for bash, zsh or fish, generated from the
parser itself by shtab, so it can never drift from the verbs and options orch takes.

shtab is an optional extra (``pip install 'orch-gitops[completion]'``), imported only here.
"""

from __future__ import annotations

import argparse
import sys

from runner.errors import OrchError

INSTALL_HINT = "orch completion needs shtab: pip install 'orch-gitops[completion]'"


def completion(args: argparse.Namespace) -> int:
    try:
        import shtab
    except ImportError:
        raise OrchError(INSTALL_HINT) from None
    if args.shell not in shtab.SUPPORTED_SHELLS:  # an older shtab than the extra asks for
        raise OrchError(f"this shtab cannot write {args.shell} completion; {INSTALL_HINT} -U")
    from runner.cli.parsers import build_parser

    parser = build_parser()
    _mark_paths(parser, shtab)
    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return 0


# options whose value is a path: completed as files (or folders), not as free text
_DIRS = {"-C", "--path", "--write"}
_FILES = {"--junit"}


def _mark_paths(parser: argparse.ArgumentParser, shtab: object) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub, shtab)
        elif _DIRS & set(action.option_strings):
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
        elif _FILES & set(action.option_strings) or action.dest == "paths":
            action.complete = shtab.FILE  # type: ignore[attr-defined]
