"""Which ResourceQuotas govern a workflow (pure; the accounting lives in reconcile/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner import globs

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Quota, Workflow


def governing(m: Manifests, wf: Workflow) -> list[Quota]:
    """The quota the workflow names, plus every quota whose selector picks it."""
    out: list[Quota] = []
    if wf.quota and wf.quota in m.quotas:
        out.append(m.quotas[wf.quota])
    for q in m.quotas.values():
        if q in out:
            continue
        if any(_picks(p, wf.name) for p in q.workflows) or (
            wf.project and any(_picks(p, wf.project) for p in q.projects)
        ):
            out.append(q)
    return out


def _picks(pattern: str, name: str) -> bool:
    try:
        return globs.match(pattern, name)
    except globs.GlobError:  # reported by validation (runner.manifests.checks), picks nothing
        return False
