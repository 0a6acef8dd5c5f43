"""Shared plumbing for the bench scripts: run a process, measure it, summarise, report.

Why not ``subprocess.run`` + ``resource.getrusage(RUSAGE_CHILDREN)`` deltas: the
children's ``ru_maxrss`` is the *maximum* over every child ever reaped, so a small
process measured after a big one reports a delta of 0. Instead each process is
reaped with ``os.wait4``, which returns the rusage of that one child (and of the
descendants it reaped itself) -- the same numbers, without the max-not-sum trap.

Before reaping, the exited process is held as a zombie (``waitid(WNOWAIT)``) and
its ``/proc/<pid>/stat`` is read: the kernel keeps the process's *own* CPU time
(utime/stime) apart from its children's (cutime/cstime) there, which is how the
runner's own CPU is told apart from the CPU of the steps it ran.

Nothing here knows orch's output formats; it only runs commands and keeps numbers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def orch_command(override: str | None) -> list[str]:
    """The argv prefix that starts orch: ``--orch CMD`` wins, else this interpreter."""
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "runner"]


@dataclass
class Sample:
    """One finished process: wall time, peak RSS and CPU split into own and children's."""

    argv: list[str]
    returncode: int
    wall_s: float
    maxrss_kb: int
    cpu_total_s: float
    cpu_self_s: float | None
    cpu_children_s: float | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error(self) -> str:
        """One line a reader can act on: the exit code and the last words of stderr."""
        if self.timed_out:
            return f"timed out after {self.wall_s:.1f}s"
        lines = [ln.strip() for ln in (self.stderr or self.stdout).splitlines() if ln.strip()]
        tail = lines[-1] if lines else "(no output)"
        return f"exit {self.returncode}: {tail[:200]}"


def _proc_stat_times(pid: int) -> tuple[float, float] | None:
    """(own CPU, reaped children's CPU) of a zombie, from /proc; None off Linux."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    # fields[0] is the state; utime, stime, cutime, cstime are fields 14-17 of the man page.
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Sample:
    """Run argv to completion and measure it as a whole process.

    The child gets its own session so a timeout can kill its whole tree (the
    group we created, nothing else).
    """
    argv = [str(a) for a in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            return Sample(argv, 127, 0.0, 0, 0.0, None, None, "", f"cannot start: {exc}")
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill) if timeout else None
        if timer:
            timer.start()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - start
        if timer:
            timer.cancel()
        split = _proc_stat_times(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return Sample(
        argv=argv,
        returncode=proc.returncode,
        wall_s=wall,
        maxrss_kb=usage.ru_maxrss,
        cpu_total_s=usage.ru_utime + usage.ru_stime,
        cpu_self_s=split[0] if split else None,
        cpu_children_s=split[1] if split else None,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out.is_set(),
    )


@dataclass
class Result:
    """One figure of the report: samples of one benchmark, its target and verdict."""

    name: str
    tool: str = "orch"
    n: int | None = None
    shape: str | None = None
    unit: str = "s"  # "s" or "ms/step"
    samples: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    cpu_self_s: float | None = None
    cpu_children_s: float | None = None
    target: float | None = None
    rss_target_mb: float | None = None
    error: str | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def verdict(self) -> str:
        if self.error or not self.samples:
            return "n/a"
        if self.target is None and self.rss_target_mb is None:
            return ""
        over_time = self.target is not None and self.median > self.target
        over_rss = (
            self.rss_target_mb is not None
            and self.rss_mb is not None
            and self.rss_mb > self.rss_target_mb
        )
        return "OVER" if over_time or over_rss else "ok"

    def to_json(self) -> dict:
        data = asdict(self)
        data["median"] = self.median
        data["min"] = min(self.samples) if self.samples else None
        data["reps"] = len(self.samples)
        data["verdict"] = self.verdict
        return data


def measure(
    result: Result,
    argv: Sequence[str] | Callable[[Path | str | None], Sequence[str]],
    *,
    reps: int,
    cwd: Path | str | None = None,
    prepare: Callable[[int], Path | str | None] | None = None,
    check: Callable[[Sample], str | None] | None = None,
    per: int | None = None,
    warmup: bool = False,
    budget_s: float | None = None,
    timeout: float | None = None,
) -> Result:
    """Run argv `reps` times into `result`; stop at the first failure and keep its error.

    `argv` may be a function of the rep's cwd, for commands that name their directory.

    `prepare(i)` runs untimed before each rep and may return the cwd to use (a fresh
    copy of a repository, say). `check` looks at a finished sample and returns an
    error string if the run did not do what was asked. `per` divides the wall time
    (ms per step). `budget_s` ends the reps early, once at least one sample is in,
    so a slow build cannot make the suite run for an hour.
    """
    spent = 0.0
    rss: list[int] = []
    selfs: list[float] = []
    kids: list[float] = []
    total = reps + (1 if warmup else 0)
    for i in range(total):
        where = prepare(i) if prepare else None
        where = cwd if where is None else where
        args = argv(where) if callable(argv) else argv
        sample = run(args, cwd=where, timeout=timeout)
        problem = None if sample.ok else sample.error()
        if problem is None and check is not None:
            problem = check(sample)
        if problem:
            result.error = problem
            break
        if warmup and i == 0:
            continue
        spent += sample.wall_s
        value = sample.wall_s * 1000 / per if per else sample.wall_s
        result.samples.append(value)
        rss.append(sample.maxrss_kb)
        if sample.cpu_self_s is not None:
            selfs.append(sample.cpu_self_s)
            kids.append(sample.cpu_children_s or 0.0)
        if budget_s is not None and spent >= budget_s:
            break
    if rss:
        result.rss_mb = max(rss) / 1024
    if selfs:
        result.cpu_self_s = statistics.median(selfs)
        result.cpu_children_s = statistics.median(kids)
    if result.samples and result.error:
        result.note = (result.note + "; " if result.note else "") + "later rep failed"
    return result


def git(*args: str, cwd: Path) -> None:
    """Run git quietly in a generated repo, with no user config or hooks leaking in."""
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=orch-bench",
            "-c",
            "user.email=bench@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.hooksPath=/dev/null",
            *args,
        ],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def fmt_time(seconds: float | None, unit: str = "s") -> str:
    if seconds is None:
        return "-"
    if unit == "ms/step":
        return f"{seconds:.2f} ms/step"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_mb(mb: float | None) -> str:
    return "-" if mb is None else f"{mb:.0f} MB"


def target_text(r: Result) -> str:
    parts = []
    if r.target is not None:
        parts.append("<= " + fmt_time(r.target, r.unit))
    if r.rss_target_mb is not None:
        parts.append(f"RSS <= {r.rss_target_mb:.0f} MB")
    return ", ".join(parts)


def print_table(results: list[Result], file=None) -> None:
    """A plain fixed-width table: figures next to their targets, errors underneath."""
    file = file or sys.stdout
    head = ("benchmark", "tool", "N", "shape", "median", "min", "reps", "peak RSS", "target", "")
    rows = [head]
    for r in results:
        rows.append(
            (
                r.name,
                r.tool,
                "" if r.n is None else f"{r.n:,}",
                r.shape or "",
                fmt_time(r.median, r.unit) if r.samples else "n/a",
                fmt_time(min(r.samples), r.unit) if r.samples else "",
                str(len(r.samples)),
                fmt_mb(r.rss_mb),
                target_text(r),
                r.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for k, row in enumerate(rows):
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(),
            file=file,
        )
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file)
    notes = [r for r in results if r.error or r.note]
    if notes:
        print(file=file)
    for r in notes:
        label = f"{r.name} [{r.tool}{'' if r.n is None else f' N={r.n}'}{f' {r.shape}' if r.shape else ''}]"
        if r.error:
            print(f"  n/a  {label}: {r.error}", file=file)
        if r.note:
            print(f"  note {label}: {r.note}", file=file)


def environment(orch: list[str]) -> dict:
    """What a reader needs to compare two reports: machine, interpreter, orch revision."""
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=BENCH_DIR,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "orch_command": orch,
        "orch_revision": rev or None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def default_report_path(prefix: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    return RESULTS_DIR / f"{prefix}-{stamp}.json"


def write_report(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nreport written to {path}")


def wait_until(predicate: Callable[[], bool], deadline_s: float, poll_s: float = 0.002) -> bool:
    """Poll until predicate() holds or the deadline passes; True if it held."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()
