"""Archive and restore a project, without losing a byte.

Archiving takes a project out of the work tree::

    .orch/archive/NAME.tar.gz   every file, link and folder under the project's folder, and
                                its manifests kept elsewhere; paths relative to the repo root
    .orch/archive/NAME.json     the index: name, when, the folder, and per entry its type,
                                mode, size and sha256 (present = the project is archived)

then removes them, so reconcile no longer sees its workflows (their manifests are gone).
``restore`` unpacks into a temp folder with tarfile's ``data`` filter (no absolute paths,
no ``..``, no links out), checks every hash against the index, and only then moves the
files back, never over an existing file. ``runner.projects.core`` reads the index to list an
archived project.

One rule for links, applied by both sides (``check_entries``): a symlink travels as a
symlink when its target, read relative to the link's folder, stays inside the repository;
no entry lies under a link; every entry is in the project's folder or is one of its
manifests (``*.yaml``/``*.yml``), and none is in a ``.git`` or ``.orch`` folder. ``archive``
checks it before it writes or removes anything; ``restore`` checks it before it writes
anything, takes each link's target from the tar (it must equal the index's), and never
writes through a link already on disk. So what archive accepts, restore restores, and a
tampered index or tar cannot make restore write anywhere else.

Here: ``archive``. The index and that rule are in ``runner.projects.archived``; ``restore``
is in ``runner.projects.restore`` (and importable from here, as ``runner.api`` does).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from runner.errors import OrchError, UsageError
from runner.projects.archived import (
    ARCHIVE_DIR,
    INDEX_VERSION,
    archive_dir,
    check_entries,
    links_on_disk,
    read_index,
    under,
    unknown_project,
    workflows_of,
)
from runner.projects.restore import restore  # noqa: F401 - api and library callers take it from here

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.workspace import Repo


# --------------------------------------------------------------------------- archive


def archive(repo: Repo, name: str) -> dict[str, Any]:
    """Pack project ``name`` into ``.orch/archive/`` and remove it from the work tree.

    Refuses, before touching anything, when that would take more than the project (another
    project's folder or documents), leave the other manifests invalid, or pull files from
    under a running step. The archive is read back and checked before any file is removed.
    """
    m = repo.manifests()
    p, d = _archivable(repo, m, name)
    root = repo.root
    own = {p.path} | {w.path for w in m.workflows.values() if w.project == name}
    _check_documents(repo, m, name, d, own)
    entries = _walk(root, d)
    outside = sorted(f for f in own if not under(f, d))
    for f in outside:
        entries.append(_entry(root, f))
    problem = check_entries(entries, d) or links_on_disk(root, entries)
    if problem:
        raise OrchError(f"project '{name}' not archived, nothing was changed: {problem}")
    _check_remaining(repo, m, {e["path"] for e in entries if e["type"] != "dir"}, name)
    workflows = workflows_of(m, name)
    _check_not_running(repo, workflows, name)

    adir = archive_dir(repo)
    adir.mkdir(parents=True, exist_ok=True)
    tar_path, idx_path = adir / f"{name}.tar.gz", adir / f"{name}.json"
    index = {
        "version": INDEX_VERSION,
        "name": name,
        "archived_at": time.time(),
        "dir": d,
        "manifest": p.path,
        "template": p.template,
        "description": p.description,
        "workflows": workflows,
        "environments": sorted(p.environments),
        "milestones": [ms.name for ms in p.milestones],
        "entries": entries,
    }
    _pack(root, adir, name, tar_path, entries)
    _atomic_json(idx_path, index)  # from here on the project is archived
    leftovers = _remove(root, entries)
    files = [e for e in entries if e["type"] == "file"]
    return {
        "name": name,
        "archive": f"{repo.prefix}{ARCHIVE_DIR}/{name}.tar.gz",
        "index": f"{repo.prefix}{ARCHIVE_DIR}/{name}.json",
        "dir": d,
        "files": len(files),
        "bytes": sum(e["size"] for e in files),
        "archive_bytes": tar_path.stat().st_size,
        "workflows": workflows,
        "not_removed": leftovers,
    }


def _archivable(repo: Repo, m: Manifests, name: str) -> tuple[Any, str]:
    """(the project, its folder relative to the root) when project ``name`` may be
    archived: known, not archived already, in a folder of its own that holds no other
    project. UsageError or OrchError (one line, what to do) otherwise."""
    p = m.projects.get(name)
    if p is None:
        if read_index(repo, name) is not None:
            raise UsageError(f"project '{name}' is already archived (orch project restore {name})")
        raise unknown_project(repo, m, name)
    if (archive_dir(repo) / f"{name}.json").exists():
        raise UsageError(
            f"{ARCHIVE_DIR}/{name}.json already exists: an older archive of '{name}' "
            "(restore it, or move it away)"
        )
    root = repo.root
    d = p.dir.strip("/")
    if d in ("", "."):
        raise OrchError(
            f"project '{name}' lives at the repository root; only a project in its own folder "
            "can be archived"
        )
    pdir = root / d
    if pdir.is_symlink() or not pdir.is_dir():
        raise OrchError(f"project '{name}': its folder {repo.prefix}{d}/ does not exist")
    for q in m.projects.values():
        if q.name != name and (q.dir == d or q.dir.startswith(d + "/")):
            raise OrchError(
                f"project '{name}' holds project '{q.name}' ({q.dir}/); archive or move that first"
            )
    return p, d


def _check_documents(repo: Repo, m: Manifests, name: str, d: str, own: set[str]) -> None:
    """OrchError when a manifest file the archive would take (``own``, or one under
    ``d``) also holds a document of something other than project ``name``."""
    for (f, _), doc in sorted(m.documents.items()):
        if f in own or under(f, d):
            kind = doc.data.get("kind")
            meta = doc.data.get("metadata") or {}
            mine = (kind == "Project" and meta.get("name") == name) or (
                kind == "Workflow" and meta.get("project") == name
            )
            if not mine:
                raise OrchError(
                    f"{repo.prefix}{f} also holds {kind} '{meta.get('name')}', which is not part "
                    f"of project '{name}'; move it out first (or set its metadata.project: {name})"
                )


def _pack(root: Path, adir: Path, name: str, tar_path: Path, entries: list[dict[str, Any]]) -> None:
    """Write ``entries`` to ``tar_path`` through a temporary file, read back and checked
    before it takes the name: a crash leaves no half archive."""
    tmp_tar = adir / f".{name}.tar.gz.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        _write_tar(root, tmp_tar, entries)
        _verify_tar(tmp_tar, entries)
        os.replace(tmp_tar, tar_path)
    finally:
        tmp_tar.unlink(missing_ok=True)


def _walk(root: Path, d: str) -> list[dict[str, Any]]:
    """Every entry under ``root/d`` (itself included), parents before children."""
    out = [_entry(root, d)]
    for dirpath, dirnames, filenames in os.walk(root / d):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for n in (".git", ".orch"):
            if n in dirnames or n in filenames:
                raise OrchError(
                    f"{rel_dir}/{n}: the project's folder holds a repository of its own; "
                    "orch will not archive it"
                )
        dirnames.sort()
        for n in [*dirnames, *sorted(filenames)]:
            out.append(_entry(root, f"{rel_dir}/{n}"))
        dirnames[:] = [n for n in dirnames if not (Path(dirpath) / n).is_symlink()]
    return sorted(out, key=lambda e: e["path"])


def _entry(root: Path, rel: str) -> dict[str, Any]:
    st = os.lstat(root / rel)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return {"path": rel, "type": "symlink", "mode": mode, "target": os.readlink(root / rel)}
    if stat.S_ISDIR(st.st_mode):
        return {"path": rel, "type": "dir", "mode": mode}
    if stat.S_ISREG(st.st_mode):
        # size and sha256 are filled in as the file is packed, from the bytes packed
        return {"path": rel, "type": "file", "mode": mode, "size": 0, "sha256": ""}
    raise OrchError(f"{rel}: not a file, folder or symlink; orch will not archive it")


def _check_remaining(repo: Repo, m: Manifests, gone: set[str], name: str) -> None:
    """The manifests left behind must still validate (no quota or milestone left dangling)."""
    from runner.manifests.load import load_texts
    from runner.manifests.yamlsrc import read_file

    texts = {}
    for f in m.files:
        if f in gone:
            continue
        try:
            text, _ = read_file(repo.root / f, f)
        except OSError:
            continue
        if text is not None:
            texts[f] = text
    try:
        load_texts(repo.root, m.config, texts, repo.prefix)
    except OrchError as e:
        raise OrchError(
            f"project '{name}' not archived: the manifests left behind would not validate",
            diagnostics=e.diagnostics,
        ) from None


def _check_not_running(repo: Repo, workflows: list[str], name: str) -> None:
    if not workflows or not (repo.orch_dir / "state.db").exists():
        return
    from runner.store import reads
    from runner.workspace import open_state

    state = open_state(repo)
    try:
        state.reap_dead_runs()
        busy = reads.running_steps(state, workflows)
    finally:
        state.close()
    if busy:
        running = ", ".join(f"{w}/{s}" for w, s in busy)
        raise OrchError(f"project '{name}' not archived: {running} is running")


class _Hashing:
    """A file reader that hashes what tarfile reads, so the index describes the packed bytes."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


def _write_tar(root: Path, path: Path, entries: list[dict[str, Any]]) -> None:
    import tarfile

    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            full = root / e["path"]
            st = os.lstat(full)
            info = tarfile.TarInfo(e["path"])
            info.mode = e["mode"]
            info.mtime = st.st_mtime
            if e["type"] == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e["type"] == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e["target"]
                tar.addfile(info)
            else:
                with open(full, "rb") as fh:
                    info.size = os.fstat(fh.fileno()).st_size
                    reader = _Hashing(fh)
                    tar.addfile(info, reader)  # type: ignore[arg-type]
                if reader.size != info.size:
                    raise OrchError(f"{e['path']}: changed while being archived; try again")
                e["size"], e["sha256"] = info.size, reader.sha.hexdigest()
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _verify_tar(path: Path, entries: list[dict[str, Any]]) -> None:
    """Read the archive back before any file is removed: every entry, every hash."""
    import tarfile

    want = {e["path"]: e for e in entries}
    seen = set()
    with tarfile.open(path, "r:gz") as tar:
        for info in tar:
            e = want.get(info.name)
            if e is None:
                raise OrchError(f"{path}: unexpected entry {info.name}; nothing was removed")
            seen.add(info.name)
            if e["type"] == "file":
                fh = tar.extractfile(info)
                digest = hashlib.sha256(fh.read() if fh else b"").hexdigest()
                if digest != e["sha256"]:
                    raise OrchError(f"{path}: {info.name} did not pack intact; nothing was removed")
    if seen != set(want):
        raise OrchError(f"{path}: entries missing from the archive; nothing was removed")


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    from runner.fsutil import atomic_write

    atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n", durable=True)


def _remove(root: Path, entries: list[dict[str, Any]]) -> list[str]:
    """Remove the archived entries, deepest first; returns what could not be removed."""
    left = []
    for e in sorted(entries, key=lambda e: e["path"], reverse=True):
        full = root / e["path"]
        try:
            if e["type"] == "dir":
                full.rmdir()
            else:
                full.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            left.append(e["path"])
    return left
