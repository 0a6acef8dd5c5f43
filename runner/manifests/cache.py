"""Parsed manifests cached by the stat of every file they came from.

A no-op ``orch plan`` must not pay for YAML parsing, schema validation, Jinja checks and DAG
building on every call; like git's index, we trust each file's stat key (``runner.statkey``:
size, mtime, ctime, inode, mode) and re-read when any of them moves, or when a file changed
in the same timestamp tick as the cache was written (git's racy-clean rule). The cache is a pickle in ``.orch/cache/`` written
atomically; any problem reading it just means a fresh load.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from runner import __version__, statkey
from runner.manifests.sources import list_manifest_files

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests

CONFIG_PATH = ".orch/config.yaml"
CACHE_FILE = ".orch/cache/manifests.pickle"


def _code_stamp() -> tuple[object, ...]:
    """orch's own modules by stat: a cache pickled by other code (an upgrade, a checkout
    of another commit) must never be unpickled into objects of a different shape."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # runner/
    out: list[object] = []
    todo = [""]
    while todo:  # runner/ and its packages; not templates/ (data, not code)
        rel = todo.pop()
        for e in sorted(os.scandir(os.path.join(top, rel)), key=lambda e: e.name):
            if e.name.endswith(".py") and e.is_file():
                out.append((os.path.join(rel, e.name), statkey.stat(e.path)))
            elif e.is_dir() and e.name not in ("templates", "__pycache__"):
                todo.append(os.path.join(rel, e.name))
    return tuple(out)


def _stat_key(root: Path, files: list[str]) -> tuple[object, ...]:
    out: list[object] = [__version__, _code_stamp(), str(root)]
    for f in [CONFIG_PATH, *files]:
        out.append((f, statkey.stat(root / f)))
    return tuple(out)


def load_cached(root: Path, prefix: str, extra_paths: list[str] | None = None) -> Manifests:
    from runner.manifests.load import load, read_config, select_files

    if extra_paths or not (root / ".orch").is_dir():
        return load(root, extra_paths, prefix)
    path = root / CACHE_FILE
    cached = None
    try:
        with open(path, "rb") as f:
            cached = pickle.load(f)
    except Exception:  # a missing, stale or foreign cache is only a cache
        cached = None
    config_key = _stat_key(root, [])
    if cached is not None and cached[0] == config_key and cached[2].config.exists:
        config = cached[2].config  # unchanged config: no need to parse or validate it again
    else:
        config, diags = read_config(root)
        if diags:
            return load(root, None, prefix)
    files = select_files(list_manifest_files(root), config)
    key = _stat_key(root, files)
    if cached is not None and cached[1] == key and _racy_safe(path, key):
        m: Manifests = cached[2]
        m.root = root
        return m
    m = load(root, None, prefix)
    from runner.fsutil import atomic_write

    with contextlib.suppress(OSError):  # only a cache
        atomic_write(path, pickle.dumps((config_key, key, m), protocol=pickle.HIGHEST_PROTOCOL))
    return m


def _racy_safe(cache: Path, key: tuple[object, ...]) -> bool:
    """A file changed in the same timestamp tick as the cache was written may have changed
    after we read it ("racy git"): distrust the cache for it."""
    try:
        written = os.stat(cache).st_mtime_ns
    except OSError:
        return False
    for entry in key[3:]:
        if entry[1] is not None and statkey.is_racy(entry[1], written):
            return False
    return True


def manifest_key(root: Path) -> tuple[object, ...] | None:
    """Every YAML file git would show, and the config, by stat: any manifest added,
    removed or edited anywhere moves it."""
    try:
        files = list_manifest_files(root)
    except OSError:
        return None
    return _stat_key(root, files)
