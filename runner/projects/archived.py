"""What ``.orch/archive/`` holds, read by archive, restore and the project list: the index
of an archived project (``NAME.json``), and the one rule for its entries that archive and
restore both apply (``check_entries``; the rule itself is told in ``runner.projects.archive``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import OrchError, did_you_mean

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.workspace import Repo

ARCHIVE_DIR = ".orch/archive"


INDEX_VERSION = 1


MAX_INDEX_BYTES = 64 << 20  # an index lists paths and hashes: far below this


def archive_dir(repo: Repo) -> Path:
    return repo.root / ARCHIVE_DIR


def archived_names(repo: Repo) -> list[str]:
    d = archive_dir(repo)
    if not d.is_dir():
        return []
    return sorted(
        p.name[: -len(".json")]
        for p in d.iterdir()
        if p.name.endswith(".json") and not p.name.startswith(".")
    )


def read_index(repo: Repo, name: str) -> dict[str, Any] | None:
    from runner.fsutil import read_regular

    path = archive_dir(repo) / f"{name}.json"
    try:
        raw, size = read_regular(path, MAX_INDEX_BYTES)
        if size > MAX_INDEX_BYTES:
            raise ValueError(f"larger than {MAX_INDEX_BYTES // (1 << 20)} MiB")
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise OrchError(f"{ARCHIVE_DIR}/{name}.json: unreadable archive index: {e}") from None
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        raise OrchError(f"{ARCHIVE_DIR}/{name}.json: not an archive index this orch can read")
    return data


def unknown_project(repo: Repo, m: Manifests, name: str) -> OrchError:
    known = [*m.projects, *archived_names(repo)]
    hint = did_you_mean(name, known) or "see orch project list"
    return OrchError(f"no project named '{name}' ({hint})")


def workflows_of(m: Manifests, project: str) -> list[str]:
    """Here rather than in runner.projects.core (which lists them too) so imports point one way."""
    return sorted(w.name for w in m.workflows.values() if w.project == project)


def under(path: str, d: str) -> bool:
    """``path`` is the folder ``d`` or inside it."""
    return path == d or path.startswith(d + "/")


def check_entries(entries: list[dict[str, Any]], d: str) -> str | None:
    """The one rule both archive and restore apply (see the module doc), on the index alone:
    a description of the first entry that breaks it, or None."""
    kinds: dict[str, str] = {}
    for e in entries:
        path, kind = e.get("path"), e.get("type")
        if not isinstance(path, str) or kind not in ("file", "dir", "symlink") or path in kinds:
            return f"{path!r} is not an entry orch archives"
        kinds[path] = kind
        mode = e.get("mode")
        if type(mode) is not int or not 0 <= mode <= 0o7777:
            return f"{path} has no valid mode ({mode!r})"
        if kind == "file" and not (
            type(e.get("size")) is int and e["size"] >= 0 and isinstance(e.get("sha256"), str)
        ):
            return f"{path} has no valid size and sha256"
        if not under(path, d) and not (kind == "file" and path.endswith((".yaml", ".yml"))):
            return f"{path} is neither in the project's folder {d}/ nor one of its manifests"
        if kind == "symlink" and not link_stays_inside(path, e.get("target")):
            return (
                f"{path} is a symlink to {e.get('target')!r}, outside the repository; orch"
                " archives links that stay inside it (remove the link, e.g. a virtualenv that"
                " can be re-created, or make it point inside)"
            )
    for path in kinds:
        parent = path.rpartition("/")[0]
        while parent:
            if kinds.get(parent) == "symlink":
                return f"{path} lies under the symlink {parent}; nothing is written through a link"
            parent = parent.rpartition("/")[0]
    return None


def link_stays_inside(path: str, target: Any) -> bool:
    """A link's target, read relative to the link's folder as the kernel would, stays in
    the repository (lexically: at restore time nothing else exists to look at)."""
    import posixpath

    if not isinstance(target, str) or not target or target.startswith("/") or "\0" in target:
        return False
    j = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return j != ".." and not j.startswith("../")


def links_on_disk(root: Path, entries: list[dict[str, Any]]) -> str | None:
    """A folder on the way to an entry that is a symlink on disk: writing there would go
    wherever it points."""
    seen: set[str] = set()
    for e in entries:
        parent = e["path"].rpartition("/")[0]
        while parent and parent not in seen:
            seen.add(parent)
            if (root / parent).is_symlink():
                return f"{parent} is a symlink; nothing is read or written through a link"
            parent = parent.rpartition("/")[0]
    return None
