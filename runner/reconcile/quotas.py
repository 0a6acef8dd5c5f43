"""ResourceQuotas during an apply: what this run holds, admission (which quotas govern a
workflow is ``manifests/quotas``).

Two checks, as Kubernetes' scheduler does (filter in memory, then bind): ``admit`` asks
the in-memory picture (this run's holdings + other live runners', read once per pass)
and reserves for a task that does not fit, so it is never starved by smaller ones
(``queue.Admission``); ``take`` is the binding check, in one write transaction in the
store, so two runners never share the last slot. ``give_back`` undoes ``take``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.manifests.quotas import governing
from runner.reconcile.queue import Admission, QuotaLimits, rate_allows
from runner.store import allocations

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Workflow
    from runner.store.state import State


class Quotas:
    """The quotas of one apply: limits (the host's included), holdings, admission."""

    def __init__(
        self, m: Manifests, wfs: list[Workflow], *, state: State, run_id: int, host: bool = True
    ):
        """``host``: whether tasks run on this machine, so that it is the ceiling of every
        ``cpu``/``memory`` quota (not with a Dask cluster: its workers are)."""
        self.state = state
        self.run_id = run_id
        self.limits = {
            q.name: QuotaLimits(q.name, dict(q.limits), q.rate_runs, q.rate_per)
            for q in m.quotas.values()
        }
        self.of = {w.name: [q.name for q in governing(m, w)] for w in wfs}
        if host and any(
            s.resources.get("cpu") or s.resources.get("memory") for w in wfs for s in w.steps
        ):
            from runner.execute.host import HOST_QUOTA, host_limits

            # the host is the ceiling of every quota, across all runners on this machine
            self.limits[HOST_QUOTA] = QuotaLimits(HOST_QUOTA, host_limits())
            for names in self.of.values():
                names.append(HOST_QUOTA)
        self.held: dict[str, dict[str, float]] = {}  # by this run, in memory
        self._reserved: dict[str, dict[str, float]] = {}
        self._others: dict[str, dict[str, float]] = {}
        self._full: set[str] = set()  # quotas with no concurrency left in this pass

    def new_pass(self) -> None:
        """Forget this pass's reservations; read what other live runners hold now."""
        self._reserved.clear()
        self._full.clear()
        if self.limits:
            self._others = allocations.held_by_others(self.state, self.run_id)

    def admit(self, qnames: list[str], req: dict[str, float]) -> bool:
        """Whether ``req`` fits now; if not, it reserves what is free for this pass, so
        later (smaller) tasks cannot take it and the big task is never starved."""
        if self._full and not self._full.isdisjoint(qnames):
            return False  # every task takes one unit of concurrency: none is left
        adm = Admission(
            {q: _add(self.held.get(q, {}), self._others.get(q, {})) for q in qnames}, self.limits
        )
        adm.reserved = self._reserved
        if adm.fits(qnames, req) and all(
            rate_allows(
                self.limits[q],
                lambda name, per: allocations.recent_starts(self.state, name, per),
            )
            for q in qnames
        ):
            return True
        adm.reserve(qnames, req)
        for q in qnames:
            cap = self.limits[q].limits.get("concurrency")
            taken = adm.held.get(q, {}).get("concurrency", 0.0)
            taken += self._reserved.get(q, {}).get("concurrency", 0.0)
            if cap is not None and taken >= cap:
                self._full.add(q)
        return False

    def take(self, task_key: str, qnames: list[str], req: dict[str, float]) -> bool:
        """Allocate ``req`` in every quota of ``qnames`` for ``task_key``, or nothing."""
        if not allocations.allocate(self.state, self.run_id, task_key, qnames, req, self.limits):
            return False
        for q in qnames:
            h = self.held.setdefault(q, {})
            for r in self.limits[q].limits:
                if req.get(r):
                    h[r] = h.get(r, 0.0) + req[r]
        return True

    def give_back(self, task_key: str, qnames: list[str], req: dict[str, float]) -> None:
        """Undo ``take``: in memory and in the store."""
        for q in qnames:
            h = self.held.get(q, {})
            for r in self.limits[q].limits:
                if req.get(r):
                    h[r] = max(0.0, h.get(r, 0.0) - req[r])
        allocations.free(self.state, self.run_id, task_key)


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out
