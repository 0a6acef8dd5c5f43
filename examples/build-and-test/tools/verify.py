"""Check a built archive before anyone ships it.

It must hash to what ``build`` reported (nothing touched it since), be a sound zip, match
its own RECORD entry for entry, and every top-level module and package in it must import
straight from the zip (zipimport), which proves the packaging, not just the sources.

Usage: python3 tools/verify.py ARCHIVE --sha256 HEX
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
import zipfile
from pathlib import Path

from orch_output import emit


def check(archive: Path, expected: str) -> list[str]:
    if not archive.is_file():
        return [f"{archive}: no such archive (did build run?)"]
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    if actual != expected:
        return [f"{archive}: sha256 is {actual}, build reported {expected}"]
    problems: list[str] = []
    with zipfile.ZipFile(archive) as zf:
        bad = zf.testzip()
        if bad:
            return [f"{archive}: corrupt entry {bad}"]
        records = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            return [f"{archive}: expected one RECORD, found {len(records)}"]
        listed = set()
        for line in zf.read(records[0]).decode().splitlines():
            if not line:
                continue
            name, digest, size = line.split(",")
            listed.add(name)
            data = zf.read(name)
            if f"sha256={hashlib.sha256(data).hexdigest()}" != digest or len(data) != int(size):
                problems.append(f"{archive}: {name} does not match its RECORD line")
        unlisted = set(zf.namelist()) - listed - set(records)
        problems.extend(f"{archive}: {name} is not in RECORD" for name in sorted(unlisted))
    return problems


def top_level(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    found = set()
    for name in names:
        first, _, rest = name.partition("/")
        if rest == "__init__.py" or (not rest and first.endswith(".py")):
            found.add(first.removesuffix(".py"))
    return sorted(found)


def import_test(archive: Path) -> list[str]:
    sys.path.insert(0, str(archive))
    problems = []
    for name in top_level(archive):
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any failure to import is what this check is for
            problems.append(f"{name} does not import from {archive}: {exc!r}")
            continue
        if not str(module.__file__).startswith(str(archive)):
            problems.append(f"{name} was imported from {module.__file__}, not from the archive")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--sha256", required=True)
    args = parser.parse_args()
    problems = check(args.archive, args.sha256) or import_test(args.archive)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{args.archive}: ok ({len(top_level(args.archive))} top-level modules)")
    emit(verified=args.archive.as_posix())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
