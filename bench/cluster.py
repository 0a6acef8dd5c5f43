"""The Dask executor's cost per task: N trivial steps on a 2-worker LocalCluster vs the
local executor, the same DAG, whole processes.

    python bench/cluster.py [--steps 1000] [--shape layered] [--reps 3] [--out FILE] [--orch CMD]

Rows (each a fresh copy of the generated repository per rep, ``orch apply -j 2``):

    local        the local executor
    dask         ``--dask-address`` of a LocalCluster this script starts before timing
                 (2 worker processes, 1 thread each, loopback), as a standing cluster is used;
                 at -j 2 (as many tasks in flight as worker threads) and at each
                 ``--dask-jobs`` (more in flight than threads: the scheduler queues them and
                 a worker starts the next one without waiting for orch's round trip)
    dask floor   no orch: this script keeps -j tasks in flight on the same cluster, each
                 running ``sh -c true`` in a subprocess; ms per task (Dask's own cost)
    dask-own     ``--executor dask`` with no address: orch starts a LocalCluster of -j
                 workers for the run and closes it (one rep: start-up included)

Figures, as harness.py measures them:

    overhead per task   (dask - local) median wall / N, in ms   target <= 5 ms
    orch CPU per task   the orch process's own CPU (utime+stime from /proc before it is
                        reaped, children excluded) / N, in ms    target <= 0.3 ms

The cluster's scheduler runs in this script's process and its workers beside it: on a
small machine they share the CPUs with orch, as a scheduler on the same host would.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import SHAPES, generate  # noqa: E402
from harness import (  # noqa: E402
    CPU_MS_PER_TASK,
    Fresh,
    Result,
    Sample,
    default_report_path,
    environment,
    measure,
    orch_command,
    print_table,
    write_report,
)

OVERHEAD_MS = 5.0  # the target: within 5 ms of the local executor per task


def start_cluster(workers: int) -> Any:
    """A LocalCluster of ``workers`` processes on loopback, configured as
    docs/distributed.md asks of a scheduler orch uses (a lost task is orch's to retry)."""
    import dask
    import distributed

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # its HTTP server (metrics) on a free loopback port: no warning when 8787 is taken
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            memory_limit=0,
            silence_logs=40,
        )


def all_succeeded(n: int):
    def check(sample: Sample) -> str | None:
        if "succeeded" not in sample.stderr and n:
            return "apply printed no 'succeeded' summary: " + sample.stderr[-200:]
        return None

    return check


def _true(_: int) -> int:
    import subprocess

    return subprocess.run(["sh", "-c", "true"], check=False).returncode


def dask_floor(address: str, n: int, jobs: int) -> float:
    """ms per task of Dask alone keeping ``jobs`` tasks in flight, as orch does."""
    import time

    import distributed

    with distributed.Client(address) as client:  # as_completed wants the default client
        client.submit(_true, -1, pure=False).result()  # warm: the function shipped once
        t0 = time.perf_counter()
        pending = distributed.as_completed(
            [client.submit(_true, i, pure=False) for i in range(min(jobs, n))]
        )
        sent = min(jobs, n)
        for fut in pending:
            fut.result()
            if sent < n:
                pending.add(client.submit(_true, sent, pure=False))
                sent += 1
        return (time.perf_counter() - t0) * 1000 / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", "-n", type=int, default=1000)
    parser.add_argument("--shape", choices=SHAPES, default="layered")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("-j", "--jobs", type=int, default=2, help="-j, and workers")
    parser.add_argument(
        "--dask-jobs", default="4", help="more -j values for the dask rows (comma-separated)"
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--orch", help="command that starts orch (default: this python -m runner)")
    parser.add_argument("--out", type=Path, help="JSON report (default bench/results/...)")
    parser.add_argument("--keep", action="store_true", help="keep the generated repositories")
    args = parser.parse_args(argv)
    orch = orch_command(args.orch)
    n = args.steps
    work = Path(tempfile.mkdtemp(prefix="orch-bench-cluster-"))
    results: list[Result] = []
    cluster = None
    try:
        template = work / "template"
        generate(template, n, args.shape)
        jobs = ["-j", str(args.jobs)]

        def apply(*extra: str):
            return lambda root: [*orch, "-C", str(root), "apply", *jobs, *extra]

        local = measure(
            Result("apply, local executor", n=n, shape=args.shape, unit="ms/step", tasks=n),
            apply(),
            reps=args.reps,
            prepare=Fresh(template, work, "local"),
            check=all_succeeded(n),
            per=n,
            timeout=args.timeout,
        )
        results.append(local)
        cluster = start_cluster(args.jobs)
        address = cluster.scheduler_address
        more = [int(x) for x in args.dask_jobs.split(",") if x.strip()]
        dask_rows: dict[int, Result] = {}
        for j in [args.jobs, *more]:
            dask_rows[j] = measure(
                Result(
                    f"apply -j {j}, dask ({args.jobs}-worker LocalCluster)",
                    n=n,
                    shape=args.shape,
                    unit="ms/step",
                    tasks=n,
                    note="cluster started before timing, reached by --dask-address",
                ),
                lambda root, j=j: [
                    *orch,
                    "-C",
                    str(root),
                    "apply",
                    "-j",
                    str(j),
                    "--dask-address",
                    address,
                ],
                reps=args.reps,
                prepare=Fresh(template, work, f"dask{j}"),
                check=all_succeeded(n),
                per=n,
                timeout=args.timeout,
            )
            results.append(dask_rows[j])
        dask = dask_rows[args.jobs]
        floor = dask_floor(address, n, args.jobs)
        results.append(
            Result(
                f"dask floor, {args.jobs} in flight",
                tool="dask",
                n=n,
                unit="ms/step",
                samples=[floor],
                note="Dask alone: submit, run sh -c true on a worker, result; no orch",
            )
        )
        cluster.close()
        cluster = None
        own = measure(
            Result(
                "apply, dask (orch starts the cluster)",
                n=n,
                shape=args.shape,
                unit="ms/step",
                tasks=n,
                note="--executor dask, no address: cluster start-up and close included",
            ),
            apply("--executor", "dask"),
            reps=1,
            prepare=Fresh(template, work, "own"),
            check=all_succeeded(n),
            per=n,
            timeout=args.timeout,
        )
        results.append(own)
    finally:
        if cluster is not None:
            cluster.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    print_table(results)
    figures: dict[str, Any] = {}
    if local.samples and dask.samples:
        overhead = dask.median - local.median
        figures["overhead_ms_per_task"] = overhead
        verdict = "ok" if overhead <= OVERHEAD_MS else "OVER"
        print(f"\ndask overhead per task: {overhead:.2f} ms (target <= {OVERHEAD_MS:g}) {verdict}")
        for j, r in dask_rows.items():
            if r.samples and j != args.jobs:
                extra = r.median - local.median
                figures[f"overhead_ms_per_task_j{j}"] = extra
                print(f"dask overhead per task at -j {j}: {extra:.2f} ms")
    rows = [("local", local), *((f"dask -j {j}", r) for j, r in dask_rows.items())]
    for label, r in [*rows, ("dask-own", own)]:
        cpu = r.cpu_ms_per_task
        figures[f"orch_cpu_ms_per_task_{label}"] = cpu
        if cpu is not None:
            verdict = "ok" if cpu <= CPU_MS_PER_TASK else "OVER"
            print(
                f"orch CPU per task, {label}: {cpu:.3f} ms"
                f" (target <= {CPU_MS_PER_TASK:g}) {verdict}"
            )
    out = args.out or default_report_path("cluster")
    write_report(
        out,
        {
            "suite": "cluster",
            "environment": environment(orch),
            "settings": vars(args) | {"out": str(out)},
            "figures": figures,
            "results": [r.to_json() for r in results],
        },
    )
    return 0 if all(r.samples for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
