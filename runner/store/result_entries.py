"""The shape of a result cache entry (``runner.store.results``): what ``put`` writes,
checked wherever one is read, since an entry is data from a store that may be shared,
remote or damaged."""

from __future__ import annotations

from typing import Any


def well_formed(data: dict[str, Any]) -> bool:
    """Whether an entry has the shape ``put`` writes: an entry is data from a store that
    may be shared or damaged, and one of another shape is a miss, not an internal error
    wherever it is read (plan, restore, status, gc)."""
    values, meta = data.get("values", {}), data.get("meta", {})
    outputs = data.get("outputs")
    if not _time(data.get("created", 0.0)) or not isinstance(meta, dict):
        return False
    if not isinstance(values, dict) or not all(_text(k) and _text(v) for k, v in values.items()):
        return False
    if not isinstance(outputs, list):
        return False
    for o in outputs:
        if not isinstance(o, dict) or not _text(o.get("path")):
            return False
        if o.get("kind") == "dir":
            files, dirs = o.get("files", []), o.get("dirs", [])
            if not _mode(o.get("mode", 0o755)) or not isinstance(files, list):
                return False
            if not isinstance(dirs, list) or not all(_text(d) for d in dirs):
                return False
            shapes = [isinstance(f, list) and len(f) == 4 for f in files]
            if not all(shapes):
                return False
        elif o.get("kind") != "file" or not {"blob", "mode", "size"} <= o.keys():
            return False
        for sub, blob, mode, size in files_of(o):
            if not (_text(sub) and _blob(blob)):
                return False
            if not (_mode(mode) and isinstance(size, int) and size >= 0):
                return False
    return True


def _text(s: Any) -> bool:
    """A path or value an entry may hold: a string without NUL (no path or environment
    value can hold one; a crafted ``a\\x00b`` made the restore an internal error)."""
    return isinstance(s, str) and "\x00" not in s


def _blob(blob: Any) -> bool:
    """Whether ``blob`` is a name ``put`` gives a blob: its BLAKE2b-128 hash in lower-case
    hex (a crafted ``xyz`` was an internal error in the plan, which reads blobs)."""
    return isinstance(blob, str) and len(blob) == 32 and not blob.strip("0123456789abcdef")


def _time(t: Any) -> bool:
    """Whether ``t`` is a time ``put`` could have written (unix seconds, finite, before
    the year 5000): a crafted 1e300 or NaN was an internal error in the plan's
    ``cached result from <when>``."""
    return isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < 95617584000


def _mode(mode: Any) -> bool:
    """Whether ``mode`` is one ``st_mode & 0o7777`` gives (a crafted 2**70 made chmod
    raise OverflowError)."""
    return isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode <= 0o7777


def files_of(output: dict[str, Any]) -> list[list[Any]]:
    """``[sub, blob, mode, size]`` for each file of an entry's output."""
    if output.get("kind") == "dir":
        return [list(f) for f in output.get("files", [])]
    return [["", output["blob"], output["mode"], output["size"]]]
