"""The no-op fast path: "nothing changed" decided from stat alone, as make and ninja do.

When a full plan finds every selected step up to date, ``record`` writes a *witness*: the
stat of every file and folder that decision read (inputs, outputs, folders walked for
globs), of the manifests and config, of ``state.db`` and its WAL, keyed digests of the
environment values templates read (never the values: one may be a secret), and orch's
own code. ``check`` re-stats exactly those; if every one is unchanged the answer is still "up to date" and nothing else is loaded: no YAML, no SQLite,
no hashing. Anything different -- a touched file, a new file in a globbed folder, another
orch having written the state, a file modified too close to the witness for its mtime to
be trusted (racy git) -- and the caller does the full plan, which explains itself.
The witness is JSON: a hostile ``.orch/`` can make orch believe no more than a forged
``state.db`` could, and never run code.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Any

from runner import statkey
from runner.store.stamp import state_key

WITNESS = ".orch/cache/noop.json"


def check(
    root: Path, selection: tuple[Any, ...], mkey: tuple[Any, ...] | None
) -> list[tuple[str, str]] | None:
    """The selected (workflow, step) pairs if the witness still holds, else None.
    ``mkey``: ``runner.manifests.cache.manifest_key(root)``, taken by the caller."""
    witnesses = _codec().read(root / WITNESS)
    try:
        w = witnesses[selection]
    except Exception:  # no witness, or not one this code wrote: a full plan decides
        return None
    from runner.manifests.cache import _code_stamp

    if w["code"] != _code_stamp() or w["state"] is None or w["state"] != state_key(root):
        return None
    if w["environ"]:
        from runner.masking import repository_key

        key = repository_key(root / ".orch", create=False)
        now = {n: os.environ.get(n) for n in w["environ"]}
        if key is None or w["environ"] != _environ_digests(key, now):
            return None
    if mkey is None or w["manifests"] != mkey:
        return None
    rootstr = str(root)
    for rel, seen in w["paths"].items():
        if rel.endswith("/"):
            now = statkey.dir_stat(os.path.join(rootstr, rel[:-1]) if rel != "/" else rootstr)
        else:
            now = statkey.stat(os.path.join(rootstr, rel))
        if now != seen:
            return None
    return w["steps"]


def record(
    root: Path,
    selection: tuple[Any, ...],
    steps: list[tuple[str, str]],
    seen: dict[str, statkey.StatKey | None],
    environ: dict[str, str | None],
    mkey: tuple[Any, ...] | None,
) -> None:
    """Write the witness of an all-up-to-date plan (after the state store is closed).

    ``mkey`` is ``runner.manifests.cache.manifest_key`` taken before the manifests were loaded, so an
    edit made while the plan ran leaves a witness that no longer matches."""
    from runner.manifests.cache import _code_stamp
    from runner.masking import repository_key

    now = time.time_ns()
    if any(v is not None and statkey.is_racy(v, now) for v in seen.values()):
        return  # something changed too recently for its stat to vouch for it
    if mkey is None or any(
        isinstance(e, tuple) and len(e) == 2 and e[1] is not None and statkey.is_racy(e[1], now)
        for e in mkey[3:]
    ):
        return
    path = root / WITNESS
    witnesses = _codec().read(path)
    if not isinstance(witnesses, dict):
        witnesses = {}
    witnesses = {
        k: v for k, v in witnesses.items() if isinstance(v, dict) and v.get("manifests") == mkey
    }
    witnesses[selection] = {
        "code": _code_stamp(),
        "state": state_key(root),
        "environ": _environ_digests(repository_key(root / ".orch"), environ),
        "manifests": mkey,
        "paths": dict(seen),
        "steps": steps,
    }
    from runner.fsutil import atomic_write

    with contextlib.suppress(OSError, TypeError, ValueError):  # only a cache
        atomic_write(path, _codec().dumps(witnesses))


def selection_key(
    workflows: list[str] | None,
    project: str | None,
    env: str | None,
    force: list[str] | None,
    force_all: bool,
    since: str | None,
    params: dict[str, Any] | None = None,
) -> tuple[Any, ...] | None:
    """The key of a selection's witness. The no-op witness applies to plain selections
    (``--param`` values are part of the selection: each set has its own witness); forcing
    or --since always plans (None)."""
    if force or force_all or since:
        return None
    key = ("v1", tuple(workflows or ()), project or "", env or "")
    if params:
        key += (tuple(f"{k}={v!r}" for k, v in sorted(params.items())),)
    return key


def record_plan(
    root: Path,
    m: Any,
    wfs: list[Any],
    key: tuple[Any, ...],
    seen: dict[str, Any],
    mkey: tuple[Any, ...] | None,
) -> None:
    """``record`` the witness of an all-up-to-date plan of workflows ``wfs`` of the
    catalog ``m`` (``seen``: the plan's stats), unless one of its steps reads what no
    stat sees: the environment by a computed name, or ``git.*``."""
    refs = [m.env_refs.get((w.name, s.name), ()) for w in wfs for s in w.steps]
    if any(r is None for r in refs):
        return  # a template reads the environment by a computed name: always plan
    if any((w.name, s.name) in m.git_refs for w in wfs for s in w.steps):
        return  # git.* moves with commits no file stat sees: always plan
    names = {v for r in refs for v in r or ()}
    steps = [(w.name, n) for w in wfs for n in m.dags[w.name].order]
    seen = {**m.fan_seen, **seen}  # a file added under a foreach glob is a new instance
    record(root, key, steps, seen, {n: os.environ.get(n) for n in names}, mkey)


@functools.cache
def _codec() -> Any:
    """Witnesses are plain data (JSON, ``runner.store.datacache``): reading one runs no code."""
    from runner.store.datacache import Codec

    return Codec(())


def _environ_digests(key: bytes | None, values: dict[str, str | None]) -> dict[str, str]:
    """A keyed digest per variable: the witness tells a changed value without holding it
    (it may be a secret read through ``{{ env.X }}``)."""
    from runner.masking import keyed_digest

    assert key is not None
    return {n: keyed_digest(key, repr(v)) for n, v in values.items()}
