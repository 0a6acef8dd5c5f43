"""``orch cache status|gc|clear``: the result cache (docs/cache.md), over ``runner.api``."""

from __future__ import annotations

import argparse

from runner import api
from runner.cli.common import print_json, repo_from
from runner.render import shown
from runner.units import format_bytes


def status(args: argparse.Namespace) -> int:
    data = api.cache_status(repo_from(args))
    if args.json:
        print_json(data)
        return 0
    rate = data["hit_rate"]
    looked = data["hits"] + data["misses"]
    hits = (
        f"{rate:.0%} ({data['hits']} of {looked} lookups restored)"
        if rate is not None
        else "no lookups yet"
    )
    limit = format_bytes(data["max_size"]) if data["max_size"] is not None else "none"
    off = "" if data["enabled"] else "  (off: cache: false in .orch/config.yaml)"
    print(
        f"location:  {shown(data['location'])}{off}\n"
        f"entries:   {data['entries']}\n"
        f"size:      {format_bytes(data['bytes'])}  (max_size: {limit})\n"
        f"hit rate:  {hits}"
    )
    return 0


def gc(args: argparse.Namespace) -> int:
    from runner.cli.common import AUDIT_SKIP

    data = api.cache_gc(repo_from(args), max_size=args.max_size, older_than=args.older_than)
    AUDIT_SKIP[0] = not (data["removed"] or data["freed"])  # nothing changed: no audit row
    if args.json:
        print_json(data)
        return 0
    print(
        f"removed {data['removed']} {_entries(data['removed'])} ({format_bytes(data['freed'])})"
        f" from {shown(data['location'])}; {data['entries']} left "
        f"({format_bytes(data['bytes'])})"
    )
    return 0


def clear(args: argparse.Namespace) -> int:
    from runner.cli.common import AUDIT_SKIP

    data = api.cache_clear(repo_from(args))
    AUDIT_SKIP[0] = not (data["removed"] or data["freed"])  # nothing changed: no audit row
    if args.json:
        print_json(data)
        return 0
    print(
        f"removed {data['removed']} {_entries(data['removed'])} ({format_bytes(data['freed'])})"
        f" from {shown(data['location'])}; the cache is empty"
    )
    return 0


def _entries(n: int) -> str:
    return "entry" if n == 1 else "entries"
