"""Watch benchmark: time from saving an input to its step starting, and idle cost.

    python bench/watch.py [--edits 10] [--files 10000] [--idle 10]

The generated repo holds ``--files`` small files under ``data/`` and one workflow::

    stamp   inputs: inputs/watched.txt   run: date +%s%N > out/stamp.txt; cat inputs/watched.txt >> out/stamp.txt
    scan    inputs: data/**/*.txt        run: find data -type f | wc -l > out/scan.txt

``orch watch`` is started once (in its own session, so it can be stopped with its
children). One unmeasured edit warms it up; then each measured edit rewrites
``inputs/watched.txt`` with a fresh marker, and the latency is the first line of
``out/stamp.txt`` (the step's own ``date``, CLOCK_REALTIME) minus the wall clock just
before the write. The next edit waits until the marker is in the stamp file (the step
finished) and ``--settle`` seconds more, so edits never land mid-run. ``date`` costs a
fork+exec (about 1 ms), which is inside the figure.

Idle cost: after the edits and a short settle, the watch process (and any children it
has then) is sampled with psutil for ``--idle`` seconds: CPU % = CPU seconds used /
wall seconds x 100, and the largest RSS seen. Peak RSS over the whole session is
sampled every 50 ms by a thread (not wait4: see harness.py on inherited ru_maxrss).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import init_orch_repo, write_filler  # noqa: E402
from harness import (  # noqa: E402
    default_report_path,
    environment,
    git,
    orch_command,
    wait_until,
    write_report,
)

WORKFLOW = """\
apiVersion: orch/v1
kind: Workflow
metadata:
  name: watch-bench
spec:
  steps:
    - name: stamp
      run: "date +%s%N > out/stamp.txt; cat inputs/watched.txt >> out/stamp.txt"
      inputs: [inputs/watched.txt]
      outputs: [out/stamp.txt]
"""
SCAN_STEP = """\
    - name: scan
      run: "find data -type f | wc -l > out/scan.txt"
      inputs: ["data/**/*.txt"]
      outputs: [out/scan.txt]
"""


def generate(root: Path, files: int, scan: bool) -> None:
    init_orch_repo(root)
    (root / "inputs").mkdir()
    (root / "inputs" / "watched.txt").write_text("initial\n")
    (root / "out").mkdir()
    (root / "out" / ".gitignore").write_text("*\n!.gitignore\n")
    write_filler(root, files)
    (root / "workflow.yaml").write_text(WORKFLOW + (SCAN_STEP if scan and files else ""))
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "bench: watch", cwd=root)


def read_stamp(path: Path, marker: str) -> int | None:
    """The step's start time in ns, once the step has finished with this marker."""
    try:
        text = path.read_text()
    except OSError:
        return None
    if marker not in text:
        return None
    first = text.split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None


def edit_once(root: Path, marker: str, deadline: float) -> float | None:
    """Save the input with a new marker; seconds until the step started, or None."""
    stamp = root / "out" / "stamp.txt"
    saved = time.time_ns()
    (root / "inputs" / "watched.txt").write_text(f"{marker}\n")
    started: list[int] = []

    def done() -> bool:
        value = read_stamp(stamp, marker)
        if value is not None:
            started.append(value)
        return value is not None

    if not wait_until(done, deadline):
        return None
    return (started[0] - saved) / 1e9


def sample_idle(pid: int, seconds: float) -> dict[str, Any]:
    """CPU % and RSS of the watcher (and its children) over `seconds` of quiet."""
    import psutil

    proc = psutil.Process(pid)

    def family() -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [proc, *proc.children(recursive=True)]
        return [proc]

    def cpu() -> float:
        total = 0.0
        for p in family():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    rss_self, rss_all = 0, 0
    start_cpu, start = cpu(), time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        with contextlib.suppress(psutil.Error):
            rss_self = max(rss_self, proc.memory_info().rss)
            rss_all = max(rss_all, sum(p.memory_info().rss for p in family()))
        time.sleep(0.25)
    used, wall = cpu() - start_cpu, time.monotonic() - start
    return {
        "idle_seconds": wall,
        "idle_cpu_percent": used / wall * 100,
        "idle_rss_mb": rss_self / 2**20,
        "idle_rss_with_children_mb": rss_all / 2**20,
    }


def stop(proc: subprocess.Popen, grace: float = 10.0) -> int | None:
    """SIGINT, then SIGTERM, then SIGKILL to the watcher's own process group; its exit code."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    return proc.returncode


class PeakRss(threading.Thread):
    """Samples the watcher's RSS (with its children) every 50 ms for the whole session.

    wait4's ru_maxrss would be exact, but on Linux a child's ru_maxrss starts at the
    forking process's own high-water mark (see harness.py), so it is sampled instead.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_self = 0
        self.peak_all = 0
        self.halt = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.halt.wait(0.05):
            with contextlib.suppress(psutil.Error):
                own = proc.memory_info().rss
                kids = 0
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        kids += child.memory_info().rss
                self.peak_self = max(self.peak_self, own)
                self.peak_all = max(self.peak_all, own + kids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--files", type=int, default=10000, help="filler files in the repo")
    parser.add_argument("--no-scan", action="store_true", help="no step reads the filler files")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle sampling")
    parser.add_argument("--settle", type=float, default=0.5, help="pause after each run")
    parser.add_argument("--deadline", type=float, default=30.0, help="per edit, seconds")
    parser.add_argument("--orch", help="command that runs orch (default: python -m runner)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    orch = orch_command(args.orch)
    work = Path(tempfile.mkdtemp(prefix="orch-watch-"))
    root = work / "repo"
    report: dict[str, Any] = {}
    try:
        generate(root, args.files, scan=not args.no_scan)
        report = session(orch, root, work, args)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    payload = {
        "suite": "watch",
        "environment": environment(orch),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "result": report,
    }
    write_report(args.out or default_report_path("watch"), payload)
    return 0


def session(orch: list[str], root: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start the watcher, make the edits, sample it idle, stop it."""
    log = work / "watch.log"
    report: dict[str, Any] = {"files": args.files}
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            [*orch, "-C", str(root), "watch"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sampler = PeakRss(proc.pid)
    sampler.start()
    try:
        stamp = root / "out" / "stamp.txt"
        # Does watch apply on start? Give it a while, but an edit will trigger it anyway.
        wait_until(
            lambda: proc.poll() is not None or read_stamp(stamp, "initial") is not None,
            20.0,
            0.01,
        )
        if read_stamp(stamp, "initial") is not None:
            report["startup_to_first_run_s"] = time.monotonic() - started
        if proc.poll() is not None:
            report["error"] = f"watch exited with {proc.returncode}: {_tail(log)}"
            return report
        latencies: list[float] = []
        for i in range(args.edits + 1):  # edit 0 is the warm-up
            latency = edit_once(root, f"edit-{i}-{uuid.uuid4().hex}", args.deadline)
            if latency is None:
                alive = "running" if proc.poll() is None else f"exited {proc.returncode}"
                report["error"] = (
                    f"edit {i}: step did not run within {args.deadline:.0f}s "
                    f"(watch {alive}): {_tail(log)}"
                )
                break
            if i:
                latencies.append(latency)
            time.sleep(args.settle)
        report["latencies_s"] = latencies
        if latencies:
            report["latency_median_s"] = statistics.median(latencies)
            report["latency_max_s"] = max(latencies)
        if proc.poll() is None:
            time.sleep(2.0)
            report.update(sample_idle(proc.pid, args.idle))
    finally:
        sampler.halt.set()
        sampler.join()
        report["exit_code_on_sigint"] = stop(proc)
        report["peak_rss_mb"] = sampler.peak_self / 2**20 or None
        report["peak_rss_with_children_mb"] = sampler.peak_all / 2**20 or None
    return report


def _tail(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


def print_report(r: dict[str, Any]) -> None:
    def ms(key: str) -> str:
        return f"{r[key] * 1000:.1f} ms" if r.get(key) is not None else "n/a"

    def mb(key: str) -> str:
        return f"{r[key]:.0f} MB" if r.get(key) is not None else "n/a"

    rows = [
        ("repo files (filler)", str(r.get("files", "n/a"))),
        ("save -> step start, median", ms("latency_median_s")),
        ("save -> step start, max", ms("latency_max_s")),
        ("edits measured", str(len(r.get("latencies_s", [])))),
        ("watch start -> first run", ms("startup_to_first_run_s")),
        (
            "idle CPU",
            f"{r['idle_cpu_percent']:.2f} %" if r.get("idle_cpu_percent") is not None else "n/a",
        ),
        ("idle RSS (watch process)", mb("idle_rss_mb")),
        ("idle RSS (with children)", mb("idle_rss_with_children_mb")),
        ("peak RSS (sampled, watch process)", mb("peak_rss_mb")),
        ("peak RSS (sampled, with children)", mb("peak_rss_with_children_mb")),
        ("exit code after SIGINT", str(r.get("exit_code_on_sigint"))),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    if r.get("error"):
        print(f"\nn/a: {r['error']}")


if __name__ == "__main__":
    sys.exit(main())
