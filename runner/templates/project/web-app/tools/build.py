"""Build the app into one runnable, reproducible archive: ``python3 dist/dev/app.pyz``.

The archive holds the ``app`` package, the settings for this environment (the defaults in
``config/settings.json`` with the workflow's params laid over them) as
``app/settings.json``, and a ``__main__.py`` that starts the server. Every entry has a fixed
timestamp and mode and the entries are sorted, so the same sources and settings give the
same bytes, and orch does not re-run ``smoke`` for a change that did not change the app.

Usage: python3 tools/build.py --app app --config config/settings.json --port 80 --debug false
           --out dist/prod/app.pyz
Passes on ``archive=<path>`` and ``sha256=<hex>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import zipfile
from pathlib import Path

from orch_output import emit

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
MAIN = b"from app.server import main\n\nraise SystemExit(main())\n"


def boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def add_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # unix, whatever machine builds it
    archive.writestr(info, data, compresslevel=9)


def build(app: Path, settings: dict[str, object], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    entries = {
        f"{app.name}/{p.relative_to(app).as_posix()}": p.read_bytes()
        for p in app.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    baked = json.dumps(settings, indent=2, sort_keys=True) + "\n"
    entries[f"{app.name}/settings.json"] = baked.encode()
    entries["__main__.py"] = MAIN
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(entries):
            add_entry(archive, name, entries[name])
    os.replace(partial, out)  # all or nothing: a killed build leaves no half archive
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, required=True, help="the app's package folder")
    parser.add_argument("--config", type=Path, required=True, help="the default settings")
    parser.add_argument("--port", type=int)
    parser.add_argument("--debug", type=boolean)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = json.loads(args.config.read_text(encoding="utf-8"))
    for key in ("port", "debug"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    target = build(args.app, settings, args.out)
    emit(archive=target.as_posix(), sha256=hashlib.sha256(target.read_bytes()).hexdigest())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
