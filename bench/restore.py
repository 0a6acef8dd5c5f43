"""Result-cache benchmark: restoring N cached small outputs against re-running their steps.

    python bench/restore.py [-n 1000] [--reps 3] [--orch CMD] [--out FILE] [--keep]

One generated repository of N file steps (gen.py, ``fan`` shape, ``--files``: step i
runs ``cat inputs/i.txt > out/i.txt``), applied once, untimed, so the cache holds every
step's result. Then, each rep on that repository with every ``out/*.txt`` deleted first
(untimed), so every step has a reason to run (``output missing``):

    re-run, no cache      orch apply -j 2 --no-cache: every step runs (the floor to beat)
    re-run, cache empty   orch cache clear first: every step runs and its result is stored
                          (what a cold apply pays with the cache on)
    restore               the cache full: every step is restored, none runs

each as ms per step, whole process (start-up and plan included, as run.py measures).
The restore figure is checked, not trusted: ``apply --json`` must count N ``restored``
steps, else the figure is n/a with what it counted. A last figure, in this process:

    store restore         ResultStore.restore of N one-file entries, one after another,
                          each output deleted first: the store's own cost per step,
                          hashing and verifying included, without planning or start-up

Target: restore <= 1 ms per step (issue #14), for the whole apply and for the store.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen import generate  # noqa: E402
from harness import (  # noqa: E402
    Result,
    Sample,
    default_report_path,
    environment,
    measure,
    orch_command,
    print_table,
    run,
    write_report,
)

RESTORE_MS_PER_STEP = 1.0


def _wipe_outputs(root: Path) -> None:
    for f in (root / "out").glob("*.txt"):
        f.unlink()


def _restored(n: int) -> Callable[[Sample], str | None]:
    """A ``check`` for ``measure``: the apply restored all ``n`` steps and ran none."""

    def check(sample: Sample) -> str | None:
        try:
            counts = json.loads(sample.stdout)["counts"]
        except (ValueError, KeyError, TypeError):
            return f"apply --json printed no counts: {sample.stdout[:200]!r}"
        if counts.get("restored", 0) != n:
            return f"restored {counts.get('restored', 0)} of {n} steps (counts: {counts})"
        return None

    return check


def _ran(n: int) -> Callable[[Sample], str | None]:
    def check(sample: Sample) -> str | None:
        try:
            counts = json.loads(sample.stdout)["counts"]
        except (ValueError, KeyError, TypeError):
            return f"apply --json printed no counts: {sample.stdout[:200]!r}"
        if counts.get("succeeded", 0) != n:
            return f"ran {counts.get('succeeded', 0)} of {n} steps (counts: {counts})"
        return None

    return check


def whole_apply(orch: list[str], root: Path, n: int, reps: int) -> list[Result]:
    """The three whole-process figures on the generated repository ``root``."""
    apply = [*orch, "-C", str(root), "apply", "-j", "2", "--json"]
    cold = run(apply, timeout=1800)
    if not cold.ok:
        return [Result(name="cold apply (fills the cache)", n=n, error=cold.error())]
    results = []
    has_flag = "--no-cache" in run([*orch, "apply", "--help"]).stdout

    # prepare hooks return None: each command runs from this process's folder (the
    # checkout whose runner ``python -m runner`` imports), naming the repository by -C

    def wiped(_i: int) -> None:
        _wipe_outputs(root)

    def emptied(_i: int) -> None:
        _wipe_outputs(root)
        run([*orch, "-C", str(root), "cache", "clear"])

    no_cache = Result(name="re-run, no cache", n=n, unit="ms/step")
    if has_flag:
        measure(no_cache, [*apply, "--no-cache"], reps=reps, prepare=wiped, check=_ran(n), per=n)
    else:
        no_cache.error = "orch apply has no --no-cache here"
    results.append(no_cache)
    results.append(
        measure(
            Result(name="re-run, cache empty (stores)", n=n, unit="ms/step"),
            apply,
            reps=reps,
            prepare=emptied,
            check=_ran(n),
            per=n,
        )
    )
    results.append(
        measure(
            Result(name="restore", n=n, unit="ms/step", target=RESTORE_MS_PER_STEP),
            apply,
            reps=reps,
            prepare=wiped,
            check=_restored(n),
            per=n,
        )
    )
    return results


def store_restore(work: Path, n: int, reps: int) -> Result:
    """``ResultStore.restore`` of ``n`` one-file entries, in this process (ms per step)."""
    from runner.store.results import open_store, result_key

    root = work / "store"
    (root / "out").mkdir(parents=True)
    store = open_store(root, None, warn=lambda _line: None)
    keys = []
    for i in range(n):
        rel = f"out/{i:05d}.txt"
        (root / rel).write_text(f"output of step {i}\n")
        key = result_key(f"{i:032x}")
        if not store.put(key, root=root, files=[rel], values={"i": str(i)}, meta={}):
            return Result(name="store restore", n=n, error=f"put refused {rel}")
        keys.append(key)
    result = Result(name="store restore (in process)", n=n, unit="ms/step")
    result.target = RESTORE_MS_PER_STEP
    for _ in range(reps):
        _wipe_outputs(root)
        t0 = time.perf_counter()
        for key in keys:
            if store.restore(key, root) is None:
                result.error = f"entry {key} was a miss"
                return result
        result.samples.append((time.perf_counter() - t0) * 1000 / n)
    result.note = f"spread {statistics.pstdev(result.samples):.3f} ms/step over {reps} reps"
    close = getattr(store, "close", None)  # its staging folder (an older orch has no close)
    if close is not None:
        close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="steps (cached outputs)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--orch", help="command that runs orch (default: python -m runner)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    orch = orch_command(args.orch)
    work = Path(tempfile.mkdtemp(prefix="orch-restore-"))
    results: list[Result] = []
    try:
        gen = generate(work / "repo", args.n, "fan", files=True, shared=0)
        results += whole_apply(orch, gen.root, args.n, args.reps)
        results.append(store_restore(work, args.n, args.reps))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(results)
    payload = {
        "suite": "restore",
        "environment": environment(orch),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": [r.to_json() for r in results],
    }
    write_report(args.out or default_report_path("restore"), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
