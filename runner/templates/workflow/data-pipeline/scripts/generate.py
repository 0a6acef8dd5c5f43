"""Generate a raw sales CSV with the mess real exports have, from a seed (so: reproducible).

Dirty on purpose, so ``clean`` has work to do: padded and mixed-case regions, blank fields,
quantities like ``n/a`` or ``-3``, prices with a decimal comma, exact duplicate rows and
blank lines. The same ``--rows`` and ``--seed`` always give byte-identical output.

Usage: python3 scripts/generate.py --rows 500 --seed 42 --out data/raw.csv
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from common import RAW_COLUMNS, emit, write_text

REGIONS = ["North", "South", "East", "West"]
PRODUCTS = {"widget": 2.50, "gadget": 12.00, "gizmo": 7.25, "doohickey": 0.99}


def messy_region(rng: random.Random, region: str) -> str:
    roll = rng.random()
    if roll < 0.05:
        return ""
    if roll < 0.12:
        return f"  {region.upper()} "
    if roll < 0.18:
        return region.lower()
    return region


def messy_quantity(rng: random.Random, quantity: int) -> str:
    roll = rng.random()
    if roll < 0.03:
        return "n/a"
    if roll < 0.05:
        return str(-quantity)
    if roll < 0.06:
        return ""
    return str(quantity)


def messy_price(rng: random.Random, price: float) -> str:
    roll = rng.random()
    if roll < 0.03:
        return f"{price:.2f}".replace(".", ",")  # decimal comma: unparseable, rejected
    if roll < 0.04:
        return "free"
    return f"{price:.2f}"


def generate(rows: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = [",".join(RAW_COLUMNS)]
    for n in range(1, rows + 1):
        product = rng.choice(sorted(PRODUCTS))
        price = PRODUCTS[product] * rng.choice([1.0, 1.0, 1.0, 0.9, 1.1])
        fields = [
            f"A{n:05d}",
            messy_region(rng, rng.choice(REGIONS)),
            product,
            messy_quantity(rng, rng.randint(1, 20)),
            messy_price(rng, price),
        ]
        line = ",".join(f'"{f}"' if "," in f else f for f in fields)
        lines.append(line)
        if rng.random() < 0.03:
            lines.append(line)  # an exact duplicate, as a re-sent export would have
        if rng.random() < 0.01:
            lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    lines = generate(args.rows, args.seed)
    write_text(args.out, "\n".join(lines) + "\n")
    emit(raw=args.out.as_posix(), lines=len(lines) - 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
