"""An apply as a JUnit XML report, the one test format every CI system renders.

One ``<testsuite>`` per workflow, one ``<testcase classname=WORKFLOW name=STEP>`` per step::

    succeeded                      -> a passing test case
    failed, timed_out              -> <failure type=STATUS message=...>log tail</failure>
    cancelled, interrupted         -> <error ...>: the step did not get to finish
    up-to-date, skipped, blocked,  -> <skipped message=...>: orch chose not to run it
    circuit_open, not-started, ...

A step that ran on a Dask worker carries ``<properties><property name="orch.worker"
value=ADDRESS/></properties>`` in its test case (the form pytest's ``record_property`` writes).

Step output can hold anything (ANSI colours, NUL bytes, invalid UTF-8, ``]]>``), so every
string is cleaned of what XML 1.0 cannot carry before ElementTree escapes the rest, and the
file is written to a temporary name and renamed: a CI job never reads half a report.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from runner.render import shown
from runner.status import CANCELS, Status

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.reconcile.results import ApplyResult, StepResult

TAIL_LINES = 50
TAIL_BYTES = 64 * 1024
FAILURE = (Status.FAILED, Status.TIMED_OUT)
ERROR = CANCELS

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# characters XML 1.0 cannot hold even escaped (C0 controls but tab/LF/CR, lone surrogates, ...)
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def write_junit(
    path: str | os.PathLike[str],
    result: ApplyResult,
    root: Path,
    mask: Callable[[str], str] = str,
) -> None:
    """Write the report for ``result`` to ``path`` (its folder is created if missing).
    Every name, message and log tail goes through ``mask`` (the CLI's ``masked``: a log
    tail read back from disk may predate its secret's declaration)."""
    suites = ET.Element("testsuites", name="orch")
    by_workflow: dict[str, list[StepResult]] = {}
    for r in result.results:
        by_workflow.setdefault(r.workflow, []).append(r)
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_time = 0.0
    for wf, results in by_workflow.items():
        suite = ET.SubElement(suites, "testsuite", name=_name(mask(wf)))
        if result.run_id is not None:
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="orch.run_id", value=str(result.run_id))
        counts = dict.fromkeys(totals, 0)
        suite_time = 0.0
        for r in results:
            _testcase(suite, r, root, mask)
            counts["tests"] += 1
            if r.status in FAILURE:
                counts["failures"] += 1
            elif r.status in ERROR:
                counts["errors"] += 1
            elif r.status != "succeeded":
                counts["skipped"] += 1
            suite_time += r.duration
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{suite_time:.3f}")
        total_time += suite_time
    for k, v in totals.items():
        suites.set(k, str(v))
    suites.set("time", f"{result.duration or total_time:.3f}")
    ET.indent(suites)
    data = ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"
    _write_atomic(Path(path), data)


def _testcase(suite: ET.Element, r: StepResult, root: Path, mask: Callable[[str], str]) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_name(mask(r.workflow)),
        name=_name(mask(r.step)),
        time=f"{r.duration:.3f}",
    )
    if r.worker:  # where it ran, for a cluster executor (Dask worker address)
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="orch.worker", value=_name(r.worker))
    if r.status == "succeeded":
        return
    if r.status in FAILURE or r.status in ERROR:
        tag = "failure" if r.status in FAILURE else "error"
        el = ET.SubElement(case, tag, type=r.status, message=_name(mask(_summary(r))))
        el.text = _clean(mask(_tail(r, root)))
        return
    why = "; ".join(r.reasons) or r.message
    label = r.status.replace("_", " ")
    ET.SubElement(case, "skipped", message=_name(mask(f"{label}: {why}" if why else label)))


def _summary(r: StepResult) -> str:
    """One line a CI annotation can show: what happened, the exit code, where the log is."""
    bits = [r.status.replace("_", " ")]
    if r.exit_code is not None:
        bits.append(f"exit {r.exit_code}")
    if r.attempts > 1:
        bits.append(f"after {r.attempts} attempts")
    msg = ", ".join(bits)
    if r.message:
        msg += f": {r.message}"
    if r.log_path:
        msg += f" (log: {r.log_path})"
    return msg


def _tail(r: StepResult, root: Path) -> str:
    """The last lines of the task's log file; the executor's in-memory tail if it is gone."""
    if r.log_path:
        try:
            with open(root / r.log_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_BYTES))
                data = f.read()
            lines = data.decode("utf-8", errors="replace").splitlines()
            if size > TAIL_BYTES and lines:
                lines = lines[1:]  # the first line was cut in the middle
            return "\n".join(lines[-TAIL_LINES:])
        except OSError:
            pass
    return "\n".join(r.log_tail[-TAIL_LINES:])


def _name(s: str) -> str:
    """A name or message for one line of a CI page: cleaned, then ``render.shown``."""
    return shown(_clean(s))


def _clean(s: str) -> str:
    """Log text: terminal escapes removed, characters XML cannot carry shown as \\xNN.
    (Names and messages, one line each, go through ``render.shown`` instead.)"""
    s = _ANSI.sub("", s)
    return _ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)


def _write_atomic(path: Path, data: bytes) -> None:
    from runner.fsutil import atomic_write

    atomic_write(path, data, durable=True)
