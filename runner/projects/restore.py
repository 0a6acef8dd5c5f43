"""Restore an archived project (see ``runner.projects.archive`` for the archive and the rule
both sides apply): unpack into a temp folder with tarfile's ``data`` filter, check every
entry against the index, then move the files back, never over an existing file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import OrchError, UsageError, did_you_mean
from runner.projects.archived import (
    ARCHIVE_DIR,
    archive_dir,
    archived_names,
    check_entries,
    link_stays_inside,
    links_on_disk,
    read_index,
)

if TYPE_CHECKING:
    from runner.workspace import Repo


def restore(repo: Repo, name: str) -> dict[str, Any]:
    """Put an archived project's files back, byte for byte, and drop the archive.

    Nothing is written unless every file in the archive matches the index and none of them
    would land on an existing file (a file already there with the same bytes is fine).
    """
    idx = read_index(repo, name)
    try:
        m = repo.manifests()
    except OrchError:
        m = None
    if idx is None:
        if m is not None and name in m.projects:
            raise UsageError(f"project '{name}' is not archived")
        known = archived_names(repo)
        hint = did_you_mean(name, known) or (
            f"archived: {', '.join(known)}" if known else "none is archived"
        )
        raise OrchError(f"no archived project named '{name}' ({hint})")
    if m is not None and name in m.projects:
        where = m.projects[name].loc
        raise OrchError(
            f"a project named '{name}' exists again ({repo.prefix}{where.path}:{where.line}); "
            "rename or archive it first"
        )
    root = repo.root
    tar_path = archive_dir(repo) / f"{name}.tar.gz"
    if not tar_path.is_file():
        raise OrchError(f"{ARCHIVE_DIR}/{name}.tar.gz is missing; the index alone cannot restore")
    entries: list[dict[str, Any]] = idx.get("entries") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise OrchError(f"{ARCHIVE_DIR}/{name}.json: not an archive index this orch can read")
    for e in entries:
        _safe_rel(e.get("path", ""), name)
    d = idx.get("dir")
    if not isinstance(d, str):
        raise OrchError(f"{ARCHIVE_DIR}/{name}.json: not an archive index this orch can read")
    _safe_rel(d, name)
    problem = check_entries(entries, d) or links_on_disk(root, entries)
    if problem:
        raise OrchError(
            f"{ARCHIVE_DIR}/{name}: cannot be unpacked safely, nothing was written: {problem}"
        )
    todo, present, conflicts = [], [], []
    for e in entries:
        full = root / e["path"]
        if not os.path.lexists(full):
            todo.append(e)
        elif _already_there(full, e):
            present.append(e)
        else:
            conflicts.append(repo.prefix + e["path"])
    if conflicts:
        raise OrchError(
            f"project '{name}' not restored, nothing was written: "
            f"{len(conflicts)} path{'s' if len(conflicts) != 1 else ''} in the way "
            "(orch never overwrites):\n  " + "\n  ".join(conflicts)
        )
    tmp = Path(_mkdtemp(repo))
    import shutil

    try:
        _extract(tar_path, tmp, entries)
        _place(root, tmp, todo)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tar_path.unlink()
    (archive_dir(repo) / f"{name}.json").unlink()
    files = [e for e in entries if e["type"] == "file"]
    return {
        "name": name,
        "dir": idx.get("dir"),
        "files": len(files),
        "bytes": sum(e["size"] for e in files),
        "already_there": [e["path"] for e in present if e["type"] != "dir"],
        "workflows": idx.get("workflows", []),
    }


def _already_there(full: Path, e: dict[str, Any]) -> bool:
    """An existing path that is exactly the entry (a re-run after a half-finished restore)."""
    if full.is_symlink():
        return e["type"] == "symlink" and os.readlink(full) == e["target"]
    if e["type"] == "dir":
        return full.is_dir()
    return e["type"] == "file" and full.is_file() and _sha(full) == e["sha256"]


def _safe_rel(rel: str, name: str) -> None:
    from runner.manifests import paths

    try:
        j = paths.join("", rel)
    except paths.PathEscape:
        j = ""
    if not j or j != rel or any(part in (".git", ".orch") for part in j.split("/")):
        raise OrchError(f"{ARCHIVE_DIR}/{name}.json: refusing the unsafe path {rel!r}")


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mkdtemp(repo: Repo) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=".restore-", dir=archive_dir(repo))


def _extract(tar_path: Path, dest: Path, entries: list[dict[str, Any]]) -> None:
    """Unpack into ``dest`` and check it against the index, entry for entry."""
    import tarfile

    try:
        _unpack(tar_path, dest, entries)
    except (tarfile.TarError, OSError, EOFError) as e:  # FilterError included: a path or link out
        raise OrchError(
            f"{tar_path}: cannot be unpacked safely: {e}; nothing was restored"
        ) from None
    for e in entries:
        if e["type"] == "file" and _sha(dest / e["path"]) != e["sha256"]:
            raise OrchError(
                f"{tar_path}: {e['path']} does not match its hash; nothing was restored"
            )


def _unpack(tar_path: Path, dest: Path, entries: list[dict[str, Any]]) -> None:
    import tarfile

    want = {e["path"]: e for e in entries}
    with tarfile.open(tar_path, "r:gz") as tar:
        members = tar.getmembers()
        names = [mm.name for mm in members]
        if sorted(names) != sorted(want):
            raise OrchError(f"{tar_path}: does not match its index; nothing was restored")
        for mm in members:
            e = want[mm.name]
            kind = "dir" if mm.isdir() else "symlink" if mm.issym() else "file"
            if not (mm.isdir() or mm.issym() or mm.isreg()):
                kind = "special file"
            if kind != e["type"]:
                raise OrchError(f"{tar_path}: {mm.name} is a {kind}, the index says {e['type']}")
            if mm.issym() and mm.linkname != e.get("target"):
                raise OrchError(
                    f"{tar_path}: {mm.name} links to {mm.linkname!r} in the archive but to"
                    f" {e.get('target')!r} in the index; nothing was restored"
                )
            if mm.issym() and not link_stays_inside(mm.name, mm.linkname):
                raise OrchError(
                    f"{tar_path}: cannot be unpacked safely: {mm.name} links outside the"
                    f" repository ({mm.linkname}); nothing was restored"
                )
        # links are placed by _place from the checked targets; nothing is unpacked through one
        plain = [mm for mm in members if not mm.issym()]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=plain, filter="data")
        else:  # pragma: no cover - Pythons before the extraction filters (3.10.11 and older)
            tar.extractall(dest, members=plain)  # noqa: S202 - names checked by check_entries


def _place(root: Path, tmp: Path, todo: list[dict[str, Any]]) -> None:
    """Move entries from ``tmp`` into the work tree; never over a file; all or nothing."""
    placed: list[tuple[Path, str]] = []
    try:
        for e in sorted(todo, key=lambda e: e["path"]):
            final = root / e["path"]
            for parent in reversed(Path(e["path"]).parents):
                d = root / parent
                if str(parent) == ".":
                    continue
                if d.is_symlink():  # appeared since the check: never write through it
                    raise OrchError(f"{parent} became a symlink; nothing was restored")
                if not d.exists():
                    d.mkdir()
                    placed.append((d, "dir"))
            if e["type"] == "dir":
                final.mkdir()
                placed.append((final, "dir"))
            elif e["type"] == "symlink":
                os.symlink(e["target"], final)
                placed.append((final, "file"))
            else:
                src = tmp / e["path"]
                try:
                    os.link(src, final)  # fails rather than replace a file that appeared
                    placed.append((final, "file"))
                except FileExistsError:
                    raise
                except OSError:
                    import shutil

                    with open(src, "rb") as fi, open(final, "xb") as fo:
                        placed.append((final, "file"))  # ours: a failed copy is undone
                        shutil.copyfileobj(fi, fo)
                    st = os.stat(src)
                    os.utime(final, ns=(st.st_atime_ns, st.st_mtime_ns))
                os.chmod(final, restored_mode(e["mode"]))
        for e in todo:
            if e["type"] == "dir":
                os.chmod(root / e["path"], restored_mode(e["mode"]))
    except BaseException:
        for p, kind in reversed(placed):
            with contextlib.suppress(OSError):
                p.rmdir() if kind == "dir" else p.unlink()
        raise


def restored_mode(mode: int) -> int:
    """The mode restore gives an entry: the index's, without set-user-ID, set-group-ID,
    sticky and write-by-others bits. The index is untrusted input (a tampered one made a
    restored file set-user-ID and writable by all); Python's ``tarfile`` ``data`` filter
    drops the same bits (PEP 706), and write by the group too, which orch keeps for
    repositories shared by a group (umask 002)."""
    return mode & 0o775
