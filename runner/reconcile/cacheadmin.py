"""The result cache's housekeeping, over the store ``.orch/config.yaml``'s ``cache:`` names:
``orch cache status|gc|clear`` and the trim after an apply (``api.cache_*`` and
``api.apply`` wire these to a repository; docs/cache.md says what each does).

Kept apart from ``restore`` (which restores and stores step results during a run): these
read or shrink the store as a whole and never touch the state store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.errors import OrchError


def open_configured(root: Path) -> tuple[Any, Any]:
    """(the result store, the ``cache:`` setting) of the repository at ``root``
    (``store.results``). OrchError for a config that does not validate, or a
    ``cache.remote`` that cannot be opened (one line, what to do)."""
    from runner.manifests.load import read_config
    from runner.store.results import open_store

    config, diags = read_config(root)
    if diags:
        raise OrchError(diagnostics=diags)
    setting = config.cache
    try:
        return open_store(root, setting), setting
    except ImportError as e:  # store.results.RemoteUnavailable: one line, what to do
        raise OrchError(f".orch/config.yaml: {e}") from None


@contextlib.contextmanager
def _store_errors(location: str) -> Iterator[None]:
    """A store that cannot be read or written (its folder a file, a full disk, no
    permission) as one OrchError line naming it and what to do, not an internal error."""
    try:
        yield
    except OSError as e:
        import errno

        where = f": {e.filename}" if e.filename and str(e.filename) != location else ""
        why = e.strerror or str(e)
        if e.errno in (errno.EEXIST, errno.ENOTDIR):
            why = "a file is where a folder should be"
        raise OrchError(
            f".orch/config.yaml: result cache {location}{where}: {why};"
            " make it a folder orch can write, or change cache.dir"
        ) from None


def status(root: Path) -> dict[str, Any]:
    """``api.cache_status``'s answer: location, enabled, the store's stats, hit_rate
    (hits / lookups, 0..1; None before the first lookup), max_size (bytes or None)."""
    from runner.store.results import CacheSetting

    store, setting = open_configured(root)
    with _store_errors(store.location):
        stats = store.stats()
    looked = stats["hits"] + stats["misses"]
    return {
        "location": store.location,
        "enabled": CacheSetting.of(setting).enabled,
        **stats,
        "hit_rate": stats["hits"] / looked if looked else None,
        "max_size": CacheSetting.of(setting).max_size,
    }


def gc(root: Path, *, max_size: int | None, older_than: float | None) -> dict[str, Any]:
    """``api.cache_gc``: drop entries least recently used first (``max_size`` None: the
    configured ``cache.max_size``); what was removed and freed, and what is left."""
    from runner.store.results import CacheSetting

    store, setting = open_configured(root)
    if max_size is None:
        max_size = CacheSetting.of(setting).max_size
    with _store_errors(store.location):
        removed, freed = store.gc(max_size=max_size, older_than=older_than)
        left = store.stats()
    return {
        "location": store.location,
        "removed": removed,
        "freed": freed,
        "entries": left["entries"],
        "bytes": left["bytes"],
    }


def clear(root: Path) -> dict[str, Any]:
    """``api.cache_clear``: every entry and file content dropped; how many and how much."""
    store, _setting = open_configured(root)
    with _store_errors(store.location):
        before = store.stats()["bytes"]
        removed = store.clear()
    return {"location": store.location, "removed": removed, "freed": before}


def trim(root: Path, cache: Any) -> str | None:
    """The result cache gc'd to ``cache.max_size``, least recently used first, as ``orch
    cache gc`` does, after an apply that ran something (``cache``: the loaded config's
    ``cache:`` setting). A store that cannot be trimmed (a remote gone, a full disk) is a
    warning, returned: the run's results are recorded already."""
    from runner.store.results import CacheSetting, open_store

    setting = CacheSetting.of(cache)
    if not setting.enabled or setting.max_size is None:
        return None
    try:
        open_store(root, setting).gc(max_size=setting.max_size)
    except (OSError, ImportError) as e:
        return f"result cache not trimmed to cache.max_size: {e}"
    return None
