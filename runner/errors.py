"""The one user-facing error type, and the diagnostics it carries.

Every mistake a user can make in a manifest becomes a ``Diagnostic``; they are collected
(all of them, across every file) and raised together as one ``OrchError`` so a single
``orch validate`` shows everything that is wrong, sorted, one line each.
"""

from __future__ import annotations

from typing import NamedTuple


class Diagnostic(NamedTuple):
    """One problem at one place. A NamedTuple (ordered, hashable, immutable) rather than a
    dataclass: every command imports this module, and dataclasses cost start-up time."""

    path: str
    line: int
    col: int
    where: str
    what: str
    hint: str = ""

    def __str__(self) -> str:
        loc = self.path
        if self.line:
            loc += f":{self.line}:{self.col or 1}"
        where = f" {self.where}:" if self.where else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{loc}:{where} {self.what}{hint}"

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "where": self.where,
            "message": self.what,
            "hint": self.hint,
        }


def shown(text: str) -> str:
    """A file name (or any text from the file system) as a person reads it: bytes that are
    not UTF-8, which Python carries as surrogate escapes, become ``\\xNN``, so they can be
    printed, logged and stored as text (``caf\\xe9.txt``)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class OrchError(Exception):
    """A problem the user can fix. Printed as one line per diagnostic, exit 1."""

    exit_code = 1

    def __init__(self, message: str = "", diagnostics: list[Diagnostic] | None = None):
        self.diagnostics = sorted(set(diagnostics or []))
        self.warnings: list[str] = []  # said before the errors (files skipped, ...)
        if not message and self.diagnostics:
            n = len(self.diagnostics)
            message = f"{n} error{'s' if n != 1 else ''}"
        super().__init__(message)

    def lines(self) -> list[str]:
        if self.diagnostics:
            return [str(d) for d in self.diagnostics]
        return [str(self)]


class UsageError(OrchError):
    """Bad command-line usage: exit 2, like argparse."""

    exit_code = 2


class StateError(OrchError):
    """The recorded state in .orch/ cannot be used as it is; the message says the way out."""


class LockBusy(OrchError):
    """Another orch process holds what we need and the user asked us not to wait."""


def nearest(word: str, choices: list[str] | set[str] | tuple[str, ...]) -> str | None:
    """The closest of ``choices`` to ``word``, for "did you mean" hints."""
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, choices) -> str:
    best = nearest(word, choices)
    return f"did you mean '{best}'?" if best else ""


def suggest(word: str, choices: list[str] | tuple[str, ...], label: str, none: str = "") -> str:
    """The hint for an unknown name: the nearest of ``choices`` ("did you mean 'x'?"), else
    every one of them after ``label`` ("its params: a, b"), else ``none`` when there are
    none. The one helper every "no such name" message uses, so they all read alike."""
    return did_you_mean(word, choices) or (f"{label}: {', '.join(choices)}" if choices else none)


class Interrupted(KeyboardInterrupt):
    """A run that ended as interrupted without a signal: its executor's cluster was lost
    mid-run. Handled wherever Ctrl-C is (the run recorded interrupted, exit 130); ``str()``
    is the one line that says why."""


class RunCutShort(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP during an apply, raised after the run was recorded
    ``interrupted``: ``result`` (a ``results.ApplyResult``) is what the run did up to then,
    so the CLI still writes its JUnit report and CI summary. Handled as Ctrl-C is."""

    def __init__(self, result: object):
        super().__init__()
        self.result = result


def cut_short_result(e: BaseException) -> object | None:
    """The ``ApplyResult`` an interrupted apply carried out (``RunCutShort`` or an
    ``Interrupted`` given one), else None."""
    return getattr(e, "result", None)
