"""Which ready task starts next, and whether the quotas let it (pure: no I/O, no clock).

Order among ready tasks: higher *effective* priority first, where a ready task gains one
point for every task started while it waits (ageing, as in Unix schedulers), so a stream
of higher-priority tasks that become ready later cannot keep it waiting forever; then the
workflow that had started the fewest tasks when the task became ready (fair when one
apply reconciles many workflows); then declaration order. A task that does not fit its
quotas *reserves* what is free of what it asked for: later tasks may only use what is
left over, so a big task is never starved by small ones.

``Admission`` is handed what this process holds plus what other live runners hold (the
reconciler reads the latter from the state database once per pass); the final check and
the write happen together in one transaction there, so two runners never share a slot.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class QuotaLimits:
    name: str
    limits: dict[str, float]  # includes "concurrency" when set
    rate_runs: int | None = None
    rate_per: float | None = None


@dataclass(order=True)
class _Entry:
    sort: tuple[Any, ...]
    key: str = field(compare=False)
    item: Any = field(compare=False)


class ReadyQueue:
    """Ready tasks, ordered by (starts when ready - priority, workflow turns, declaration
    order, sequence).

    Ageing: at any moment a waiting task's effective priority is its ``priority`` plus the
    tasks started since it became ready; comparing two tasks, the common "now" cancels
    out, so the key is fixed when the task becomes ready and a heap keeps the order. A task
    pushed back because it did not fit yet keeps that key: tasks that became ready later
    overtake it only while their priority exceeds its own by more than the starts between.
    """

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._turns: dict[str, int] = {}
        self._starts = 0
        self._seq = itertools.count()
        self._place: dict[str, tuple[Any, ...]] = {}

    def push(self, key: str, workflow: str, priority: int, order: int, item: Any) -> None:
        place = self._place.get(key)
        if place is None:
            place = (
                self._starts - priority,
                self._turns.get(workflow, 0),
                order,
                next(self._seq),
            )
            self._place[key] = place
        heapq.heappush(self._heap, _Entry(place, key, item))

    def started(self, workflow: str) -> None:
        self._turns[workflow] = self._turns.get(workflow, 0) + 1
        self._starts += 1

    def __len__(self) -> int:
        return len(self._heap)

    def pop(self) -> tuple[str, Any]:
        e = heapq.heappop(self._heap)
        return e.key, e.item

    def drain_in_order(self) -> list[tuple[str, Any]]:
        """All entries, best first; the caller pushes back what it does not start."""
        out = []
        while self._heap:
            e = heapq.heappop(self._heap)
            out.append((e.key, e.item))
        return out


def request_of(resources: dict[str, float]) -> dict[str, float]:
    """What one task holds: its resources, plus one unit of ``concurrency``."""
    req = dict(resources)
    req["concurrency"] = req.get("concurrency", 0) + 1
    return req


class Admission:
    """Per scheduling pass: grants, with reservations for tasks that had to wait."""

    def __init__(self, held: dict[str, dict[str, float]], quotas: dict[str, QuotaLimits]):
        self.held = {q: dict(v) for q, v in held.items()}
        self.reserved: dict[str, dict[str, float]] = {}
        self.quotas = quotas

    def fits(self, quota_names: Iterable[str], req: dict[str, float]) -> bool:
        for qn in quota_names:
            q = self.quotas[qn]
            held = self.held.get(qn, {})
            res = self.reserved.get(qn, {})
            for r, limit in q.limits.items():
                want = req.get(r, 0.0)
                if want and held.get(r, 0.0) + res.get(r, 0.0) + want > limit + 1e-9:
                    return False
        return True

    def take(self, quota_names: Iterable[str], req: dict[str, float]) -> None:
        for qn in quota_names:
            h = self.held.setdefault(qn, {})
            for r in self.quotas[qn].limits:
                if req.get(r):
                    h[r] = h.get(r, 0.0) + req[r]

    def reserve(self, quota_names: Iterable[str], req: dict[str, float]) -> None:
        for qn in quota_names:
            q = self.quotas[qn]
            res = self.reserved.setdefault(qn, {})
            held = self.held.get(qn, {})
            for r, limit in q.limits.items():
                if req.get(r):
                    free = max(0.0, limit - held.get(r, 0.0) - res.get(r, 0.0))
                    res[r] = res.get(r, 0.0) + min(free, req[r])


def rate_allows(q: QuotaLimits, recent_starts: Callable[[str, float], int]) -> bool:
    if not q.rate_runs or not q.rate_per:
        return True
    return recent_starts(q.name, q.rate_per) < q.rate_runs


def backoff_delay(
    retry: Any, attempt: int, rand: Callable[[float, float], float] | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, jittered.

    Jitter spreads the retries of many tasks that failed together (a service that went
    down), so they do not all come back at the same instant.
    """
    import random

    base = retry.delay(attempt)
    if not retry.jitter:
        return base
    return max(0.0, base * (1 + (rand or random.uniform)(-retry.jitter, retry.jitter)))
