"""What every pipeline script shares: the column layout and handing values to orch."""

from __future__ import annotations

import csv
import os
from pathlib import Path

RAW_COLUMNS = ["order_id", "region", "product", "quantity", "unit_price"]
CLEAN_COLUMNS = [*RAW_COLUMNS, "revenue"]


def emit(**values: object) -> None:
    """Append ``key=value`` lines to $ORCH_OUTPUT; print them when run by hand without orch."""
    lines = "".join(f"{key}={value}\n" for key, value in values.items())
    target = os.environ.get("ORCH_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        print(lines, end="")


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Write all at once via a temp file, so a killed step never leaves half a CSV behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
