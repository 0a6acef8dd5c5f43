"""``orch system status|metrics|health``: the host, quotas, running tasks, breakers."""

from __future__ import annotations

import argparse
from typing import Any

from runner import api
from runner.cli.common import (
    print_json,
    repo_from,
)
from runner.render import shown


def _system(args: argparse.Namespace, part: str) -> int:
    from runner.units import format_bytes

    data = api.system_status(repo_from(args), cluster=part == "status")
    ok = data["health"]["ok"] and not data["state_error"]
    if args.json:
        print_json(data)
        return 0 if ok or (part != "health" and not data["state_error"]) else 1
    if part in ("status", "health"):
        h = data["host"]
        load = ", ".join(f"{x:.2f}" for x in h.get("load", []))
        print(f"host: {h['cpus']:g} cpus, {format_bytes(h['memory'])} memory, load {load}")
        for c in data["health"]["checks"]:
            print(f"  {'ok ' if c['ok'] else 'BAD'} {shown(c['name'])}: {shown(c['detail'])}")
    if part in ("status", "metrics") and data["state_error"]:
        from runner.errors import StateError

        raise StateError(data["state_error"])  # the same line as every other verb's
    if part in ("status", "metrics"):
        for q in data["quotas"]:
            print(f"quota {shown(q['name'])}: {shown(_quota_use(q)) or 'no limits'}")
        for t in data["running"]:
            where = f" on {shown(t['worker'])}" if t.get("worker") else ""
            print(
                f"running: task {t.get('id')} {shown(t.get('workflow'))}/{shown(t.get('step'))}"
                + where
            )
        if data.get("cluster"):
            _print_cluster(data["cluster"])
        mt = data["metrics"]
        print(
            f"last {mt['window_seconds'] / 3600:g}h: {mt['tasks']} tasks "
            + ", ".join(f"{v} {k}" for k, v in sorted(mt["by_status"].items()))
            + f"; wall {mt['wall_time']:.2f}s, cpu {mt['cpu_time']:.2f}s"
        )
    return 0 if (part != "health" or ok) else 1


def _quota_use(q: dict[str, Any]) -> str:
    """One quota's use as ``--json`` has it, for people: ``cpu 1/2, memory 512MiB/1GiB,
    rate 3/5 per 1h`` (memory in binary units, the rate window as a duration)."""
    from runner.units import format_bytes, format_duration

    parts = []
    for k, v in q["limits"].items():
        used = q["used"].get(k, 0)
        if k == "memory":
            parts.append(f"memory {format_bytes(int(used))}/{format_bytes(int(v))}")
        else:
            parts.append(f"{k} {used:g}/{v:g}")
    rate = q.get("rate")
    if rate:
        parts.append(f"rate {rate['recent']}/{rate['runs']} per {format_duration(rate['per'])}")
    return ", ".join(parts)


def _print_cluster(c: dict[str, Any]) -> None:
    from runner.units import format_bytes

    if c["address"] is None:
        print("dask: no scheduler address; each run starts a local cluster of -j workers")
        return
    if c["error"]:
        print(f"dask: {shown(c['error'])}")
        return
    n = len(c["workers"])
    print(f"dask scheduler {shown(c['address'])}: {n} worker{'' if n == 1 else 's'}")
    for w in c["workers"]:
        res = ", ".join(f"{k}={v:g}" for k, v in sorted(w["resources"].items()))
        mem = format_bytes(w["memory_limit"]) if w["memory_limit"] else "no limit"
        print(
            f"  worker {shown(w['address'])}"
            + (f" ({shown(w['name'])})" if w["name"] and w["name"] != w["address"] else "")
            + f": {w['nthreads']} threads, memory {mem}, resources {shown(res) or 'none'}"
        )


def system_status(args: argparse.Namespace) -> int:
    return _system(args, "status")


def system_metrics(args: argparse.Namespace) -> int:
    return _system(args, "metrics")


def system_health(args: argparse.Namespace) -> int:
    return _system(args, "health")
