"""Shared plumbing for the bench scripts: run a process, measure it, summarise, report.

How a process is measured, and why this way:

- Peak RSS is ``ru_maxrss`` from ``wait4`` on that one process (the same numbers as
  ``getrusage(RUSAGE_CHILDREN)`` deltas, without their trap: the children's maximum is
  over every child ever reaped, so a delta after a bigger child reads 0).
- But on Linux a child's ``ru_maxrss`` starts at the *forking* process's high-water
  RSS (exec records the old address space's peak), so a command forked from this
  bench process -- 20 to 200 MB after generating repos -- would inherit it. So every
  command is started by a small probe (``python -S -I -c PROBE``): the probe forks,
  execs the command and reaps it. Its floor is the probe's own few MB (about 6.5 MB),
  below any Python program (``python -c pass`` is about 10 MB) but above tiny tools
  such as make or true, whose figures are therefore floors.
- Before reaping, the probe holds the exited command as a zombie (``waitid(WNOWAIT)``)
  and reads its ``/proc/<pid>/stat``, where the kernel keeps the process's *own* CPU
  time apart from its reaped children's: that is how the runner's CPU is told apart
  from the CPU of the steps it ran.
- Wall time is taken by the probe from just before ``fork`` to the exit, so it is the
  command's whole life (exec and interpreter start-up included), without the probe's.

Nothing here knows orch's output formats; it only runs commands and keeps numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


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


# Runs in a fresh `python -S -I`: argv = result file, timeout (0 = none), command...
PROBE = r"""
import os, signal, sys, time
out, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.setpgid(0, 0)
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, ("cannot start %s: %s\n" % (argv[0], exc)).encode())
    os._exit(127)
timed_out = []
def kill(*_):
    timed_out.append(1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
if timeout:
    signal.signal(signal.SIGALRM, kill)
    signal.setitimer(signal.ITIMER_REAL, timeout)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
wall = time.perf_counter() - t0
signal.setitimer(signal.ITIMER_REAL, 0)
split = None
try:
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    split = [(int(f[11]) + int(f[12])) / tck, (int(f[13]) + int(f[14])) / tck]
except (OSError, ValueError, IndexError):
    pass
_, status, ru = os.wait4(pid, 0)
import json  # only now: the fewer pages the probe has at fork, the lower the RSS floor
with open(out, "w") as fh:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "wall": wall,
               "maxrss": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime,
               "split": split, "timed_out": bool(timed_out)}, fh)
"""


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Sample:
    """Run argv to completion (through the probe) and measure it as a whole process."""
    argv = [str(a) for a in argv]
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory(prefix="orch-bench-probe-") as tmp,
    ):
        report = Path(tmp) / "probe.json"
        probe = [sys.executable, "-S", "-I", "-c", PROBE, str(report), str(timeout or 0)]
        try:
            subprocess.run(
                [*probe, *argv],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # The probe kills its child on timeout; this only guards a stuck probe.
                timeout=timeout + 60 if timeout else None,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Sample(argv, 127, 0.0, 0, 0.0, None, None, "", f"probe failed: {exc}")
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError):
            return Sample(argv, 127, 0.0, 0, 0.0, None, None, stdout, stderr or "probe died")
    split = data["split"]
    return Sample(
        argv=argv,
        returncode=data["rc"],
        wall_s=data["wall"],
        maxrss_kb=data["maxrss"],
        cpu_total_s=data["cpu"],
        cpu_self_s=split[0] if split else None,
        cpu_children_s=split[1] if split else None,
        stdout=stdout,
        stderr=stderr,
        timed_out=data["timed_out"],
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
    tasks: int | None = None  # tasks the command runs: shown as the runner's CPU per task

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def cpu_ms_per_task(self) -> float | None:
        """The runner's own CPU (utime+stime, children excluded; median over the reps)
        per task, in ms: what caps how many tasks a second one runner can start whatever
        the core count (target ``CPU_MS_PER_TASK``)."""
        if self.cpu_self_s is None or not self.tasks:
            return None
        return self.cpu_self_s * 1000 / self.tasks

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
        data["cpu_ms_per_task"] = self.cpu_ms_per_task
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


CPU_MS_PER_TASK = 0.3  # the runner's own CPU per task (the speed issue's target)


class Fresh:
    """A prepare() hook: each rep gets its own copy of a template repo (the last is kept)."""

    def __init__(self, template: Path, work: Path, tag: str) -> None:
        self.template, self.work, self.tag = template, work, tag
        self.last: Path | None = None

    def __call__(self, i: int) -> Path:
        if self.last is not None:
            shutil.rmtree(self.last, ignore_errors=True)
        self.last = self.work / f"{self.tag}-rep{i}"
        shutil.copytree(self.template, self.last, symlinks=True)
        return self.last


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


def fmt_cpu(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.2f} ms"


def target_text(r: Result) -> str:
    parts = []
    if r.target is not None:
        parts.append("<= " + fmt_time(r.target, r.unit))
    if r.rss_target_mb is not None:
        parts.append(f"RSS <= {r.rss_target_mb:.0f} MB")
    if r.cpu_ms_per_task is not None:
        parts.append(f"CPU/task <= {CPU_MS_PER_TASK:g} ms")
    return ", ".join(parts)


def print_table(results: list[Result], file=None) -> None:
    """A plain fixed-width table: figures next to their targets, errors underneath."""
    file = file or sys.stdout
    head = (
        "benchmark",
        "tool",
        "N",
        "shape",
        "median",
        "min",
        "reps",
        "peak RSS",
        "CPU/task",
        "target",
        "",
    )
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
                fmt_cpu(r.cpu_ms_per_task),
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
