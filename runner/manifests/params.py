"""The params a workflow's templates see, and the names it may read.

Project params, then the chosen environment's overlay, then the workflow's own; the
environment wins over the workflow (it is the most specific choice the user made).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Workflow


def workflow_params(m: Manifests, wf: Workflow) -> set[str]:
    """Every param name a template of ``wf`` may read: its own, its project's, and those
    of any of the project's environments."""
    names = set(wf.params)
    proj = m.projects.get(wf.project) if wf.project else None
    if proj:
        names |= set(proj.params)
        for env in proj.environments.values():
            names |= set(env)
    return names


def base_params(m: Manifests, wf: Workflow, env: str | None = None) -> dict[str, Any]:
    """The params a workflow's templates see: project, then environment overlay, then workflow."""
    out: dict[str, Any] = {}
    proj = m.projects.get(wf.project) if wf.project else None
    if proj:
        out.update(proj.params)
        if env and env in proj.environments:
            out.update(proj.environments[env])
    out.update(wf.params)
    if proj and env and env in proj.environments:
        # the environment is the most specific choice the user made: it wins
        out.update(proj.environments[env])
    return out
