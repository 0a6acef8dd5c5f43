"""The most frequent words across every book's counts: summaries/top-N[-long].csv.

``--top N`` keeps the N most frequent words; ``--min-length L`` leaves out shorter words
(``the``, ``and``), so the two matrix settings give two views of the same counts.
"""

from __future__ import annotations

import argparse
import collections
import csv
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", required=True, help="folder of per-book word,count CSVs")
    ap.add_argument("--top", type=int, required=True)
    ap.add_argument("--min-length", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    total: collections.Counter[str] = collections.Counter()
    books: collections.Counter[str] = collections.Counter()
    for path in sorted(Path(args.counts).glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if len(row["word"]) >= args.min_length:
                    total[row["word"]] += int(row["count"])
                    books[row["word"]] += 1
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[: args.top]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "word", "count", "books"])
        for i, (word, n) in enumerate(ranked, 1):
            w.writerow([i, word, n, books[word]])


if __name__ == "__main__":
    main()
