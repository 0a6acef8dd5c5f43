"""The result cache in the engine: which steps are cached, what the plan says of them,
restoring one instead of running it, and storing a success.

    plan:   decide ─► RUN, fingerprint complete, cacheable, entry held ─► RESTORE
            ("will restore: cached result from <when> (<where>)"); its downstream steps
            are decided on the files and values its entry lists (``reconcile.predict``):
            restore too, up to date by early cutoff, or run -- "may run" (upstream will
            restore) only where the entry cannot tell
    apply:  Start ─► ... ─► when ─► restore (verified) ─► recorded succeeded, result
            "restored"; a miss (a blob gone or corrupted: one warning) runs the step
    run:    a success whose outputs were all written before the task ended ─► put, in
            the task's worker thread, before the task counts as finished (loop.py)

A step is cached when the cache is on (``.orch/config.yaml`` ``cache:``, not
``--no-cache``), its own ``cache:`` (else its workflow's) is not false, and it declares
outputs, none of them a ``!`` exclusion (a folder restored whole would bring back what the
exclusion leaves to the tool). Keys are digests of the fingerprint
(``results.result_key``); the environment values a step reads are digested there with
the store's own random key (``ResultStore.env_key``), so clones that share a store share
results, except where a step reads a declared secret (or the whole environment): that
digest stays keyed by the clone's ``.orch/`` key, and the result is this clone's alone.
Output values are stored masked, as the state stores them.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner import globs
from runner.reconcile.results import StepResult
from runner.status import Action, Status
from runner.store.results import (
    ResultStore,
    StoredResult,
    kind_mismatch,
    open_store,
    result_key,
)
from runner.store.state import StepRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.execute.api import TaskResult
    from runner.manifests.catalog import Manifests
    from runner.manifests.hashing import Hasher
    from runner.masking import Secrets
    from runner.reconcile.decide import StepDecision
    from runner.reconcile.view import StepView
    from runner.store.state import State

RESTORE = Action.RESTORE


class ResultCache:
    """The engine's handle on the result store of one plan or apply."""

    def __init__(self, store: ResultStore, root: Path, secrets: frozenset[str] = frozenset()):
        self.store = store
        self.root = root
        self.secrets = secrets  # every variable any step declares under secrets:
        self._held: dict[str, StoredResult | None] = {}

    def key(self, view: StepView, fields: dict[str, str], inputs: dict[str, str],
            upstream: dict[str, str], fingerprint: str) -> str:  # fmt: skip
        """The cache key of a step decided with these parts: a digest of its fingerprint,
        but with the environment values it reads keyed by the store's key rather than the
        clone's (so clones sharing the store share results) -- unless it reads a declared
        secret, or the whole environment, whose digest stays the clone's own."""
        if "environ" not in fields or view.env_refs is None or self.secrets & set(view.env_refs):
            return result_key(fingerprint)
        from runner.manifests.fingerprint import _canon, combine, fingerprint_fields
        from runner.masking import keyed_digest

        values = _canon({k: os.environ.get(k) for k in view.env_refs})
        try:
            shared = keyed_digest(self.store.env_key(), values)
        except OSError:
            return result_key(fingerprint)
        own = {**fingerprint_fields(fields), "environ": shared}
        return result_key(combine(own, inputs, upstream))

    def _key(self, view: StepView, d: StepDecision) -> str:
        return self.key(view, d.fields, d.inputs, d.upstream, d.fingerprint)

    def cacheable(self, view: StepView) -> bool:
        """Whether ``view``'s step is stored and restored at all."""
        outs = view.outputs
        return (
            view.step.cache
            and bool(outs)
            and not any(o.startswith("!") for o in outs)
            and not view.forced
        )

    def held(self, key: str) -> StoredResult | None:
        """The entry for ``key``, read once per plan."""
        if key not in self._held:
            self._held[key] = self.store.get(key)
        return self._held[key]

    def planned(self, view: StepView, d: StepDecision) -> StepDecision:
        """``d`` as RESTORE where the step will run, its fingerprint is complete (no
        upstream still to run), nothing forces it, and the store holds its result."""
        if d.action != Action.RUN or not self.cacheable(view):
            return d
        if any(r == "forced" or r.startswith("running in another orch") for r in d.reasons):
            return d
        got = self.held(self._key(view, d))
        if got is None or sorted(o["path"] for o in got.outputs) != output_paths(view):
            return d  # an entry for other paths is not this step's (restore says why)
        if any(kind_mismatch(o, output_dirs(view)) for o in got.outputs):
            return d  # a file where the step makes a folder, or the reverse: damaged
        why = f"will restore: cached result from {got.where}"
        return replace(d, action=RESTORE, reasons=(*d.reasons, why))

    def restore(self, view: StepView, d: StepDecision) -> tuple[dict[str, str], float] | None:
        """Put ``d``'s cached outputs in place: (output values, seconds taken), or None on
        a miss (the step runs)."""
        if not self.cacheable(view) or any(r == "forced" for r in d.reasons):
            return None
        t0 = time.perf_counter()
        key = self._key(view, d)
        values = self.store.restore(key, self.root, output_paths(view), output_dirs(view))
        return None if values is None else (values, time.perf_counter() - t0)

    def save(
        self,
        view: StepView,
        d: StepDecision,
        res: TaskResult,
        *,
        run_id: int | None,
        secrets: Secrets,
    ) -> bool:
        """Store the result ``res`` of a task that ran ``d``; refused (False) for a step
        not cached, a task that did not succeed, an output value that carries a secret, or
        a file written after the task ended. Safe from any thread."""
        if not self.cacheable(view) or res.status != Status.SUCCEEDED or res.output_error:
            return False
        values = dict(res.outputs)
        if secrets.mask_any(values) != values:
            return False
        meta = {"workflow": d.workflow, "step": d.step, "origin": origin(self.root, run_id)}
        key = self._key(view, d)
        return self.store.put(
            key,
            root=self.root,
            files=output_paths(view),
            values=values,
            meta=meta,
            written_before=res.ended,
        )

    def close(self) -> None:
        """End the apply's use of the store: its staging folder removed."""
        self.store.close()


def output_paths(view: StepView) -> list[str]:
    """The paths a step's entry holds, sorted: each declared output's literal part (a
    file or a folder). A restore writes these and nothing else, whatever an entry from a
    shared store lists."""
    return sorted({globs.literal(o).rstrip("/") for o in view.outputs})


def output_dirs(view: StepView) -> set[str]:
    """Those of ``output_paths`` the step declares as folders (``dist/``); the others
    are files."""
    return {globs.literal(o).rstrip("/") for o in view.outputs if o.endswith("/")}


def open_cache(
    m: Manifests, root: Path, *, off: bool = False, warn: Callable[[str], None] | None = None
) -> ResultCache | None:
    """The result cache the config names, or None when it is off (``cache: false``,
    ``--no-cache``, or ``$ORCH_NO_CACHE`` set to anything but ``0``). A ``remote:`` that cannot be reached
    from here (no fsspec, no s3fs, an unknown protocol) is an OrchError naming what to
    install or change."""
    setting = m.config.cache
    off = off or os.environ.get("ORCH_NO_CACHE", "") not in ("", "0")
    if off or setting is False or (isinstance(setting, dict) and setting.get("enabled") is False):
        return None
    try:
        store = open_store(root, setting, warn=warn)
    except ImportError as e:  # RemoteUnavailable: its one line says what to do
        from runner.errors import OrchError

        raise OrchError(f".orch/config.yaml: {e}") from None
    names = frozenset(s for w in m.workflows.values() for st in w.steps for s in st.secrets)
    return ResultCache(store, root, names)


def restored_record(
    d: StepDecision,
    env: str,
    values: dict[str, str],
    output_files: dict[str, str],
    run_id: int,
    now: float,
    fields: dict[str, str],
) -> StepRecord:
    """The record of a step restored from the cache: succeeded, with the fingerprint it
    was restored for, so the next plan finds it up to date."""
    rec = _record(d, env, values, output_files, run_id, now)
    rec.fields = fields  # the definition with its notes (params masked), as a run's
    return rec


def _record(
    d: StepDecision,
    env: str,
    values: dict[str, str],
    output_files: dict[str, str],
    run_id: int | None,
    now: float,
) -> StepRecord:
    return StepRecord(
        workflow=d.workflow,
        step=d.step,
        env=env,
        fingerprint=d.fingerprint,
        fields=d.fields,
        inputs=d.inputs,
        upstream=d.upstream,
        outputs=values,
        output_files=output_files,
        status=Status.SUCCEEDED,
        reason="restored from the result cache",
        task_id=None,
        run_id=run_id,
        started=now,
        ended=now,
        updated=now,
    )


def origin(root: Path, run_id: int | None) -> str:
    """Where a stored result came from, for the plan line of whoever restores it."""
    import socket

    return f"run {run_id} in {socket.gethostname()}:{root}"


def restore_step(
    cache: ResultCache,
    view: StepView,
    d: StepDecision,
    records: dict[str, StepRecord],
    *,
    state: State,
    hasher: Hasher,
    env: str,
    run_id: int,
    now: float,
    fields: dict[str, str],
) -> StepResult | None:
    """Restore ``d``'s step from ``cache`` and record it succeeded (its outputs hashed
    as they now are, ``fields`` its definition as recorded: params masked); the result
    ``restored``, or None on a miss (the step runs)."""
    from runner.reconcile.decide import output_hashes

    got = cache.restore(view, d)
    if got is None:
        return None
    values, took = _as_run_gives(got[0], state.secrets), got[1]
    outs = list(view.outputs)
    hasher.forget([globs.literal(o) for o in outs])
    files = output_hashes(hasher, outs)
    rec = restored_record(d, env, values, files, run_id, now, fields)
    state.record_step(rec)
    records[d.step] = rec
    reasons = [r for r in d.reasons if not r.startswith("will restore: ")]
    return StepResult(d.workflow, d.step, Status.RESTORED, reasons, duration=took)


def _as_run_gives(values: dict[str, str], secrets: Secrets) -> dict[str, str]:
    """Restored output values as a real run of the step would hand them to later steps:
    masked with this run's secrets, as the executor masks a task's (an entry stored
    before a variable was declared secret holds its value in clear)."""
    return {secrets.mask(k): secrets.mask(v) for k, v in values.items()}


def own_copies(root: Path, outputs: tuple[str, ...]) -> None:
    """Before a step runs where the cache restores by hard link: each of its output files
    that is a read-only hard link (a blob of the cache) becomes a private, writable copy,
    so the task can rewrite it in place (``>`` truncates) and no write reaches the blob
    (Bazel removes such outputs before an action; the copy keeps them for incremental
    tools)."""
    import shutil
    import stat

    for o in outputs:
        top = root / globs.literal(o).rstrip("/")
        paths = [top] if not top.is_dir() else [p for p in top.rglob("*") if p.is_file()]
        for p in paths:
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_nlink < 2 or st.st_mode & stat.S_IWUSR:
                continue
            tmp = p.with_name(f".{p.name}.orch-copy")
            shutil.copyfile(p, tmp)
            os.chmod(tmp, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
            os.replace(tmp, p)
