"""Scheduler benchmark: 200 workflows x 5 steps under one ResourceQuota of concurrency 8.

    python bench/sched.py [--workflows 200] [--steps 5] [--concurrency 8] [-j 16]

One ``orch apply -j 16`` runs every workflow; the quota, not -j, must be what holds
concurrency at 8. Each workflow is a diamond (s1 -> s2..s4 -> s5), so at any moment far
more than 8 tasks are ready. Every step runs::

    date +%s%N >> .stamps/<wf>.<step>; sleep 0.01; date +%s%N >> .stamps/<wf>.<step>

How the figures are obtained:

- Overlap, ground truth: the stamps the steps write themselves give each task's
  [start, end]; a sweep over them gives the most tasks ever running at once.
- Overlap, orch's view: ``orch history --json`` then ``orch status --json`` (whichever
  works) is searched for the innermost objects that carry a start and an end time
  (keys such as ``started``/``ended`` or ``started_at``/``ended_at``, epoch numbers or
  ISO 8601; or an end and a ``duration``); same sweep.
- Runner RSS: ``ru_maxrss`` from ``wait4`` on the runner (the max over it and the tasks
  it reaped; the tasks are sh/date/sleep, a few MB, so this is the runner's peak).
- Scheduler CPU per task, two ways:
  (a) the runner's own CPU (utime+stime of the runner process itself, read from
      /proc/<pid>/stat after it exited but before it was reaped; excludes children)
      divided by the number of tasks;
  (b) the whole tree's CPU (``wait4`` rusage: runner plus every reaped descendant)
      minus N x the CPU of one task measured alone (the same command run by ``sh -c``
      50 times outside orch), divided by N. (b) also charges the runner for helper
      processes it starts (git, for example); (a) has 10 ms clock-tick resolution.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import init_orch_repo  # noqa: E402
from harness import (  # noqa: E402
    default_report_path,
    environment,
    git,
    orch_command,
    run,
    write_report,
)

START_KEYS = ("started_at", "start_time", "started", "start", "startedAt", "begin", "began_at")
END_KEYS = (
    "ended_at",
    "finished_at",
    "end_time",
    "ended",
    "finished",
    "end",
    "endedAt",
    "finishedAt",
    "stopped_at",
)


def step_command(wf: str, step: str, sleep: float) -> str:
    stamp = f".stamps/{wf}.{step}"
    return f"date +%s%N >> {stamp}; sleep {sleep}; date +%s%N >> {stamp}"


def step_needs(steps: int) -> list[list[str]]:
    """A diamond: the first step, then steps-2 side by side, then one that needs them all."""
    names = [f"s{i + 1}" for i in range(steps)]
    if steps <= 2:
        return [[] if i == 0 else [names[0]] for i in range(steps)]
    middle = names[1:-1]
    return [[]] + [[names[0]] for _ in middle] + [middle]


def generate(root: Path, workflows: int, steps: int, concurrency: int, sleep: float) -> int:
    """Write the repo; return the number of tasks one full apply must run."""
    init_orch_repo(root)
    (root / ".stamps").mkdir()
    docs = [
        "apiVersion: orch/v1\nkind: ResourceQuota\nmetadata:\n  name: bench\nspec:\n"
        f"  limits: {{concurrency: {concurrency}}}\n"
        '  selector: {workflows: ["*"]}\n'
    ]
    needs = step_needs(steps)
    for w in range(workflows):
        wf = f"wf-{w:03d}"
        lines = [
            "apiVersion: orch/v1",
            "kind: Workflow",
            f"metadata:\n  name: {wf}",
            "spec:\n  quota: bench\n  steps:",
        ]
        for i, deps in enumerate(needs):
            step = f"s{i + 1}"
            lines.append(f"    - name: {step}")
            if deps:
                lines.append(f"      needs: [{', '.join(deps)}]")
            lines.append(f"      run: {json.dumps(step_command(wf, step, sleep))}")
        docs.append("\n".join(lines) + "\n")
    (root / "workflows.yaml").write_text("---\n".join(docs))
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "bench: scheduler", cwd=root)
    return workflows * steps


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant; one ending as another starts do not overlap."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, delta in events:  # (t, -1) sorts before (t, +1): ends first
        current += delta
        best = max(best, current)
    return best


def stamp_intervals(stamps: Path) -> tuple[list[tuple[float, float]], int]:
    """(complete intervals, count of stamp files missing an end) from the steps' own stamps."""
    intervals, broken = [], 0
    for path in stamps.iterdir():
        values = [int(x) for x in path.read_text().split()]
        if len(values) != 2:
            broken += 1
            continue
        intervals.append((values[0] / 1e9, values[1] / 1e9))
    return intervals, broken


def _time_value(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def json_intervals(data: Any) -> list[tuple[float, float]]:
    """Innermost objects with a start and an end time (tasks, not the runs that hold them)."""
    found: list[tuple[float, float]] = []

    def interval(obj: dict) -> tuple[float, float] | None:
        start = next((_time_value(obj[k]) for k in START_KEYS if k in obj), None)
        end = next((_time_value(obj[k]) for k in END_KEYS if k in obj), None)
        duration = obj.get("duration")
        if start is None and end is not None and isinstance(duration, int | float):
            start = end - duration
        return (start, end) if start is not None and end is not None else None

    def walk(node: Any) -> bool:
        """Collect intervals below node; True if any was found there."""
        below = False
        if isinstance(node, dict):
            for value in node.values():
                below = walk(value) or below
            if not below and (span := interval(node)):
                found.append(span)
                return True
        elif isinstance(node, list):
            for value in node:
                below = walk(value) or below
        return below

    walk(data)
    return found


def orch_view(orch: list[str], root: Path) -> dict:
    """Overlap as orch recorded it, from the first listing that answers in JSON."""
    tried = []
    for verb in ("history", "status"):
        sample = run([*orch, "-C", str(root), verb, "--json"], timeout=120)
        if not sample.ok:
            tried.append(f"{verb} --json: {sample.error()}")
            continue
        try:
            data = json.loads(sample.stdout)
        except ValueError as exc:
            tried.append(f"{verb} --json: not JSON ({exc})")
            continue
        spans = json_intervals(data)
        if not spans:
            tried.append(f"{verb} --json: no start/end times found")
            continue
        return {"source": f"{verb} --json", "intervals": len(spans), "max": max_overlap(spans)}
    return {"source": None, "error": "; ".join(tried)}


def task_baseline(work: Path, sleep: float, reps: int = 50) -> dict:
    """CPU and wall of one task run alone by ``sh -c``: what orch cannot do faster."""
    (work / ".stamps").mkdir(parents=True, exist_ok=True)
    cpu, wall = [], []
    for i in range(reps):
        sample = run(["sh", "-c", step_command("base", f"s{i}", sleep)], cwd=work)
        cpu.append(sample.cpu_total_s)
        wall.append(sample.wall_s)
    return {"cpu_s": statistics.mean(cpu), "wall_s": statistics.median(wall)}


def busiest(intervals: list[tuple[float, float]]) -> float:
    """Wall span from the first task start to the last task end."""
    if not intervals:
        return 0.0
    return max(e for _, e in intervals) - min(s for s, _ in intervals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("-j", "--jobs", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--orch", help="command that runs orch (default: python -m runner)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    orch = orch_command(args.orch)
    work = Path(tempfile.mkdtemp(prefix="orch-sched-"))
    root = work / "repo"
    report: dict[str, Any] = {}
    try:
        tasks = generate(root, args.workflows, args.steps, args.concurrency, args.sleep)
        base = task_baseline(work / "baseline", args.sleep)
        print(
            f"{tasks} tasks; one task alone: {base['wall_s'] * 1000:.1f} ms wall", file=sys.stderr
        )
        sample = run([*orch, "-C", str(root), "apply", "-j", str(args.jobs)], timeout=args.timeout)
        report.update({"tasks": tasks, "baseline_task": base})
        if not sample.ok:
            report["error"] = f"apply: {sample.error()}"
        intervals, broken = stamp_intervals(root / ".stamps")
        report.update(
            {
                "apply_wall_s": sample.wall_s,
                "tasks_completed": len(intervals),
                "tasks_unfinished": broken,
                "ideal_wall_s": tasks * base["wall_s"] / args.concurrency,
                "runner_peak_rss_mb": sample.maxrss_kb / 1024,
                "tree_cpu_s": sample.cpu_total_s,
                "runner_own_cpu_s": sample.cpu_self_s,
                "max_overlap_stamps": max_overlap(intervals) if intervals else None,
                "orch_view": orch_view(orch, root) if sample.ok else None,
            }
        )
        if intervals:
            if sample.cpu_self_s is not None:
                report["sched_cpu_per_task_ms_own"] = sample.cpu_self_s * 1000 / len(intervals)
            report["sched_cpu_per_task_ms_tree_minus_tasks"] = (
                (sample.cpu_total_s - len(intervals) * base["cpu_s"]) * 1000 / len(intervals)
            )
            report["task_span_s"] = busiest(intervals)
        print_report(report, args.concurrency)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    payload = {
        "suite": "sched",
        "environment": environment(orch),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "result": report,
    }
    write_report(args.out or default_report_path("sched"), payload)
    return 0


def print_report(r: dict, limit: int) -> None:
    def ms(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f} ms"

    overlap = r.get("max_overlap_stamps")
    verdict = "n/a" if overlap is None else ("ok" if overlap <= limit else "QUOTA VIOLATED")
    rows = [
        ("tasks completed / planned", f"{r['tasks_completed']} / {r['tasks']}"),
        ("apply wall time", f"{r['apply_wall_s']:.2f} s"),
        ("ideal wall (tasks x solo / limit)", f"{r['ideal_wall_s']:.2f} s"),
        ("max concurrent (step stamps)", f"{overlap} (limit {limit}): {verdict}"),
        ("runner peak RSS", f"{r['runner_peak_rss_mb']:.0f} MB"),
        ("sched CPU/task, runner's own", ms(r.get("sched_cpu_per_task_ms_own"))),
        ("sched CPU/task, tree - tasks", ms(r.get("sched_cpu_per_task_ms_tree_minus_tasks"))),
    ]
    view = r.get("orch_view")
    if view:
        text = (
            f"{view['max']} from {view['intervals']} intervals ({view['source']})"
            if view.get("source")
            else f"n/a ({view['error']})"
        )
        rows.append(("max concurrent (orch's records)", text))
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    if r.get("error"):
        print(f"\nn/a: {r['error']}")


if __name__ == "__main__":
    sys.exit(main())
