"""Turn the raw export into rows a summary can trust, and keep what was dropped and why.

Rules: trim and title-case regions; a row needs every field; quantity must be a whole number
above zero; price a plain decimal (``7,25`` and ``free`` are rejected, not guessed at); the
first row of an ``order_id`` wins and repeats are duplicates. Money is kept in Decimal so
revenue never picks up float noise (and the output stays byte-stable).

Usage: python3 scripts/clean.py --raw data/raw.csv --out data/clean.csv --rejects data/rejects.csv
Passes on ``rows=`` (clean rows), ``dropped=`` and ``duplicates=``.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from pathlib import Path

from common import CLEAN_COLUMNS, RAW_COLUMNS, emit, read_csv, write_csv

CENT = Decimal("0.01")


def problem(row: dict[str, str]) -> str | None:
    """Why a row cannot be used, or None when it can."""
    for column in RAW_COLUMNS:
        if not (row.get(column) or "").strip():
            return f"missing {column}"
    quantity = row["quantity"].strip()
    if not quantity.isdigit() or int(quantity) == 0:
        return f"bad quantity {quantity!r}"
    try:
        price = Decimal(row["unit_price"].strip())
    except InvalidOperation:
        return f"bad unit_price {row['unit_price'].strip()!r}"
    if price <= 0:
        return f"bad unit_price {row['unit_price'].strip()!r}"
    return None


def clean(raw: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]], int]:
    kept: list[dict[str, str]] = []
    rejects: list[dict[str, str]] = []
    seen: set[str] = set()
    duplicates = 0
    for row in raw:
        if not any((value or "").strip() for value in row.values()):
            continue  # a blank line: not a record at all
        reason = problem(row)
        if reason is None and row["order_id"].strip() in seen:
            reason = "duplicate order_id"
            duplicates += 1
        if reason:
            rejects.append({**{c: row.get(c) or "" for c in RAW_COLUMNS}, "reason": reason})
            continue
        order_id = row["order_id"].strip()
        seen.add(order_id)
        quantity = int(row["quantity"])
        price = Decimal(row["unit_price"].strip()).quantize(CENT)
        kept.append(
            {
                "order_id": order_id,
                "region": row["region"].strip().title(),
                "product": row["product"].strip().lower(),
                "quantity": str(quantity),
                "unit_price": str(price),
                "revenue": str((price * quantity).quantize(CENT)),
            }
        )
    return kept, rejects, duplicates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rejects", type=Path, required=True)
    args = parser.parse_args()
    kept, rejects, duplicates = clean(read_csv(args.raw))
    if not kept:
        parser.exit(1, f"clean: no usable rows in {args.raw}\n")
    write_csv(args.out, CLEAN_COLUMNS, kept)
    write_csv(args.rejects, [*RAW_COLUMNS, "reason"], rejects)
    emit(rows=len(kept), dropped=len(rejects), duplicates=duplicates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
