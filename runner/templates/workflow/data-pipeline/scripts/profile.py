"""Profile the clean data's numeric columns: range, mean, median and a quantity histogram.

Runs beside ``summarise`` (both read only clean.csv), which is why the workflow's quota
allows two steps at a time.

Usage: python3 scripts/profile.py --clean data/clean.csv --bins 5 --out data/profile.json
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from statistics import median

from common import emit, read_csv, write_text

CENT = Decimal("0.01")


def describe(values: list[Decimal]) -> dict[str, str]:
    ordered = sorted(values)
    return {
        "min": str(ordered[0]),
        "max": str(ordered[-1]),
        "mean": str((sum(ordered, Decimal(0)) / len(ordered)).quantize(CENT)),
        "median": str(Decimal(median(ordered)).quantize(CENT)),
    }


def histogram(values: list[int], bins: int) -> list[dict[str, int]]:
    """Equal-width integer bins from min to max, each ``{low, high, count}`` (high inclusive)."""
    low, high = min(values), max(values)
    width = max(1, -(-(high - low + 1) // bins))  # ceiling division
    edges = list(range(low, high + 1, width))
    return [
        {"low": e, "high": e + width - 1, "count": sum(e <= v < e + width for v in values)}
        for e in edges
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--bins", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = read_csv(args.clean)
    quantities = [int(r["quantity"]) for r in rows]
    profile = {
        "rows": len(rows),
        "quantity": describe([Decimal(q) for q in quantities]),
        "unit_price": describe([Decimal(r["unit_price"]) for r in rows]),
        "revenue": describe([Decimal(r["revenue"]) for r in rows]),
        "quantity_histogram": histogram(quantities, args.bins),
    }
    write_text(args.out, json.dumps(profile, indent=2) + "\n")
    emit(median_revenue=profile["revenue"]["median"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
