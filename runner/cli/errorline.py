"""The one error line every failure of a command prints, and the argparse parser whose
usage errors print it.

Kept apart from ``main`` so the parser builders (``runner.cli.parsers``) can use the parser
class without importing the entry point that imports them.
"""

from __future__ import annotations

import argparse
import sys

JSON_ERRORS: list[bool] = [False]  # --json on the command line: errors go out as JSON too
DETAILED: list[bool] = [False]  # plan --detailed-exitcode: 2 means "changes", so errors are 1
LAST_ERROR: list[str | None] = [None]  # the error line said last, for the audit log


def usage_code() -> int:
    """2 for a usage error, as argparse; 1 under ``plan --detailed-exitcode``, where 2 means
    "something would run" and every error is 1 (Terraform's rule), so a mistyped flag in CI
    never reads as a plan with changes."""
    return 1 if DETAILED[0] else 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """A usage error is one line naming what is wrong and where to read more, exit 2
        (argparse's own usage block is many lines, and hides the one that matters)."""
        code = usage_code()
        say_error(f"{message} (see {self.prog} --help)", code, JSON_ERRORS[0], label="error: ")
        self.exit(code)


def say_error(line: str, code: int, json_out: bool, label: str = "", **extra: object) -> None:
    """One error line on stderr as ``orch: LABEL LINE``; with ``--json``, also
    ``{"error": LINE, "exit": CODE, ...extra}`` on stdout, so a script reading stdout gets
    JSON whatever happened (the exit code is the same either way)."""
    from runner.render import shown

    LAST_ERROR[0] = line
    print(shown(f"orch: {label}{line}"), file=sys.stderr)
    if json_out:
        import json

        sys.stdout.write(json.dumps({"error": shown(line), "exit": code, **extra}) + "\n")
        sys.stdout.flush()
