"""Parsed manifests cached by the stat of every file they came from.

A no-op ``orch plan`` must not pay for YAML parsing, schema validation, Jinja checks and DAG
building on every call; like git's index, we trust each file's stat key (``runner.statkey``:
size, mtime, ctime, inode, mode) and re-read when any of them moves, or when a file changed
in the same timestamp tick as the cache was written (git's racy-clean rule). The cache is
JSON in ``.orch/cache/`` (``runner.store.datacache``: reading it can build values, never run code,
so a hostile ``.orch/`` gains nothing), written atomically; a missing, stale, foreign or
broken file just means a fresh load.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import __version__, statkey
from runner.manifests.sources import list_manifest_files

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests

CONFIG_PATH = ".orch/config.yaml"
CACHE_FILE = ".orch/cache/manifests.json"


def _code_stamp() -> tuple[object, ...]:
    """orch's own modules by stat: a cache written by other code (an upgrade, a checkout
    of another commit) must never be read into objects of a different shape."""
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


def load_cached(
    root: Path, prefix: str, extra_paths: list[str] | None = None, *, write: bool = True
) -> Manifests:
    """The manifests, from the cache while it holds; ``write``: save a fresh load to it
    (False for a verb that only reads, which creates nothing)."""
    from runner.manifests.load import load, read_config, select_files

    if extra_paths or not (root / ".orch").is_dir():
        return load(root, extra_paths, prefix)
    path = root / CACHE_FILE
    cached = _codec().read(path, _stamp())
    if not (isinstance(cached, tuple) and len(cached) == 3 and _is_manifests(cached[2])):
        cached = None  # a missing, stale, foreign or broken cache is only a cache
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
        if _fan_folders_hold(root, m.fan_seen, path) and _fan_sources_hold(root, m):
            m.root = root
            return m
    m = load(root, None, prefix)
    if not write:
        return m
    from runner.fsutil import atomic_write

    with contextlib.suppress(OSError, TypeError, ValueError):  # only a cache
        atomic_write(path, _codec().dumps((config_key, key, m), _stamp()))
    return m


def _fan_folders_hold(root: Path, seen: dict[str, Any], cache: Path) -> bool:
    """Whether every folder a ``foreach`` glob walked is as it was: a file added, removed
    or renamed there moves the folder's stat and so the instances (racy rule as above)."""
    if not seen:
        return True
    try:
        written = os.stat(cache).st_mtime_ns
    except OSError:
        return False
    rootstr = str(root)
    for rel, was in seen.items():
        now = statkey.dir_stat(os.path.join(rootstr, rel[:-1]) if rel != "/" else rootstr)
        if now != was or (now is not None and statkey.is_racy(now, written)):
            return False
    return True


def _fan_sources_hold(root: Path, m: Manifests) -> bool:
    """Whether each step a ``foreach`` fans out over still has the output value its
    instances were made from (its record changes when it runs)."""
    if not m.fan_dynamic:
        return True
    from runner.manifests.fanout import source_value
    from runner.manifests.load import RecordedOutputs

    reader = RecordedOutputs(root)
    try:
        return all(
            source_value(reader(w, src), key) == m.fan_sources.get(f"{w}/{src}")
            for w, _step, src, key in m.fan_dynamic
            if key  # "": a glob's source; its folders are in fan_seen
        )
    finally:
        reader.close()


def _stamp() -> tuple[object, ...]:
    return (__version__, _code_stamp())


def _is_manifests(value: Any) -> bool:
    from runner.manifests.catalog import Manifests

    return type(value) is Manifests


@functools.cache
def _codec() -> Any:
    """The classes a manifest cache may hold, and nothing else."""
    from runner.manifests.catalog import Config, Manifests
    from runner.manifests.graph import Dag
    from runner.manifests.yamlsrc import Document
    from runner.model import (
        Breaker,
        Handler,
        Loc,
        Milestone,
        Project,
        Quota,
        Retry,
        Step,
        Workflow,
    )
    from runner.store.datacache import Codec

    def steps_by_name(fields: dict[str, Any]) -> None:
        # as model.build_workflow: the first of duplicate names wins
        fields["by_name"] = {s.name: s for s in reversed(fields["steps"])}

    classes = (Loc, Retry, Breaker, Step, Handler, Workflow, Quota, Milestone, Project)
    return Codec(
        (*classes, Dag, Document, Config, Manifests),
        derived={Workflow: ("by_name",)},
        rebuild={Workflow: steps_by_name},
    )


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
