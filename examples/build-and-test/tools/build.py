"""Build a deterministic zip of the code under a source folder: same sources, same bytes.

Reproducibility is what lets orch's early cutoff work: if an edit does not change the
archive (say, only a test changed upstream), its hash is unchanged and the steps after
``build`` do not run again. So every entry gets a fixed timestamp and mode, entries are
sorted, and a RECORD file lists each entry's sha256 (as a wheel's RECORD does).

Usage: python3 tools/build.py --src src --outdir dist --name myapp --version 0.1.0
Passes on ``archive=<path>``, ``sha256=<hex>`` and ``files=<n>`` (see orch_output.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import zipfile
from pathlib import Path

from orch_output import emit

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


def sources(src: Path) -> list[Path]:
    if not src.is_dir():
        return []
    return sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts and p.is_file())


def add_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # unix, whatever machine builds it
    archive.writestr(info, data, compresslevel=9)


def build(src: Path, outdir: Path, name: str, version: str) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob(f"{name}-*.zip"):
        stale.unlink()  # an old version left behind would make the output folder differ
    target = outdir / f"{name}-{version}.zip"
    partial = target.with_suffix(".zip.partial")
    record: list[str] = []
    with zipfile.ZipFile(partial, "w") as archive:
        for path in sources(src):
            arcname = path.relative_to(src).as_posix()
            data = path.read_bytes()
            add_entry(archive, arcname, data)
            record.append(f"{arcname},sha256={hashlib.sha256(data).hexdigest()},{len(data)}")
        record_name = f"{name}-{version}.dist-info/RECORD"
        add_entry(archive, record_name, ("\n".join(record) + "\n").encode())
    os.replace(partial, target)  # all or nothing: a killed build leaves no half archive
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="the folder holding the code")
    parser.add_argument("--outdir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    target = build(args.src, args.outdir, args.name, args.version)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    emit(archive=target.as_posix(), sha256=digest, files=len(sources(args.src)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
