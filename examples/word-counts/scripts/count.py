"""Count the words of one book: counts/STEM.csv (word,count, most frequent first).

Passes on ``words`` (the total) through $ORCH_OUTPUT, for the report.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import re
from pathlib import Path

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--book", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    words = WORD.findall(Path(args.book).read_text(encoding="utf-8").lower())
    counts = collections.Counter(words)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["word", "count"])
        for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            w.writerow([word, n])
    if "ORCH_OUTPUT" in os.environ:
        with open(os.environ["ORCH_OUTPUT"], "a", encoding="utf-8") as f:
            f.write(f"words={len(words)}\n")


if __name__ == "__main__":
    main()
