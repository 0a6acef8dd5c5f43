"""The runner's own CPU per task, side by side for two or more source trees (issue #17).

    python bench/cpu_ab.py TREE [TREE...] [-n 1000] [--reps 3] [--no-cache] [--out FILE]

TREE is a folder holding a ``runner`` package (a checkout, or ``git archive REV`` unpacked):
each run is ``python -m runner apply -j 2`` with ``PYTHONPATH=TREE``, so two revisions are
measured on the same machine at the same time. One generated repository (gen.py,
``layered``, ``--files``), a fresh copy per run; the reps interleave the trees (A B A B
...), so a change in the machine's load falls on both. Per run, through the harness's
probe: the runner's own CPU (utime + stime of the runner process, the steps excluded)
per task and the wall time per step; medians printed per tree.

Reading the figures: the machine's other work moves them by +-20 %; compare trees within
one invocation. ``--no-cache`` leaves the result cache's store out (it costs CPU per
success of its own).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import generate  # noqa: E402
from harness import Fresh, run, write_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="+", type=Path, help="folders holding a runner package")
    ap.add_argument("-n", type=int, default=1000, help="steps (default 1000)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-cache", action="store_true", help="apply --no-cache")
    ap.add_argument("--out", type=Path, help="JSON report (default: none)")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="orch-cpu-ab-"))
    try:
        return _compare(a, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _compare(a: argparse.Namespace, work: Path) -> int:
    template = generate(work / "template", a.n, "layered", files=True).root
    command = [sys.executable, "-m", "runner", "apply", "-j", "2"]
    command += ["--no-cache"] if a.no_cache else []
    samples: dict[str, list[tuple[float, float]]] = {str(t): [] for t in a.trees}
    for rep in range(a.reps):
        for i, tree in enumerate(a.trees):
            repo = Fresh(template, work, f"t{i}")(rep)
            env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # timings with .pyc files, as users
            s = run(command, cwd=repo, env=env, timeout=900)
            if not s.ok or s.cpu_self_s is None:
                print(f"{tree}: {s.error()}", file=sys.stderr)
                return 1
            cpu, wall = s.cpu_self_s * 1000 / a.n, s.wall_s * 1000 / a.n
            samples[str(tree)].append((cpu, wall))
            print(f"{tree} rep {rep + 1}: {cpu:.2f} ms CPU/task, {wall:.2f} ms wall/step")
    for tree, got in samples.items():
        cpu = statistics.median(c for c, _ in got)
        wall = statistics.median(w for _, w in got)
        print(f"{tree}: median {cpu:.2f} ms CPU/task, {wall:.2f} ms wall/step")
    if a.out:
        write_report(a.out, {"n": a.n, "no_cache": a.no_cache, "samples": samples})
    return 0


if __name__ == "__main__":
    sys.exit(main())
