"""Load and save an inventory as CSV, the format the shop's till exports."""

from __future__ import annotations

import csv
from pathlib import Path

from shelf.models import Book, Inventory

COLUMNS = ["isbn", "title", "author", "year", "genre", "list_price", "copies"]


def load(path: Path) -> Inventory:
    """Read an inventory; a malformed row is an error naming its line, never skipped."""
    inventory = Inventory()
    with open(path, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                book = Book(
                    isbn=row["isbn"].strip(),
                    title=row["title"].strip(),
                    author=row["author"].strip(),
                    year=int(row["year"]),
                    genre=row["genre"].strip().lower(),
                    list_price=float(row["list_price"]),
                )
                copies = int(row["copies"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: bad row: {exc}") from None
            if copies:
                inventory.add(book, copies)
    return inventory


def save(inventory: Inventory, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for isbn in sorted(inventory.books):
            book = inventory.books[isbn]
            writer.writerow({**book.__dict__, "copies": inventory.stock.get(isbn, 0)})
