"""The content-addressed result cache: a step's outputs (files, folders, modes and output
values) kept by a key made from its fingerprint, so a fingerprint seen before is restored,
not run again (DVC's run-cache, Bazel's action cache).

Layout under the store's location (``.orch/cache/results/`` by default, a shared folder
with ``cache: {dir: PATH}``, or an fsspec URL with ``cache: {remote: URL}``)::

    blobs/ab/ab12...        file contents, once each, named by their BLAKE2b-128 hash;
                            read-only (0444): nothing writes a blob in place
    blobs/ab/ab12....x      the same for an executable file's contents (0555), so a
                            hard link to it restores the x bits too
    entries/cd/cd34....json one entry per key: outputs (paths, blob, mode, size), output
                            values, meta (when, where), ``format``
    tmp/                    writes in progress (temp + rename: a reader never sees half)

Trust: ``put`` copies each file into a temp blob while hashing it and refuses (returns
False) when the file changed while it was read, or is a symlink or not a regular file;
``restore`` stages every file of the entry beside the work tree while hashing what it
copies, and only when every hash matches swaps the outputs into place, all or nothing
(``staging.swap_all``: what is in the way moved aside first, put back when a rename
fails) -- a corrupted or missing blob, or a swap that fails partway, is a miss with one
warning, never a half-restored step.

Restoring copies by default (a reflink where the file system makes one, ``FICLONE``), so a
later in-place edit of the work-tree file can never reach the cache. ``link: hardlink``
hard-links blobs into place instead (same device only, else a copy), as DVC's
``cache.type: hardlink`` does: the restored file then has the blob's mode, the stored
mode less its write bits (0444, or 0555 for an executable file: the x bits, which the
file's hash covers, come back as stored), and a file whose mode no blob has (0600, 0750)
is copied with its own mode instead; an in-place write to a link (possible for root)
damages the blob, which the next restore finds by its hash and drops, and a blob
chmodded since is copied from, never linked. Never a symlink into the cache.

Two processes putting one key at once each write whole temp files and rename them; the
last rename wins and both entries are complete. A local store's ``gc``/``clear`` take an
exclusive ``flock`` on ``lock`` and ``put`` a shared one, so a sweep never removes a blob
an entry being written relies on.

Keys are hashes (``result_key``) and carry nothing of what they were made from; secrets
reach a fingerprint only through keyed digests (``runner.masking``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.digests import digest
from runner.store.backends import CHUNK, Backend, Local, Remote, hash_path
from runner.store.result_entries import files_of, well_formed
from runner.store.staging import Staging, SwapFailed, discard, swap_all

FORMAT = 1
DEFAULT_DIR = ".orch/cache/results"
LINK_MODES = ("copy", "hardlink")


def result_key(fingerprint: str) -> str:
    """The cache key of a step whose fingerprint is ``fingerprint`` (a digest already):
    another digest over it, versioned, so a key never shows what it was made from."""
    return digest("orch-result", str(FORMAT), fingerprint)


@dataclass(frozen=True)
class CacheSetting:
    """The ``cache:`` setting: ``enabled`` (``cache: false`` turns it off), ``dir`` (a
    folder, relative to the repository root or absolute), ``remote`` (an fsspec URL),
    ``max_size`` (bytes; gc'd to it after a run; None: unbounded), ``link`` (``copy`` or
    ``hardlink``)."""

    enabled: bool = True
    dir: str | None = None
    remote: str | None = None
    max_size: int | None = None
    link: str = "copy"

    @classmethod
    def of(cls, setting: Any) -> CacheSetting:
        """From what a manifest holds: None/True (defaults), False, a mapping, or one."""
        if isinstance(setting, CacheSetting):
            return setting
        if setting is None or setting is True:
            return cls()
        if setting is False:
            return cls(enabled=False)
        if isinstance(setting, dict):
            known = {k: setting.get(k) for k in ("enabled", "dir", "remote", "max_size", "link")}
            return cls(**{k: v for k, v in known.items() if v is not None})
        raise TypeError(f"cache: expected true, false or a mapping, got {setting!r}")


@dataclass(frozen=True)
class CacheEntry:
    """One stored result: ``key``, ``created``/``last_used`` (unix seconds; a hit bumps
    ``last_used``), ``size`` (bytes of the blobs it references), ``files`` (how many)."""

    key: str
    created: float
    last_used: float
    size: int
    files: int


@dataclass(frozen=True)
class StoredResult:
    """An entry as ``get`` reads it: its ``entry``, output ``values``, ``meta`` (what the
    writer said of itself: workflow, step, origin), the store's ``location`` and its
    ``outputs`` as ``put`` wrote them (``{"path", "kind", ...}``, see
    ``result_entries.files_of``): what a restore will bring back, which the plan reads to
    decide the steps downstream (``reconcile.predict``)."""

    entry: CacheEntry
    values: dict[str, str]
    meta: dict[str, Any]
    location: str
    outputs: tuple[dict[str, Any], ...] = ()

    @property
    def where(self) -> str:
        """``<when>, <origin or location>`` for a plan reason: ``2026-12-01 02:40 UTC
        (.orch/cache/results)``."""
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.entry.created))
        return f"{when} ({self.meta.get('origin') or self.location})"


class Refused(Exception):
    """What ``put`` will not store (a symlink, a special file, a file changed while read)."""


def _warn_stderr(message: str) -> None:
    print(f"orch: warning: {message}", file=sys.stderr)


class ResultStore:
    """A result cache at ``location`` (a folder path, or an fsspec URL for messages).

    ``warn`` says one line per problem (a corrupted blob); the default prints
    ``orch: warning: ...`` on stderr. ``counters``: the file where hits and misses are
    tallied (one byte each, appended), beside the store unless it is remote."""

    def __init__(
        self,
        backend: Backend,
        *,
        link: str = "copy",
        counters: Path | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._b = backend
        self.location = backend.location
        self.link = link if link in LINK_MODES else "copy"
        self._counters = counters
        self.warn = warn or _warn_stderr
        self._warned_entries: set[str] = set()
        self._put_warned = False  # a write error said once (``_warn_unwritable``)
        self._env_key: bytes | None = None
        self._read: dict[str, dict[str, Any]] = {}  # entries ``get`` read, for ``restore``
        self._staging = Staging()
        self._tally: int | None = None  # the counters file, open for appending
        self._tally_lock = threading.Lock()

    def close(self) -> None:
        """Remove the staging folders restores made and close the counters file. An apply
        closes its store when it ends, however it ends; a store used again after ``close``
        makes what it needs anew."""
        self._staging.close()
        self._read.clear()
        with self._tally_lock:
            fd, self._tally = self._tally, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def env_key(self) -> bytes:
        """The store's own random key (``key``, 32 bytes, made on first use) for keyed
        digests of environment values in cache keys: clones that share the store share
        it, where each clone's ``.orch/`` key differs. None of a declared secret's value is
        ever digested with it (``reconcile.restore``)."""
        if self._env_key is None:
            key = self._b.read("key")
            if key is None or len(key) != 32:
                self._b.create("key", os.urandom(32))
                key = self._b.read("key")
            if key is None or len(key) != 32:
                raise OSError("the result cache's key cannot be read")
            self._env_key = key
        return self._env_key

    # ---- reading ----------------------------------------------------------------------

    def get(self, key: str) -> StoredResult | None:
        """The entry stored under ``key`` (no blob is read or verified), or None."""
        data = self._entry_data(key)
        if data is None:
            return None
        self._read[key] = data  # a plan reads it, the apply restores it: read once
        return StoredResult(
            entry=self._entry_of(key, data),
            values=dict(data.get("values") or {}),
            meta=dict(data.get("meta") or {}),
            location=self.location,
            outputs=tuple(data["outputs"]),
        )

    def blob(self, blob: str, executable: bool = False) -> bytes | None:
        """The bytes of the blob named ``blob`` (its hash) as stored for an executable
        file or not (either copy where that one is missing: the bytes are the same),
        unverified, or None when neither is there."""
        for exe in (executable, not executable):
            data = self._b.read(_blob_rel(blob, exe))
            if data is not None:
                return data
        return None

    def _entry_data(self, key: str, bad: list[str] | None = None) -> dict[str, Any] | None:
        """The entry under ``key``, or None: missing, or unreadable (``_parse_entry``),
        which is a miss with one warning per entry, or, given ``bad``, its key added
        there instead (``gc`` drops such entries)."""
        raw = self._b.read(_entry_rel(key))
        if raw is None:
            return None
        data, why = _parse_entry(raw, key)
        if data is None:
            if bad is not None:
                bad.append(key)
            else:
                self._warn_bad_entry(key, why)
        return data

    def _warn_bad_entry(self, key: str, why: str) -> None:
        """One warning per unreadable entry and process (a plan's look-up and the restore
        after it read the same entry): which file, and what to do about it."""
        if key in self._warned_entries:
            return
        self._warned_entries.add(key)
        self.warn(
            f"result cache entry {self.location.rstrip('/')}/{_entry_rel(key)} {why};"
            " counted as a miss (the step runs): drop it with orch cache gc, or orch cache clear"
        )

    def _entry_of(self, key: str, data: dict[str, Any]) -> CacheEntry:
        blobs = {f[1]: f[3] for o in data["outputs"] for f in files_of(o)}
        created = float(data.get("created", 0.0))
        used = self._b.mtime(_entry_rel(key))
        return CacheEntry(
            key=key,
            created=created,
            last_used=created if used is None else used,
            size=sum(blobs.values()),
            files=sum(len(files_of(o)) for o in data["outputs"]),
        )

    def entries(self, bad: list[str] | None = None) -> list[CacheEntry]:
        """Every readable entry, least recently used first (the keys of unreadable ones
        go to ``bad`` if given, else each is one warning)."""
        out = []
        for rel in self._b.list("entries"):
            key = rel.rsplit("/", 1)[-1].removesuffix(".json")
            data = self._entry_data(key, bad) if rel.endswith(".json") else None
            if data is not None:
                out.append(self._entry_of(key, data))
        out.sort(key=lambda e: (e.last_used, e.key))
        return out

    def stats(self) -> dict[str, int]:
        """``{"entries", "bytes" (of all blobs), "hits", "misses"}``."""
        hits = misses = 0
        if self._counters is not None:
            with contextlib.suppress(OSError):
                tally = self._counters.read_bytes()
                hits, misses = tally.count(b"h"), tally.count(b"m")
        return {
            "entries": len(self.entries()),
            "bytes": sum(self._b.size(r) for r in self._b.list("blobs")),
            "hits": hits,
            "misses": misses,
        }

    def _count(self, what: bytes) -> None:
        """Tally a hit or a miss: one byte appended (``O_APPEND``: processes sharing the
        store never overwrite each other's), the file opened once per store."""
        if self._counters is None:
            return
        with contextlib.suppress(OSError), self._tally_lock:
            if self._tally is None:
                self._counters.parent.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                self._tally = os.open(self._counters, flags, 0o644)
            os.write(self._tally, what)

    # ---- writing ----------------------------------------------------------------------

    def put(
        self,
        key: str,
        *,
        root: Path,
        files: list[str],
        values: dict[str, str],
        meta: dict[str, Any],
        written_before: float | None = None,
    ) -> bool:
        """Store the outputs ``files`` (repo-relative paths under ``root``, each a file or
        a folder) and output ``values`` under ``key``; atomic. False (nothing stored, no
        error) when an output is missing, a symlink or special file, changed while it was
        read, was modified after ``written_before`` (unix seconds: when the task that made
        it ended), or the store cannot be written. Safe to call from several threads at
        once (an apply stores each success in its task's worker thread)."""
        try:
            with self._b.locked(exclusive=False):
                outputs = [
                    self._put_output(root, rel, written_before) for rel in sorted(set(files))
                ]
                data = {
                    "format": FORMAT,
                    "key": key,
                    "created": time.time(),
                    "outputs": outputs,
                    "values": dict(values),
                    "meta": dict(meta),
                }
                body = json.dumps(data, sort_keys=True, separators=(",", ":"))
                self._b.write(_entry_rel(key), body.encode())
        except OSError as e:
            self._warn_unwritable(e)
            return False
        except (Refused, ValueError):
            return False
        return True

    def _warn_unwritable(self, e: OSError) -> None:
        """One warning per store for an error writing it (its folder a file, a full
        disk, no permission): every later result would be lost the same way, silently.
        An output that cannot be read (gone, a race) is not the store's: no warning."""
        ours = str(getattr(self._b, "path", "\0"))
        if e.filename is not None and not str(e.filename).startswith(ours):
            return
        with self._tally_lock:
            if self._put_warned:
                return
            self._put_warned = True
        self.warn(
            f"result cache {self.location} cannot be written: {e.strerror or e}; results"
            " are not stored (make it a folder orch can write, or set cache: false)"
        )

    def _put_output(self, root: Path, rel: str, before: float | None) -> dict[str, Any]:
        full = os.path.join(root, rel)
        st = os.lstat(full)
        if stat.S_ISDIR(st.st_mode):
            dirs: list[str] = []
            found: list[list[Any]] = []
            for sub, is_dir in _walk(full):
                if is_dir:
                    dirs.append(sub)
                else:
                    found.append(self._put_file(os.path.join(full, sub), sub, before))
            return {"path": rel, "kind": "dir", "mode": st.st_mode & 0o7777, "dirs": dirs,
                    "files": found}  # fmt: skip
        blob, mode, size = self._put_file(full, "", before)[1:]
        return {"path": rel, "kind": "file", "blob": blob, "mode": mode, "size": size}

    def _put_file(self, full: str, sub: str, ended: float | None) -> list[Any]:
        """``[sub, blob hash, mode, size]`` of the regular file ``full``, its bytes stored;
        Refused when it was modified after ``ended`` (None: whenever)."""
        before = os.lstat(full)
        if not stat.S_ISREG(before.st_mode):
            raise Refused(f"{full}: not a regular file")
        if ended is not None and before.st_mtime > ended:
            raise Refused(f"{full}: modified after its task ended")
        h = hashlib.blake2b(digest_size=16)
        with open(full, "rb") as f, self._b.temp() as (tmp, out):
            while chunk := f.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
            out.close()
            after = os.fstat(f.fileno())
            if _changed(before, after):
                raise Refused(f"{full}: changed while it was stored")
            exe = _executable(before.st_mode)
            self._b.commit_blob(tmp, _blob_rel(h.hexdigest(), exe), BLOB_MODES[exe])
        return [sub, h.hexdigest(), before.st_mode & 0o7777, before.st_size]

    # ---- restoring --------------------------------------------------------------------

    def restore(
        self, key: str, root: Path, paths: list[str] | None = None, dirs: Iterable[str] = ()
    ) -> dict[str, str] | None:
        """Put the outputs stored under ``key`` in place under ``root`` and return their
        output values; None on a miss. ``paths``: the outputs the step declares (as
        ``put`` was given them); an entry naming others is a miss with a warning, and so
        is one holding an output of the other kind (``dirs``: those of ``paths`` declared
        as folders, ``dist/``; the others are files). Every
        file is staged (in the store's staging folder, ``runner.store.staging``) and its
        hash verified as it is copied, before the
        first output is replaced; a missing or corrupted blob is a miss with one warning
        (the bad blob is dropped, so the next success stores it again), and so is a
        staging copy that cannot be written (a full disk): nothing of it stays staged. The
        outputs are swapped in all or nothing (``staging.swap_all``): a rename that fails
        partway (a disk, a permission, a race) undoes the others, a miss with one warning
        naming the output."""
        data = self._read.pop(key, None) or self._entry_data(key)
        if data is None:
            self._count(b"m")
            return None
        outputs = data["outputs"]
        staged: list[Path] = []
        try:
            _check_paths(outputs, root, paths, set(dirs))
            stage = self._staging.folder(root)
            staged = [self._staging.name(stage) for _ in outputs]
            for o, path in zip(outputs, staged, strict=True):
                self._stage(o, path)
        except (_Corrupt, OSError) as e:
            discard(staged)
            why = e if isinstance(e, _Corrupt) else f"cannot stage: {e.strerror or e}"
            self.warn(f"result cache {self.location}: {why}; running the step instead")
            self._count(b"m")
            return None
        moves = [(path, root / o["path"]) for o, path in zip(outputs, staged, strict=True)]
        try:
            swap_all(moves, lambda: self._staging.name(stage, "aside"))
        except SwapFailed as e:  # checked before (_check_paths): a race, a disk; undone
            discard(staged)
            self._count(b"m")
            self.warn(e.warning(self.location, outputs[e.index]["path"]))
            if e.stranded:
                self._staging.keep(stage)
            return None
        self._b.touch(_entry_rel(key))
        self._count(b"h")
        return dict(data.get("values") or {})

    def _stage(self, output: dict[str, Any], target: Path) -> None:
        if output.get("kind") == "dir":
            target.mkdir()
            for sub in output.get("dirs", []):
                (target / sub).mkdir(parents=True, exist_ok=True)
            for sub, blob, mode, _size in output.get("files", []):
                dest = target / sub
                dest.parent.mkdir(parents=True, exist_ok=True)
                self._stage_file(blob, mode, dest)
            os.chmod(target, int(output.get("mode", 0o755)) & 0o777 | 0o700)
        else:
            self._stage_file(output["blob"], output["mode"], target)

    def _stage_file(self, blob: str, mode: int, dest: Path) -> None:
        """Copy (or link) the blob to ``dest`` with the stored ``mode``, hashing the
        bytes as they are written. Under ``link: hardlink`` a link only where the blob's
        mode is ``mode`` less its write bits, else a copy chmodded to ``mode``: either
        way the file comes back with the mode stored, x bits and all (the copy for the
        other kind of file is used where this kind's is missing: an entry stored by an
        orch that kept one blob for both). A blob that cannot be read or does not hash
        to its name is _Corrupt (and dropped); ``dest`` that cannot be written raises
        OSError."""
        mode &= 0o777  # permission bits only: no setuid, setgid or sticky bit is restored
        exe = _executable(mode)
        for rel in (_blob_rel(blob, exe), _blob_rel(blob, not exe)):
            linked = self.link == "hardlink" and self._b.hardlink(rel, dest, mode & ~0o222)
            got = hash_path(dest) if linked else self._b.copy_out(rel, dest)
            if got == blob:
                break
            self._b.remove(rel)
            dest.unlink(missing_ok=True)
        else:
            raise _Corrupt(f"blob {blob} is corrupted or missing")
        if not linked:
            os.chmod(dest, mode)

    # ---- keeping it small -------------------------------------------------------------

    def gc(
        self, *, max_size: int | None = None, older_than: float | None = None
    ) -> tuple[int, int]:
        """Drop entries, least recently used first: those unused for ``older_than``
        seconds, then more until the blobs left take at most ``max_size`` bytes; then the
        blobs no entry references. Entries it cannot read (damaged, of another format)
        are dropped too: their blobs are swept as unreferenced anyway. Returns (entries
        removed, bytes freed)."""
        with self._b.locked(exclusive=True):
            unreadable: list[str] = []
            entries = self.entries(unreadable)
            blobs = {e.key: self._blob_sizes(e.key) for e in entries}
            refs: dict[str, int] = {}
            for sizes in blobs.values():
                for b in sizes:
                    refs[b] = refs.get(b, 0) + 1
            total = self._blob_bytes()
            now = time.time()
            drop: list[str] = unreadable
            for e in entries:  # least recently used first
                old = older_than is not None and now - e.last_used > older_than
                big = max_size is not None and total > max_size
                if not (old or big):
                    continue
                drop.append(e.key)
                for b, size in blobs[e.key].items():
                    refs[b] -= 1
                    total -= size if refs[b] == 0 else 0
            for key in drop:
                self._b.remove(_entry_rel(key))
            return len(drop), self._sweep(set(refs) - {b for b, n in refs.items() if n == 0})

    def _blob_sizes(self, key: str) -> dict[str, int]:
        data = self._entry_data(key)
        if data is None:
            return {}
        return {f[1]: int(f[3]) for o in data["outputs"] for f in files_of(o)}

    def _blob_bytes(self) -> int:
        return sum(self._b.size(r) for r in self._b.list("blobs"))

    def _sweep(self, used: set[str]) -> int:
        """Remove the blobs not in ``used``; the bytes freed."""
        freed = 0
        for rel in self._b.list("blobs"):  # an executable's copy goes with its hash
            if rel.rsplit("/", 1)[-1].removesuffix(".x") not in used:
                freed += self._b.size(rel)
                self._b.remove(rel)
        return freed

    def clear(self) -> int:
        """Remove every entry and blob; the number of entries removed."""
        with self._b.locked(exclusive=True):
            n = 0
            for rel in self._b.list("entries"):
                self._b.remove(rel)
                n += rel.endswith(".json")
            for rel in self._b.list("blobs"):
                self._b.remove(rel)
            return n


class _Corrupt(Exception):
    pass


_KIND = {"dir": "folder", "file": "file"}


def kind_mismatch(output: dict[str, Any], dirs: set[str] | frozenset[str]) -> bool:
    """Whether an entry's ``output`` is of another kind than the step declares: a file
    where ``dist/`` (in ``dirs``) names a folder. A folder stored for ``dist`` (no slash)
    is what such a step makes when it writes a folder there (hashing and recording take
    either kind), so it is not a mismatch: refusing it would make that step store an
    entry on every run that no restore could use."""
    return output["path"] in dirs and output.get("kind") != "dir"


def _check_paths(
    outputs: list[dict[str, Any]],
    root: Path,
    declared: list[str] | None = None,
    dirs: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Every path an entry names stays inside ``root`` (an entry is data from a shared,
    perhaps remote, store: ``../`` or a link in the way must not lead a restore out), and
    every output can be swapped into place: no folder it goes in is a file (or a special
    file) in the work tree. Checked before the first swap, so a restore that cannot finish
    never begins: the step runs instead (and says, as a task, what it makes of that file),
    rather than half the outputs being replaced.

    One ``lstat`` per folder between ``root`` and an output; only a symlink among them is
    resolved (its real path must be in the repository), as resolving every parent would
    cost a ``lstat`` per folder from ``/`` down, for each restore.

    ``declared``: the step's own outputs; the entry must hold exactly these (a writer of
    a shared store could list ``orch.yaml`` or a script among them)."""
    if declared is not None:
        names = [str(o["path"]) for o in outputs]
        for rel in sorted({n for n in names if names.count(n) > 1}):
            raise _Corrupt(f"entry names {rel!r} twice")
        for rel in sorted(set(names) - set(declared)):
            raise _Corrupt(f"entry names {rel!r}, not one of the step's outputs")
        for rel in sorted(set(declared) - set(names)):
            raise _Corrupt(f"entry lacks the step's output {rel!r}")
        for o in outputs:
            if kind_mismatch(o, dirs):
                raise _Corrupt(
                    f"entry holds {o['path']!r} as a {_KIND[o.get('kind')]}, the step's output is a {_KIND['dir' if o['path'] in dirs else 'file']}"
                )
    for o in outputs:
        subs = [f[0] for f in files_of(o) if f[0]] + list(o.get("dirs", []))
        for rel in [o["path"], *subs]:
            parts = str(rel).split("/")
            if not rel or str(rel).startswith("/") or ".." in parts or "" in parts:
                raise _Corrupt(f"entry names an unsafe path {rel!r}")
        if parts_hidden(o["path"]):
            raise _Corrupt(f"entry names an unsafe path {o['path']!r}")
        _check_parents(str(o["path"]), root)


def _check_parents(rel: str, root: Path) -> None:
    """The folders ``rel`` goes in, from ``root`` down: each a folder, a symlink to a
    folder in the repository, or missing (made when the output is swapped in)."""
    from runner import links

    full = str(root)
    for part in rel.split("/")[:-1]:
        full = os.path.join(full, part)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return  # and so is everything below it
        except OSError as e:
            raise _Corrupt(f"cannot restore {rel}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            if not links.inside(links.real_root(str(root)), os.path.realpath(full)):
                raise _Corrupt(f"{rel} leads outside the repository")
            if not os.path.isdir(full):
                raise _Corrupt(
                    f"cannot restore {rel}: {os.path.relpath(full, root)} is not a folder"
                )
        elif not stat.S_ISDIR(st.st_mode):
            raise _Corrupt(f"cannot restore {rel}: {os.path.relpath(full, root)} is not a folder")


def parts_hidden(rel: str) -> bool:
    """Whether ``rel`` lies in ``.git/`` or ``.orch/``, which no output may replace."""
    return rel.split("/", 1)[0] in (".git", ".orch")


def _parse_entry(raw: bytes, key: str) -> tuple[dict[str, Any] | None, str]:
    """(the entry, "") when ``raw`` is one ``put`` writes for ``key``, else (None, why
    not, as words after "entry FILE")."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None, "is not JSON (damaged)"
    if not isinstance(data, dict):
        return None, "is not a JSON object (damaged)"
    if data.get("format") != FORMAT:
        fmt = json.dumps(data.get("format"))[:20]  # escaped: one line, whatever it holds
        return None, f"has format {fmt}, not {FORMAT} (another orch version wrote it)"
    if data.get("key") != key:
        return None, "names another key (damaged or moved)"
    if not well_formed(data):
        return None, "has a shape orch does not write (damaged)"
    return data, ""


def _entry_rel(key: str) -> str:
    return f"entries/{key[:2]}/{key}.json"


# a blob's mode: read-only, and executable where the file was (so a hard link to it
# brings the x bits back); the mode of a file restored by hard link is its blob's
BLOB_MODES = {False: 0o444, True: 0o555}


def _executable(mode: int) -> bool:
    """Whether a file of ``mode`` is executable as git and the hasher count it (the
    owner may execute it): its blob is the 0555 one."""
    return bool(mode & stat.S_IXUSR)


def _blob_rel(blob: str, executable: bool = False) -> str:
    """Where the blob named ``blob`` lies: ``blobs/ab/ab12...``, and ``....x`` for the
    copy kept for executable files."""
    if len(blob) < 3 or not all(c in "0123456789abcdef" for c in blob):
        raise _Corrupt(f"bad blob name {blob!r}")
    return f"blobs/{blob[:2]}/{blob}{'.x' if executable else ''}"


def _changed(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino) != (b.st_size, b.st_mtime_ns, b.st_ino)


def _walk(top: str) -> Iterator[tuple[str, bool]]:
    """(relative path, is a folder) under ``top``, sorted, not following symlinks; a
    symlink or special file raises Refused (only files and folders are cached)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(top, rel) if rel else top) as it:
            items = sorted(it, key=lambda d: d.name)
        for d in items:
            sub = f"{rel}/{d.name}" if rel else d.name
            if d.is_symlink():
                raise Refused(f"{d.path}: a symlink")
            if d.is_dir(follow_symlinks=False):
                yield sub, True
                stack.append(sub)
            elif d.is_file(follow_symlinks=False):
                yield sub, False
            else:
                raise Refused(f"{d.path}: not a regular file")


class RemoteUnavailable(ImportError):
    """``cache.remote`` cannot be reached from here: fsspec, or the file system's own
    package, is not installed, or fsspec knows no such protocol. The message is one
    line that says what to install or change."""


def _remote(url: str) -> Remote:
    try:
        return Remote(url)
    except ImportError as e:
        if getattr(e, "name", None) == "fsspec":
            why = "needs fsspec: pip install 'orch-gitops[cache-remote]'"
        else:  # fsspec's own words: "Install s3fs to access S3"
            why = f"{e} (pip install the package it names)"
        raise RemoteUnavailable(f"cache.remote {url!r} {why}") from None
    except ValueError as e:  # fsspec: "Protocol not known: foo"
        raise RemoteUnavailable(
            f"cache.remote {url!r}: {e} (use file://, s3://, gs://, az:// or another fsspec"
            " protocol, or remove cache.remote)"
        ) from None


def _rooted(root: Path, url: str) -> str:
    """A ``file://`` URL with a relative path (``file://shared/cache``) taken relative to
    ``root``, as ``cache.dir`` is, and not to the process's current directory (which fsspec
    would use, so ``orch -C`` from elsewhere found another store); ``~`` expanded. Other
    URLs unchanged."""
    if not url.startswith("file://"):
        return url
    path = os.path.expanduser(url[len("file://") :])
    if os.path.isabs(path):
        return "file://" + path
    return "file://" + str(root / path)


def open_store(
    root: Path, setting: Any = None, *, warn: Callable[[str], None] | None = None
) -> ResultStore:
    """The result store the ``cache:`` setting names (a ``CacheSetting``, or what a
    manifest holds: None, a bool, a mapping): ``remote`` (an fsspec URL, a relative
    ``file://`` path taken relative to ``root``; raises
    RemoteUnavailable, an ImportError, without the ``cache-remote`` extra, without the
    file system's package, or for a protocol fsspec does not know), else ``dir`` (relative to ``root``,
    ``~`` expanded), else ``root/.orch/cache/results``. Opening touches nothing."""
    s = CacheSetting.of(setting)
    counters = root / ".orch" / "cache" / "results-counters"
    if s.remote:
        url = _rooted(root, s.remote)
        return ResultStore(_remote(url), link="copy", counters=counters, warn=warn)
    if s.dir:
        path = root / os.path.expanduser(s.dir)
        shown = s.dir
    else:
        path = root / DEFAULT_DIR
        shown = DEFAULT_DIR + "/"
    return ResultStore(Local(path, shown), link=s.link, counters=path / "counters", warn=warn)
