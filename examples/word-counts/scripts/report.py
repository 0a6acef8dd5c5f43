"""report.md: words per book (from the count instances' outputs) and each summary table.

``--books`` is ``{{ steps.count.instances | tojson }}``: one entry per instance, with its
``item`` (the book's path and name) and ``outputs`` (``words``).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--books", required=True, help="the count step's instances, as JSON")
    ap.add_argument("--summaries", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    books = json.loads(args.books)
    lines = ["# Word counts", "", "| book | words |", "| --- | ---: |"]
    total = 0
    for b in books:
        words = int(b["outputs"].get("words", 0))
        total += words
        lines.append(f"| {b['item']['stem']} | {words} |")
    lines += [f"| **all {len(books)} books** | **{total}** |", ""]
    for path in args.summaries:
        lines += [f"## {Path(path).stem}", "", "| rank | word | count | books |"]
        lines.append("| ---: | --- | ---: | ---: |")
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                lines.append(f"| {row['rank']} | {row['word']} | {row['count']} | {row['books']} |")
        lines.append("")
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
