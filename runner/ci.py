"""GitHub Actions output for ``orch apply`` when ``GITHUB_ACTIONS=true``: each task's log in
a collapsible group, a failed step as an error annotation on its manifest line, and a
Markdown summary table appended to ``$GITHUB_STEP_SUMMARY``.

Everything printed follows GitHub's workflow-command rules (the ``@actions/core`` toolkit's
``escapeData``/``escapeProperty``): ``%``, CR and LF are percent-encoded in a message, and
``:`` and ``,`` too in a property. Text from the repository goes through ``render.shown``
first, so no step output, file name or step name can start a line of its own: a task
printing ``::error::x`` or ``::endgroup::`` shows that text inside its group and is never
read as a command: a group's lines are printed between ``::stop-commands::TOKEN`` and
``::TOKEN::`` with a random token (GitHub's documented way to print untrusted text).

Groups are printed whole, when a task ends: GitHub folds whatever lies between
``::group::`` and ``::endgroup::`` and has no nesting, so lines of parallel tasks printed as
they come would land in one another's groups. A task's lines are buffered (the last
``GROUP_LINES``; the full log stays in ``.orch/logs``) and printed as one group when it
finishes. The price: a running step's output appears when it ends, not line by line.

Imported only when ``GITHUB_ACTIONS=true`` (never on the no-op path).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.render import shown
from runner.status import CANCELS, Status

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.reconcile.results import ApplyResult

GROUP_LINES = 5000  # per task; the log file holds the rest
# GitHub takes up to 1 MiB of summary per job step: up to SUMMARY_ALL steps every one is
# listed; past that, up-to-date steps are counted, not listed, and rows stop at SUMMARY_ROWS
SUMMARY_ALL = 100
SUMMARY_ROWS = 1000
FAILED = (Status.FAILED, Status.TIMED_OUT, *CANCELS)


def enabled() -> bool:
    """Whether orch runs as a GitHub Actions step (the runner sets ``GITHUB_ACTIONS=true``)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


# GitHub's limits on an annotation (the Checks API's title is at most 255 characters, and
# its message 64 KiB) and a group title: text past them is cut by GitHub, or the command
# dropped; orch cuts it first, with an ellipsis, before escaping (never inside a %XX)
TITLE_MAX = 255
MESSAGE_MAX = 4096  # an annotation is a pointer to the log, not the log


def capped(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the last an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_data(text: object) -> str:
    """A workflow-command message: shown(), then ``%``, CR, LF percent-encoded."""
    s = shown(text)
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: object) -> str:
    """A workflow-command property value (``file=``, ``title=``): as ``escape_data``, and
    ``:`` and ``,``, which would end the property."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Groups:
    """Per-task buffers of output lines, each printed as one ``::group::`` when the task
    ends (``close``), or at the end of the run (``flush``) for tasks an interrupt cut short.
    Thread-safe: lines come from the tasks' reader threads."""

    def __init__(self, write: Callable[[str], None]):
        self._write = write
        self._lock = threading.Lock()
        self._lines: dict[tuple[str, str], deque[str]] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def echo_for(self, workflow: str, step: str) -> Callable[[str], None]:
        key = (workflow, step)

        def echo(line: str) -> None:
            with self._lock:
                buf = self._lines.setdefault(key, deque(maxlen=GROUP_LINES))
                if len(buf) == GROUP_LINES:
                    self._dropped[key] = self._dropped.get(key, 0) + 1
                buf.append(line)

        return echo

    def close(self, workflow: str, step: str, title: str = "") -> None:
        """Print the task's group (nothing if it printed nothing)."""
        with self._lock:
            lines = self._lines.pop((workflow, step), None)
            dropped = self._dropped.pop((workflow, step), 0)
        if lines is None:
            return
        import secrets

        # GitHub's own way to print text that must not act as commands: between
        # ::stop-commands::TOKEN and ::TOKEN:: nothing is processed, and the token is
        # random per group, so no task output can end the pause early
        token = secrets.token_hex(16)
        out = [
            f"::group::{escape_data(capped(shown(title or f'{workflow}/{step}'), TITLE_MAX))}",
            f"::stop-commands::{token}",
        ]
        if dropped:
            out.append(f"({dropped} earlier lines: see the step's log in .orch/logs)")
        out.extend(shown(line) for line in lines)
        out += [f"::{token}::", "::endgroup::"]
        self._write("\n".join(out))

    def flush(self) -> None:
        with self._lock:
            keys = list(self._lines)
        for wf, step in keys:
            self.close(wf, step, f"{wf}/{step} (cut short)")


def step_line(root: Path, m: Manifests, workflow: str, step: str) -> tuple[str, int]:
    """(manifest path, 1-based line) where ``step`` of ``workflow`` is declared; for an
    instance of a fan-out step, the fan-out step's line; the workflow's line when the
    step's cannot be found (the file changed since it was read)."""
    wf = m.workflows.get(workflow)
    if wf is None:
        return "", 1
    s = wf.by_name.get(step)
    if s is None:
        return wf.path, wf.loc.line
    from runner.manifests.yamlsrc import load_text

    try:
        text = (root / wf.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return wf.path, wf.loc.line
    docs, _ = load_text(text, wf.path)
    doc = next((d for d in docs if d.index == wf.doc_index), None)
    if doc is None:
        return wf.path, wf.loc.line
    return wf.path, doc.where(("spec", "steps", s.index))[0]


def annotations(result: ApplyResult, root: Path, m: Manifests) -> list[str]:
    """One ``::error file=...,line=...,title=...::message`` per failed, timed-out,
    cancelled or interrupted step, on the line where the step is declared."""
    out = []
    for r in result.results:
        if r.status not in FAILED:
            continue
        path, line = step_line(root, m, r.workflow, r.step)
        bits = [r.status.replace("_", " ")]
        if r.exit_code is not None:
            bits.append(f"exit {r.exit_code}")
        msg = ", ".join(bits) + (f": {r.message}" if r.message else "")
        if r.log_path:
            msg += f" (log: {r.log_path})"
        title = capped(shown(f"orch: {r.workflow}/{r.step}"), TITLE_MAX)
        props = f"line={line},title={escape_property(title)}"
        if path:
            props = f"file={escape_property(path)},{props}"
        out.append(f"::error {props}::{escape_data(capped(shown(msg), MESSAGE_MAX))}")
    return out


CELL_MAX = 500  # characters of a summary cell: 1000 rows stay well inside GitHub's 1 MiB


def _cell(text: object) -> str:
    """Text in a Markdown table cell: shown(), cut to ``CELL_MAX`` characters, then ``|``
    and the characters that start Markdown or HTML markup (``&``: an entity) escaped, so
    repository text renders as the text it is."""
    s = capped(shown(text), CELL_MAX)
    for c in "\\|`*_[]<>#!&":
        s = s.replace(c, "\\" + c)
    return s


def summary(result: ApplyResult, interrupted: bool = False) -> str:
    """The run as Markdown: a heading with the verdict and a table (step, status,
    duration, reason), for ``$GITHUB_STEP_SUMMARY``."""
    verdict = "interrupted" if interrupted else ("ok" if result.ok else "failed")
    run = f"run {result.run_id}" if result.run_id is not None else "nothing to run"
    lines = [
        f"### orch apply: {verdict} ({run}, {result.duration:.2f}s)",
        "",
        "| step | status | duration | reason |",
        "| --- | --- | ---: | --- |",
    ]
    rows = list(result.results)
    fresh = [r for r in rows if r.status == Status.UP_TO_DATE]
    if len(rows) > SUMMARY_ALL:  # a big repository: what happened, not what stood still
        rows = [r for r in rows if r.status != Status.UP_TO_DATE]
    more = len(rows) - SUMMARY_ROWS
    for r in rows[:SUMMARY_ROWS]:
        took = f"{r.duration:.2f}s" if r.duration else "-"
        why = r.message or "; ".join(r.reasons)  # why it ran, or why it did not
        if r.status in FAILED:  # what went wrong, not why it ran
            bits = [f"exit {r.exit_code}"] if r.exit_code is not None else []
            why = ": ".join([*bits, *([r.message] if r.message else [])])
        lines.append(
            f"| {_cell(r.workflow + '/' + r.step)} | {_cell(r.status)} | {took} | {_cell(why)} |"
        )
    notes = []
    if more > 0:
        notes.append(f"{more} more steps: see `orch history --tasks`")
    if len(rows) < len(result.results) and fresh:
        notes.append(f"{len(fresh)} steps up to date, not listed")
    if notes:
        lines += ["", *(f"_{n}_" for n in notes)]
    return "\n".join(lines) + "\n\n"


def append_summary(text: str) -> None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` when it is set (a missing folder or an
    unwritable file is a warning on stderr, not a failed run)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        import sys

        print(f"orch: warning: GITHUB_STEP_SUMMARY {shown(path)}: {e.strerror}", file=sys.stderr)


def report(result: ApplyResult, root: Path, m: Manifests | None, interrupted: bool) -> list[str]:
    """What the end of an apply prints for Actions (the annotations) after appending the
    summary; ``m`` None (the catalog failed to load) means no annotations."""
    append_summary(summary(result, interrupted))
    return annotations(result, root, m) if m is not None else []


__all__: list[Any] = ["Groups", "annotations", "enabled", "report", "summary"]
