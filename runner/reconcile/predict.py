"""The plan downstream of a restore: what a step will find once its upstream steps are
restored from the result cache (issue #14).

A cache entry lists every file a restore brings back (path, blob hash, mode) and the step's
output values, so the plan need not wait for the restore to know what a step reading those
files will be decided on::

    A planned restore ─► Restored: {file: hash as the hasher will read it}, the outputs
                         it replaces whole, the record A will get (its result digest)
    B (reads A)        ─► decided again with A's files and record in place of the disk's
                         and the state's ─► its key ─► restore, up to date (early cutoff),
                         or run; as ``orch apply`` will then decide it

Terraform's plan says what apply will do; Bazel knows an action's outputs from the action
cache without fetching them. Where the plan cannot know what the hasher will read after the
restore, the step stays "may run" (upstream will restore), as before:

- an executable file whose blob cannot be read here or is larger than ``MAX_READ`` (the
  hash of an executable file covers its mode, so its bytes are hashed again; a restore,
  by copy or by hard link, brings the mode back as stored: ``ResultStore._stage_file``);
- a step whose own outputs lie in or around what a restore replaces;
- an input glob spelled as a path that the restore writes (the path wins over the glob).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from runner import globs, links
from runner.manifests.hashing import Hasher, bytes_hash
from runner.status import Action

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.reconcile.decide import StepDecision
    from runner.reconcile.restore import ResultCache
    from runner.reconcile.view import StepView
    from runner.store.state import StepRecord

# an executable file's bytes are read from the store to hash them with their mode; past
# this size the plan does not, and says "may run"
MAX_READ = 16 << 20


class Unknown(Exception):
    """What the hasher will read after a restore cannot be known from the entry."""


@dataclass(frozen=True)
class Restored:
    """What a planned restore leaves behind: ``files`` ({repo-relative file: hash as
    ``Hasher.file`` will read it}), ``roots`` (the outputs it replaces whole, literal,
    without a trailing "/") and ``record`` (the record the step will get: its output
    values and output hashes, hence the result digest downstream steps fingerprint)."""

    files: dict[str, str]
    roots: tuple[str, ...]
    record: StepRecord


def restored(cache: ResultCache, view: StepView, d: StepDecision) -> Restored | None:
    """What restoring ``d``'s step (planned ``restore``) will bring back, from its cache
    entry; None where the plan cannot know it (see the module's list)."""
    from runner.reconcile.restore import restored_record

    got = cache.held(cache.key(view, d.fields, d.inputs, d.upstream, d.fingerprint))
    if got is None:
        return None
    try:
        per_output = {o["path"]: _output_files(cache, o) for o in got.outputs}
    except Unknown:
        return None
    outs = {o: globs.literal(o).rstrip("/") for o in globs.split(list(view.outputs))[0]}
    if any(p not in per_output for p in outs.values()):
        return None  # an entry of another shape than the step's outputs: not knowable
    files = {f: h for fs in per_output.values() for f, h in fs.items()}
    output_files = {o: _output_hash(p, per_output[p], got.outputs) for o, p in outs.items()}
    rec = restored_record(d, "", dict(got.values), output_files, 0, 0.0, d.fields)
    return Restored(files, tuple(outs.values()), rec)


def _output_files(cache: ResultCache, output: dict[str, Any]) -> dict[str, str]:
    """{repo-relative file: hash after the restore} of one output of an entry."""
    from runner.store.result_entries import files_of

    top = output["path"].rstrip("/")
    out: dict[str, str] = {}
    for sub, blob, mode, size in files_of(output):
        rel = f"{top}/{sub}" if sub else top
        out[rel] = _file_hash(cache, blob, mode, size)
    return out


def _file_hash(cache: ResultCache, blob: str, mode: int, size: int) -> str:
    """The hash ``Hasher.file`` will read of a restored file: its blob's name (the same
    BLAKE2b-128 of the bytes) unless it is executable, whose hash covers the mode (a
    restore, by copy or hard link, gives the file its stored x bits)."""
    if not mode & stat.S_IXUSR:
        return blob
    if size > MAX_READ:
        raise Unknown(blob)
    data = cache.store.blob(blob, executable=True)
    if data is None or hashlib.blake2b(data, digest_size=16).hexdigest() != blob:
        raise Unknown(blob)  # the restore will find it missing or damaged: a miss
    return bytes_hash(data, executable=True)


def _output_hash(path: str, files: dict[str, str], outputs: tuple[dict[str, Any], ...]) -> str:
    """An output's hash after the restore: a file's own, or a folder's tree hash over its
    files sorted by path (``Hasher.tree``'s rule)."""
    kind = next(o.get("kind") for o in outputs if o["path"] == path)
    if kind != "dir":
        return files[path]
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(f for f in files if _walked(f, path, links.SKIP_DIRS)):
        h.update(os.fsencode(f))
        h.update(b"\0")
        h.update(files[f].encode())
        h.update(b"\n")
    return "d" + h.hexdigest()


class Restores(dict[str, "Restored | None"]):
    """The steps of one workflow the plan restores so far: {step: what it brings back, or
    None where that is not knowable}, with the known files indexed by every folder above
    them, so deciding a step below costs what it reads, not every file restored so far
    (a chain of 1,000 restores)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, str] = {}
        self.roots: set[str] = set()
        self.around: set[str] = set()  # every folder above a root
        self.below: dict[str, list[str]] = {}  # folder ("" the root) -> known files under it

    def __setitem__(self, step: str, got: Restored | None) -> None:
        super().__setitem__(step, got)
        if got is None:
            return
        self.files.update(got.files)
        for r in got.roots:
            self.roots.add(r)
            parts = r.split("/")
            self.around.update("/".join(parts[:i]) for i in range(1, len(parts)))
        for f in got.files:
            parts = f.split("/")
            for i in range(len(parts)):
                self.below.setdefault("/".join(parts[:i]), []).append(f)

    def replaced(self, path: str) -> bool:
        """Whether ``path`` is a restored output or lies under one."""
        parts = path.split("/")
        return any("/".join(parts[:i]) in self.roots for i in range(1, len(parts) + 1))


class AfterRestore(Hasher):
    """The hasher as it will read the work tree once the ``restores`` are in place:
    files under their outputs come from the entries, the rest from ``base`` (whose memo,
    stat witness and key it shares). Raises ``Unknown`` where that cannot be told."""

    def __init__(self, base: Hasher, restores: Restores):
        super().__init__(base.root, base.state)
        self._base = base
        self.seen = base.seen
        self._r = restores

    @property
    def env_key(self) -> bytes:
        return self._base.env_key

    def file(self, rel: str, exclude: tuple[str, ...] = ()) -> str:
        p = rel.rstrip("/")
        if p in self._r.files and not exclude:
            return self._r.files[p]
        if self._r.replaced(p) or p in self._r.around or p == "":
            raise Unknown(p)  # a folder in or around a restored output, as a whole
        return self._base.file(rel, exclude)

    def expand(self, pattern: str, exclude: tuple[str, ...] = ()) -> list[str]:
        files, below = self._r.files, self._r.below
        if globs.is_glob(pattern):
            spelled = pattern.rstrip("/")
            if spelled in files or spelled in below:
                raise Unknown(pattern)  # a path spelled as the glob: it, not the glob
            near = below.get(globs.literal_prefix(pattern).rstrip("/"), [])
        else:
            lit = globs.literal(pattern).rstrip("/")
            lit = "" if lit == "." else lit
            near = [*([lit] if lit in files else []), *below.get(lit, [])]
        disk = [f for f in self._base.expand(pattern, exclude) if not self._r.replaced(f)]
        match = _matcher(pattern)
        new = [f for f in near if match(f) and not globs.excluded(f, exclude)]
        return sorted({*disk, *new})


def _walked(path: str, top: str, skip: frozenset[str]) -> bool:
    """Whether a walk of folder ``top`` ("" the root) lists the file ``path`` under it:
    ``links.walk`` enters no folder named in ``skip`` (``.git``, ``.orch``,
    ``__pycache__``) below ``top``."""
    rel = path[len(top) + 1 :] if top else path
    return not skip.intersection(rel.split("/")[:-1])


def _matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a file is one ``Hasher.expand(pattern)`` lists: the path itself or a file
    its walk finds under it for a literal path, a match its walk finds for a glob."""
    if globs.is_glob(pattern):
        rx = globs.compile_glob(pattern)
        top = globs.literal_prefix(pattern).rstrip("/")
        skip = links.SKIP_DIRS.difference(pattern.split("/"))
        return lambda f: rx.match(f) is not None and _walked(f, top, skip)
    lit = globs.literal(pattern).rstrip("/")
    if lit in ("", "."):
        return lambda f: _walked(f, "", links.SKIP_DIRS)
    return lambda f: f == lit or (f.startswith(lit + "/") and _walked(f, lit, links.SKIP_DIRS))


def after_restores(
    view: StepView,
    d: StepDecision,
    rec: StepRecord | None,
    *,
    records: dict[str, StepRecord],
    will_run: set[str],
    restoring: Restores,
    maybe: set[str],
    hasher: Hasher,
    cacheable: bool,
    live_runs: Callable[[int], bool] | None = None,
) -> StepDecision:
    """``d`` (run or may run) decided again as ``orch apply`` will decide it once the
    upstream steps the plan restores are restored: with their entries' files and records.

    ``maybe``: upstream steps that "may run" only because of such restores (they may be
    restored too). ``d`` itself where an upstream step will run; where a restore's
    result is not knowable, a ``cacheable`` step that would run "may run" (it may be
    restored too)."""
    from runner.reconcile.decide import decide

    pending = [u for u in view.upstream if u in will_run]
    if not pending or any(u not in restoring and u not in maybe for u in pending):
        return d
    why = _upstream_reasons(pending, restoring)
    # only the step's upstream entries: decide reads no other (copying every record and
    # every step that will run, per step, made a plan of N restores O(N^2))
    known = {u: r for u in pending if (r := restoring.get(u)) is not None}
    if all(u in known for u in pending):  # (a "maybe" step is never in known)
        ups = {u: records[u] for u in view.upstream if u in records}
        try:
            after = decide(
                view,
                rec,
                records={**ups, **{u: r.record for u, r in known.items()}},
                will_run={u for u in view.upstream if u in will_run} - known.keys(),
                hasher=AfterRestore(hasher, restoring),
                forced=view.forced,
                live_runs=live_runs,
            )
        except Unknown:
            pass
        else:
            if after.action != Action.RUN:
                return after  # up to date (early cutoff), or skipped (when: false)
            return replace(after, reasons=(*after.reasons, *why))
    busy = any(r.startswith("running in another orch") for r in d.reasons)
    if d.action == Action.RUN and cacheable and not busy:
        return replace(d, action=Action.MAY_RUN, reasons=(*d.reasons, *why))
    return d


def _upstream_reasons(pending: list[str], restoring: dict[str, Restored | None]) -> list[str]:
    """``upstream will restore: a`` for the pending upstream steps the plan restores,
    ``upstream may restore: b`` for those that may run only because of a restore."""
    will = [u for u in pending if u in restoring]
    may = [u for u in pending if u not in restoring]
    return [
        f"upstream {w} restore: {', '.join(us)}" for w, us in (("will", will), ("may", may)) if us
    ]


RESTORE_REASONS = ("upstream will restore: ", "upstream may restore: ")


def maybe_restored(d: StepDecision) -> bool:
    """Whether ``d`` "may run" only because of restores upstream (no upstream will run):
    its own result may then be a restore too, which its downstream steps say."""
    return (
        d.action == Action.MAY_RUN
        and any(r.startswith(RESTORE_REASONS) for r in d.reasons)
        and not any(r.startswith("upstream will run: ") for r in d.reasons)
    )
