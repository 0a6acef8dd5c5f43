"""The no-op fast path: "nothing changed" decided from stat alone, as make and ninja do.

When a full plan finds every selected step up to date, ``record`` writes a *witness*: the
stat of every file and folder that decision read (inputs, outputs, folders walked for
globs), of the manifests and config, of ``state.db`` and its WAL, the environment values
templates read, and orch's own code. ``check`` re-stats exactly those; if every one is
unchanged the answer is still "up to date" and nothing else is loaded: no YAML, no SQLite,
no hashing. Anything different -- a touched file, a new file in a globbed folder, another
orch having written the state, a file modified too close to the witness for its mtime to
be trusted (racy git) -- and the caller does the full plan, which explains itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
from pathlib import Path
from typing import Any

WITNESS = ".orch/cache/noop.pickle"
RACY_NS = 50_000_000


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _dir_stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (0, st.st_mtime_ns, st.st_ino)


def _state_key(root: Path) -> tuple[Any, ...] | None:
    """What the recorded state says, in three numbers: any run, task or step record
    written by any orch process moves one of them. Read-only; a stat of the files would
    not do, as SQLite rewrites them on checkpoints without a change of content."""
    import sqlite3

    db = root / ".orch" / "state.db"
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return tuple(
                conn.execute(
                    "SELECT (SELECT max(id) FROM runs), (SELECT max(id) FROM tasks),"
                    " (SELECT max(updated) FROM steps), (SELECT count(*) FROM steps)"
                ).fetchone()
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def check(root: Path, selection: tuple[Any, ...]) -> list[tuple[str, str]] | None:
    """The selected (workflow, step) pairs if the witness still holds, else None."""
    try:
        with open(root / WITNESS, "rb") as f:
            witnesses = pickle.load(f)
        w = witnesses[selection]
    except Exception:
        return None
    from runner.cache import _code_stamp, manifest_key

    if w["code"] != _code_stamp() or w["state"] is None or w["state"] != _state_key(root):
        return None
    for name, value in w["environ"].items():
        if os.environ.get(name) != value:
            return None
    if w["manifests"] != manifest_key(root):
        return None
    rootstr = str(root)
    for rel, seen in w["paths"].items():
        if rel.endswith("/"):
            now = _dir_stat(os.path.join(rootstr, rel[:-1]) if rel != "/" else rootstr)
        else:
            now = _stat(os.path.join(rootstr, rel))
        if now != seen:
            return None
    return w["steps"]


def record(
    root: Path,
    selection: tuple[Any, ...],
    steps: list[tuple[str, str]],
    seen: dict[str, tuple[int, int, int] | None],
    environ: dict[str, str | None],
) -> None:
    """Write the witness of an all-up-to-date plan (after the state store is closed)."""
    from runner.cache import _code_stamp, manifest_key

    now = time.time_ns()
    if any(v is not None and now - v[1] < RACY_NS for v in seen.values()):
        return  # something changed too recently for its mtime to vouch for it
    path = root / WITNESS
    try:
        with open(path, "rb") as f:
            witnesses = pickle.load(f)
        if not isinstance(witnesses, dict):
            witnesses = {}
    except Exception:
        witnesses = {}
    mkey = manifest_key(root)
    if mkey is None:
        return
    witnesses = {k: v for k, v in witnesses.items() if v.get("manifests") == mkey}
    witnesses[selection] = {
        "code": _code_stamp(),
        "state": _state_key(root),
        "environ": environ,
        "manifests": mkey,
        "paths": dict(seen),
        "steps": steps,
    }
    from runner.fsutil import atomic_write

    with contextlib.suppress(OSError):  # only a cache
        atomic_write(path, pickle.dumps(witnesses, protocol=pickle.HIGHEST_PROTOCOL))
