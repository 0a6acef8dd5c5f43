"""Per-region sales figures from the clean CSV, as JSON a report (or a person) can read.

Decimal arithmetic and sorted keys keep ``summary.json`` byte-identical for the same input,
so the steps after this one are cut off early when nothing really changed.

Usage: python3 scripts/summarise.py --clean data/clean.csv --by region --out data/summary.json
Passes on ``groups=``, ``top=`` (the group with the most revenue) and ``revenue=`` (the total).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

from common import CLEAN_COLUMNS, emit, read_csv, write_text

CENT = Decimal("0.01")


def summarise(rows: list[dict[str, str]], by: str) -> dict[str, dict[str, object]]:
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[row[by]].append(row)
    summary: dict[str, dict[str, object]] = {}
    for key in sorted(groups):
        members = groups[key]
        revenue = sum((Decimal(r["revenue"]) for r in members), Decimal(0))
        units = sum(int(r["quantity"]) for r in members)
        products = Counter[str]()
        for r in members:
            products[r["product"]] += int(r["quantity"])
        # most units first; ties broken by name so the answer never depends on row order
        top_product = min(products, key=lambda p: (-products[p], p))
        summary[key] = {
            "orders": len(members),
            "units": units,
            "revenue": str(revenue.quantize(CENT)),
            "mean_order_value": str((revenue / len(members)).quantize(CENT)),
            "top_product": top_product,
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--by", default="region", choices=[c for c in CLEAN_COLUMNS])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    summary = summarise(read_csv(args.clean), args.by)
    write_text(args.out, json.dumps({"by": args.by, "groups": summary}, indent=2) + "\n")
    total = sum((Decimal(str(g["revenue"])) for g in summary.values()), Decimal(0))
    top = min(summary, key=lambda k: (-Decimal(str(summary[k]["revenue"])), k))
    emit(groups=len(summary), top=top, revenue=total.quantize(CENT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
