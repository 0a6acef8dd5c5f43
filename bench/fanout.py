"""Fan-out benchmark: a ``foreach`` over N files against N plain steps doing the same work.

    python bench/fanout.py [-n 5000] [--reps 3] [--orch CMD] [--out FILE] [--keep]

Two repositories, each N files ``inputs/NNNN.txt`` copied to ``out/NNNN.txt``: one holds
a single ``foreach: "inputs/*.txt"`` step (N instances made at load time) plus a step
that needs them all; the other the same graph written as N + 1 plain steps (gen.py's
``fan`` shape with ``--files``). For each: validate with the manifest just edited (a full
load: the glob walked, the instances made), cold apply once (untimed), then the no-op
plan and apply, and a plan after adding one file (for the plain steps a file nothing reads:
their no-op path holds; for foreach a new instance: a full load and plan, shown for
reference). The foreach figures' target is the plain steps' own figure plus a quarter:
fan-out may cost its glob walk, no more.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import generate, init_orch_repo  # noqa: E402
from harness import (  # noqa: E402
    Result,
    default_report_path,
    environment,
    git,
    measure,
    orch_command,
    print_table,
    run,
    write_report,
)

FOREACH_YAML = """\
apiVersion: orch/v1
kind: Workflow
metadata:
  name: bench-foreach
spec:
  steps:
    - name: copy
      foreach: "inputs/*.txt"
      run: cat {{ item.path }} > out/{{ item.name }}
      inputs: ["{{ item.path }}"]
      outputs: ["out/{{ item.name }}"]
    - name: sink
      needs: [copy]
      run: "true"
"""


def foreach_repo(root: Path, n: int) -> Path:
    init_orch_repo(root)
    (root / "workflow.yaml").write_text(FOREACH_YAML)
    (root / "inputs").mkdir()
    for i in range(n):
        (root / "inputs" / f"{i:05d}.txt").write_text(f"input {i}\n")
    (root / "out").mkdir()
    (root / "out" / ".gitignore").write_text("*\n!.gitignore\n")
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "bench: foreach", cwd=root)
    return root


def bench_repo(
    orch: list[str], label: str, root: Path, reps: int, targets: dict[str, float]
) -> list[Result]:
    results: list[Result] = []
    manifest = root / "workflow.yaml"

    def edited(_i: int) -> Path:
        with manifest.open("a") as f:
            f.write("# edited\n")
        return root

    r = Result(name=f"{label}: validate (edited)", target=targets.get("validate"))
    results.append(measure(r, [*orch, "-C", str(root), "validate"], reps=reps, prepare=edited))
    cold = run([*orch, "-C", str(root), "apply", "-j", "2"], timeout=1800)
    if not cold.ok:
        results.append(Result(name=f"{label}: cold apply", error=cold.error()))
        return results
    for verb in ("plan", "apply"):
        r = Result(name=f"{label}: no-op {verb}", target=targets.get(verb))
        measure(r, [*orch, "-C", str(root), verb], reps=reps, warmup=True)
        results.append(r)
    extra = root / "inputs" / "zz-added.txt"

    def added(i: int) -> Path:
        extra.with_name(f"zz-added-{i}.txt").write_text("added\n")
        return root

    r = Result(name=f"{label}: plan after adding 1 file")
    results.append(measure(r, [*orch, "-C", str(root), "plan"], reps=reps, prepare=added))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="files (instances)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--orch", help="command that runs orch (default: python -m runner)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    orch = orch_command(args.orch)
    work = Path(tempfile.mkdtemp(prefix="orch-fanout-"))
    results: list[Result] = []
    try:
        plain = generate(work / "plain", args.n + 1, "fan", files=True, shared=0)
        base = bench_repo(orch, f"{args.n} plain steps", plain.root, args.reps, {})
        results += base
        targets = {
            key: r.median * 1.25
            for key, r in zip(("validate", "plan", "apply"), base[:3], strict=True)
            if r.median is not None
        }
        fan = foreach_repo(work / "foreach", args.n)
        results += bench_repo(orch, f"foreach over {args.n} files", fan, args.reps, targets)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(results)
    payload = {
        "suite": "fanout",
        "environment": environment(orch),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": [r.to_json() for r in results],
    }
    write_report(args.out or default_report_path("fanout"), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
