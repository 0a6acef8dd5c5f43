"""Shared by the analysis steps: reading sources, writing JSON stably, handing values to orch."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path


def emit(**values: object) -> None:
    """Append ``key=value`` lines to $ORCH_OUTPUT; print them when run by hand without orch."""
    lines = "".join(f"{key}={value}\n" for key, value in values.items())
    target = os.environ.get("ORCH_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        print(lines, end="")


def write_text(path: Path, text: str) -> None:
    """All or nothing (temp file, then rename): a killed step never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_json(path: Path, data: object) -> None:
    """Sorted keys and fixed indentation: the same analysis is the same bytes (early cutoff)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def split_identifier(name: str) -> list[str]:
    """``price_for`` -> [price, for]; ``HTTPServer`` -> [http, server]."""
    words: list[str] = []
    for chunk in name.split("_"):
        words += re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", chunk)
    return [w.lower() for w in words if w]
