"""Write the markdown report: counts handed on by earlier steps plus their JSON files.

The counts arrive as arguments rendered from ``{{ steps.clean.outputs.rows }}`` and friends,
so this step shows both ways values travel in orch: step outputs and files.

Usage: python3 scripts/report.py --title TITLE --rows N --dropped N --duplicates N --top REGION
       --summary data/summary.json --profile data/profile.json --out data/report.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import emit, write_text


def render(args: argparse.Namespace, summary: dict, profile: dict) -> str:
    total = args.rows + args.dropped
    lines = [
        f"# {args.title}",
        "",
        f"{args.rows} of {total} records were usable; {args.dropped} were dropped "
        f"({args.duplicates} of them duplicates). Top {summary['by']}: **{args.top}**.",
        "",
        f"| {summary['by']} | orders | units | revenue | mean order | top product |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, g in summary["groups"].items():
        lines.append(
            f"| {name} | {g['orders']} | {g['units']} | {g['revenue']} "
            f"| {g['mean_order_value']} | {g['top_product']} |"
        )
    lines += ["", "## Order sizes", "", "| quantity | orders |", "| --- | ---: |"]
    for b in profile["quantity_histogram"]:
        lines.append(f"| {b['low']}-{b['high']} | {b['count']} |")
    lines += [
        "",
        f"Median revenue per order: {profile['revenue']['median']}; "
        f"unit prices from {profile['unit_price']['min']} to {profile['unit_price']['max']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--title", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--dropped", type=int, required=True)
    parser.add_argument("--duplicates", type=int, required=True)
    parser.add_argument("--top", required=True)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    summary = json.loads(args.summary.read_text(encoding="utf-8"))
    profile = json.loads(args.profile.read_text(encoding="utf-8"))
    write_text(args.out, render(args, summary, profile))
    emit(report=args.out.as_posix())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
