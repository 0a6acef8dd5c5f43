"""The main benchmark: whole-process time and peak RSS of orch's everyday commands.

    python bench/run.py [--quick] [--sizes 100,1000,10000] [--out FILE] [--orch CMD]

Every figure is a median over whole processes (interpreter start-up included,
because that is what a user and a git hook pay), measured as in harness.py. Each
figure is printed next to its target; a command orch does not have yet shows
"n/a" with its error and the suite goes on.

Sections (``--sections``, default all):

    version  python -c pass (the floor), orch --version
    load     validate and graph at each size, shapes chain/fan/layered, both with the
             manifest just edited (full load) and unchanged (any manifest cache warm)
    apply    cold apply -j 2 of N trivial steps (fresh copy per rep), then no-op
             apply and plan on the applied repo
    edit     1,000 file steps; edit the one input shared by 100 of them; re-apply
             (and count, from the output files' mtimes, how many steps really ran)
    peers    the same cold/no-op/edit figures for make, snakemake, dvc when installed
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import SHAPES, Generated, generate  # noqa: E402
from harness import (  # noqa: E402
    Fresh,
    Result,
    Sample,
    default_report_path,
    environment,
    fmt_cpu,
    fmt_mb,
    fmt_time,
    git,
    measure,
    orch_command,
    print_table,
    run,
    write_report,
)

# Targets from the project brief (seconds unless named otherwise).
VERSION_S = 0.040
VALIDATE_S = {1000: 0.4, 10000: 2.5}
VALIDATE_RSS_MB = {10000: 150.0}
NOOP_S = {1000: 0.08, 10000: 0.4}
COLD_MS_PER_STEP = {1000: 2.5}
EDIT_S = 0.35
RUNNER_RSS_MB = {1000: 60.0, 10000: 150.0}

SECTIONS = ("version", "load", "apply", "edit", "peers")
PEERS = {
    "make": ["make", "-s", "-j2"],
    "snakemake": ["snakemake", "--cores", "2", "--quiet"],
    "dvc": ["dvc", "repro", "--quiet"],
}


class Bench:
    """Settings and the growing list of results; one method per section."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.orch = orch_command(args.orch)
        self.work = work
        self.results: list[Result] = []
        self.reps = args.reps or (3 if args.quick else 5)
        self.budget = 8.0 if args.quick else 60.0
        self.timeout = args.timeout or (120.0 if args.quick else 900.0)

    # -- helpers ---------------------------------------------------------------

    def reps_for(self, n: int, heavy: bool = False) -> int:
        """Fewer repetitions at 10,000 steps, where one run takes seconds."""
        if n >= 10000:
            return 1 if heavy else min(self.reps, 3)
        return self.reps

    def orch_argv(self, repo: Path, *args: str) -> list[str]:
        return [*self.orch, "-C", str(repo), *args]

    def add(self, result: Result) -> Result:
        self.results.append(result)
        figure = fmt_time(result.median, result.unit) if result.samples else "n/a"
        where = f" N={result.n}" if result.n is not None else ""
        where += f" {result.shape}" if result.shape else ""
        extra = f"  ({result.error})" if result.error else ""
        if result.cpu_ms_per_task is not None:
            extra = f", own CPU {fmt_cpu(result.cpu_ms_per_task)}/task{extra}"
        print(
            f"  {result.tool:9} {result.name}{where}: {figure}, {fmt_mb(result.rss_mb)}{extra}",
            file=sys.stderr,
            flush=True,
        )
        return result

    def guarded(self, label: str, fn: Callable[[], None]) -> None:
        """A crash in one section (say, generation) is reported and the rest still runs."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 -- the suite must keep going
            traceback.print_exc(file=sys.stderr)
            self.add(Result(name=label, tool="bench", error=f"bench crashed: {exc!r}"))

    def fresh(self, template: Path, tag: str) -> Fresh:
        return Fresh(template, self.work, tag)

    # -- sections --------------------------------------------------------------

    def version(self) -> None:
        reps = max(self.reps, 10)
        self.add(
            measure(
                Result(name="startup floor (python -c pass)", tool="python"),
                [sys.executable, "-c", "pass"],
                reps=reps,
                warmup=True,
            )
        )
        self.add(
            measure(
                Result(name="--version", target=VERSION_S),
                [*self.orch, "--version"],
                reps=reps,
                warmup=True,
            )
        )

    def load(self) -> None:
        """validate and graph, each twice: manifests just edited, and unchanged.

        orch may cache parsed manifests keyed by file stat; "edited" appends a YAML
        comment to workflow.yaml before each rep, so it pays for the full load
        (parse, schema, checks, DAG), while "unchanged" shows the cached path.
        """
        for n in self.args.sizes:
            for shape in self.args.shapes:
                gen = generate(self.work / f"load-{shape}-{n}", n, shape, seed=self.args.seed)
                manifest = gen.root / "workflow.yaml"

                def touch(i: int, manifest: Path = manifest) -> None:
                    with manifest.open("a") as fh:
                        fh.write(f"# bench edit {i} {time.time_ns()}\n")

                for verb, args in (("validate", ()), ("graph", (gen.workflow,))):
                    for edited in (False, True):
                        targets = verb == "validate"
                        self.add(
                            measure(
                                Result(
                                    name=f"{verb} ({'edited' if edited else 'unchanged'})",
                                    n=n,
                                    shape=shape,
                                    target=VALIDATE_S.get(n) if targets else None,
                                    rss_target_mb=VALIDATE_RSS_MB.get(n) if targets else None,
                                ),
                                self.orch_argv(gen.root, verb, *args),
                                reps=self.reps_for(n),
                                warmup=not edited,
                                prepare=touch if edited else None,
                                budget_s=self.budget,
                                timeout=self.timeout,
                            )
                        )
                shutil.rmtree(gen.root, ignore_errors=True)

    def apply(self) -> None:
        shape = self.args.apply_shape
        for n in self.args.sizes:
            gen = generate(self.work / f"apply-{n}", n, shape, seed=self.args.seed)
            prepare = self.fresh(gen.root, f"apply-{n}")
            cold = self.add(
                measure(
                    Result(
                        name=f"cold apply -j {self.args.jobs}",
                        n=n,
                        shape=shape,
                        unit="ms/step",
                        target=COLD_MS_PER_STEP.get(n),
                        rss_target_mb=RUNNER_RSS_MB.get(n),
                        tasks=n,
                    ),
                    lambda repo: self.orch_argv(repo, "apply", "-j", str(self.args.jobs)),
                    reps=self.reps_for(n, heavy=True),
                    prepare=prepare,
                    per=n,
                    budget_s=self.budget,
                    timeout=self.timeout,
                )
            )
            applied = prepare.last
            self._noop(n, shape, applied, cold)
            shutil.rmtree(gen.root, ignore_errors=True)
            if applied:
                shutil.rmtree(applied, ignore_errors=True)

    def _noop(self, n: int, shape: str, repo: Path | None, cold: Result, tag: str = "") -> None:
        for verb in ("apply", "plan"):
            result = Result(
                name=f"no-op {verb}{tag}",
                n=n,
                shape=shape,
                target=NOOP_S.get(n),
                rss_target_mb=RUNNER_RSS_MB.get(n) if verb == "apply" else None,
            )
            if repo is None or not cold.samples:
                result.error = "cold apply did not succeed"
                self.add(result)
                continue
            extra = ["-j", str(self.args.jobs)] if verb == "apply" else []
            self.add(
                measure(
                    result,
                    self.orch_argv(repo, verb, *extra),
                    reps=self.reps_for(n),
                    warmup=True,
                    budget_s=self.budget,
                    timeout=self.timeout,
                )
            )

    def edit(self) -> None:
        n, shared = self.args.edit_size, self.args.shared
        gen = generate(
            self.work / "edit", n, "layered", files=True, shared=shared, seed=self.args.seed
        )
        cold = self.add(
            measure(
                Result(
                    name="cold apply (file steps)", n=n, shape="layered", unit="ms/step", tasks=n
                ),
                self.orch_argv(gen.root, "apply", "-j", str(self.args.jobs)),
                reps=1,
                per=n,
                check=lambda s: _outputs_missing(gen),
                timeout=self.timeout,
            )
        )
        repo = gen.root if cold.samples else None
        self._noop(n, "layered", repo, cold, tag=" (file steps)")
        self.add(
            self._edit_rerun(
                Result(
                    name=f"edit 1 input of {shared}, re-apply",
                    n=n,
                    shape="layered",
                    target=EDIT_S,
                    rss_target_mb=RUNNER_RSS_MB.get(n),
                    tasks=shared,
                ),
                gen,
                self.orch_argv(gen.root, "apply", "-j", str(self.args.jobs)),
                ready=bool(cold.samples),
            )
        )
        shutil.rmtree(gen.root, ignore_errors=True)

    def _edit_rerun(self, result: Result, gen: Generated, argv: list[str], ready: bool) -> Result:
        """Append to inputs/shared.txt, re-run, and count the outputs that were rewritten."""
        if not ready:
            result.error = "cold apply did not succeed"
            return result
        shared_file = gen.root / "inputs" / "shared.txt"
        before: dict[str, int] = {}
        counts: list[int] = []
        expected = sum(1 for s in gen.steps if s.reads_shared)

        def prepare(i: int) -> Path:
            with shared_file.open("a") as fh:
                fh.write(f"edit {i} at {time.time_ns()}\n")
            before.clear()
            before.update(_out_mtimes(gen.root))
            return gen.root

        def check(sample: Sample) -> str | None:
            after = _out_mtimes(gen.root)
            counts.append(sum(1 for k, v in after.items() if before.get(k) != v))
            return None

        measure(
            result,
            argv,
            reps=self.reps,
            prepare=prepare,
            check=check,
            budget_s=self.budget,
            timeout=self.timeout,
        )
        if counts:
            result.note = f"steps re-run per edit: {sorted(set(counts))} (expected {expected})"
        return result

    def peers(self) -> None:
        for tool, argv in PEERS.items():
            if shutil.which(argv[0]) is None:
                self.add(Result(name="cold/no-op/edit", tool=tool, error="not installed"))
                continue
            if tool == "dvc" and shutil.which("git") is None:
                continue
            for n in self.args.sizes:
                if tool != "make" and n > self.args.peer_max:
                    continue
                self._peer_size(tool, argv, n)
            self._peer_edit(tool, argv)

    def _peer_repo(self, tool: str, root: Path, n: int, files: bool) -> Generated:
        gen = generate(
            root,
            n,
            self.args.apply_shape,
            files=files,
            shared=self.args.shared,
            seed=self.args.seed,
            tool=tool,
        )
        if tool == "dvc":
            run(["dvc", "init", "-q"], cwd=root)
            git("add", "-A", cwd=root)
            git("commit", "-q", "-m", "dvc init", cwd=root)
        return gen

    def _peer_size(self, tool: str, argv: list[str], n: int) -> None:
        shape = self.args.apply_shape
        gen = self._peer_repo(tool, self.work / f"{tool}-{n}", n, files=False)
        prepare = self.fresh(gen.root, f"{tool}-{n}")
        cold = self.add(
            measure(
                Result(
                    name="cold build -j 2", tool=tool, n=n, shape=shape, unit="ms/step", tasks=n
                ),
                argv,
                reps=self.reps_for(n, heavy=True),
                prepare=prepare,
                per=n,
                budget_s=self.budget,
                timeout=self.timeout,
            )
        )
        built = prepare.last
        noop = Result(name="no-op build", tool=tool, n=n, shape=shape)
        if built is None or not cold.samples:
            noop.error = "cold build did not succeed"
            self.add(noop)
        else:
            self.add(
                measure(
                    noop,
                    argv,
                    cwd=built,
                    reps=self.reps_for(n),
                    warmup=True,
                    budget_s=self.budget,
                    timeout=self.timeout,
                )
            )
            shutil.rmtree(built, ignore_errors=True)
        shutil.rmtree(gen.root, ignore_errors=True)

    def _peer_edit(self, tool: str, argv: list[str]) -> None:
        n = self.args.edit_size
        gen = self._peer_repo(tool, self.work / f"{tool}-edit", n, files=True)
        first = run(argv, cwd=gen.root, timeout=self.timeout)
        ready = first.ok and not _outputs_missing(gen)
        result = Result(
            name=f"edit 1 input of {self.args.shared}, rebuild",
            tool=tool,
            n=n,
            tasks=self.args.shared,
        )
        result.shape = "layered"
        self.add(self._edit_rerun(result, gen, argv, ready))
        shutil.rmtree(gen.root, ignore_errors=True)


def _out_mtimes(root: Path) -> dict[str, int]:
    out = root / "out"
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.txt")}


def _outputs_missing(gen: Generated) -> str | None:
    missing = [s.key for s in gen.steps if not (gen.root / "out" / f"{s.key}.txt").exists()]
    if missing:
        return (
            f"apply exited 0 but {len(missing)} outputs are missing (first: out/{missing[0]}.txt)"
        )
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="orch benchmarks: whole-process medians and peak RSS next to targets."
    )
    parser.add_argument("--quick", action="store_true", help="sizes 100,1000; 3 reps (~1 min)")
    parser.add_argument("--sizes", help="comma-separated step counts (default 100,1000,10000)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="for validate/graph")
    parser.add_argument("--apply-shape", choices=SHAPES, default="layered")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--reps", type=int, help="repetitions (default 5, quick 3)")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--edit-size", type=int, default=1000)
    parser.add_argument("--shared", type=int, default=100, help="steps fed by the edited input")
    parser.add_argument("--peer-max", type=int, default=1000, help="largest N for snakemake/dvc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, help="per command, seconds")
    parser.add_argument("--orch", help="command that runs orch (default: python -m runner)")
    parser.add_argument("--out", type=Path, help="JSON report (default bench/results/...)")
    parser.add_argument("--keep", action="store_true", help="keep the generated repos")
    args = parser.parse_args(argv)
    default_sizes = "100,1000" if args.quick else "100,1000,10000"
    args.sizes = [int(x) for x in (args.sizes or default_sizes).split(",") if x]
    args.shapes = [s for s in args.shapes.split(",") if s]
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = set(args.shapes) - set(SHAPES) | set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown shape/section: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    bench = Bench(args, work)
    started = time.monotonic()
    print(f"orch bench: {' '.join(bench.orch)}; work dir {work}", file=sys.stderr)
    try:
        for section in args.sections:
            print(f"[{section}]", file=sys.stderr, flush=True)
            bench.guarded(section, getattr(bench, section))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    print()
    print_table(bench.results)
    print(f"\n{len(bench.results)} figures in {elapsed:.0f} s")
    payload = {
        "suite": "run",
        "environment": environment(bench.orch),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",) and not callable(v)},
        "elapsed_s": elapsed,
        "results": [r.to_json() for r in bench.results],
    }
    write_report(args.out or default_report_path("bench"), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
