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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from runner.errors import OrchError, UsageError, did_you_mean

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


# --------------------------------------------------------------------------- archive


def archive(repo: Repo, name: str) -> dict[str, Any]:
    """Pack project ``name`` into ``.orch/archive/`` and remove it from the work tree.

    Refuses, before touching anything, when that would take more than the project (another
    project's folder or documents), leave the other manifests invalid, or pull files from
    under a running step. The archive is read back and checked before any file is removed.
    """
    m = repo.manifests()
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
    own = {p.path} | {w.path for w in m.workflows.values() if w.project == name}
    for (f, _), doc in sorted(m.documents.items()):
        if f in own or _under(f, d):
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
    entries = _walk(root, d)
    outside = sorted(f for f in own if not _under(f, d))
    for f in outside:
        entries.append(_entry(root, f))
    problem = check_entries(entries, d) or _links_on_disk(root, entries)
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
    tmp_tar = adir / f".{name}.tar.gz.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        _write_tar(root, tmp_tar, entries)
        _verify_tar(tmp_tar, entries)
        os.replace(tmp_tar, tar_path)
    finally:
        tmp_tar.unlink(missing_ok=True)
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


def _under(path: str, d: str) -> bool:
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
        if not _under(path, d) and not (kind == "file" and path.endswith((".yaml", ".yml"))):
            return f"{path} is neither in the project's folder {d}/ nor one of its manifests"
        if kind == "symlink" and not _link_stays_inside(path, e.get("target")):
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


def restored_mode(mode: int) -> int:
    """The mode restore gives an entry: the index's, without set-user-ID, set-group-ID,
    sticky and write-by-others bits. The index is untrusted input (a tampered one made a
    restored file set-user-ID and writable by all); Python's ``tarfile`` ``data`` filter
    drops the same bits (PEP 706), and write by the group too, which orch keeps for
    repositories shared by a group (umask 002)."""
    return mode & 0o775


def _link_stays_inside(path: str, target: Any) -> bool:
    """A link's target, read relative to the link's folder as the kernel would, stays in
    the repository (lexically: at restore time nothing else exists to look at)."""
    import posixpath

    if not isinstance(target, str) or not target or target.startswith("/") or "\0" in target:
        return False
    j = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return j != ".." and not j.startswith("../")


def _links_on_disk(root: Path, entries: list[dict[str, Any]]) -> str | None:
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


# --------------------------------------------------------------------------- restore


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
    problem = check_entries(entries, d) or _links_on_disk(root, entries)
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
            if mm.issym() and not _link_stays_inside(mm.name, mm.linkname):
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
                except FileExistsError:
                    raise
                except OSError:
                    import shutil

                    with open(src, "rb") as fi, open(final, "xb") as fo:
                        shutil.copyfileobj(fi, fo)
                    st = os.stat(src)
                    os.utime(final, ns=(st.st_atime_ns, st.st_mtime_ns))
                placed.append((final, "file"))
                os.chmod(final, restored_mode(e["mode"]))
        for e in todo:
            if e["type"] == "dir":
                os.chmod(root / e["path"], restored_mode(e["mode"]))
    except BaseException:
        for p, kind in reversed(placed):
            with contextlib.suppress(OSError):
                p.rmdir() if kind == "dir" else p.unlink()
        raise
