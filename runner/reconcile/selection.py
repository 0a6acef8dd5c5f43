"""What one plan or apply is about: the workflows, the environment, the forced steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.errors import OrchError, did_you_mean

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Workflow


@dataclass
class Selection:
    workflows: list[str]
    env: str = ""  # the environment name ("" = none)
    forced: set[tuple[str, str]] = field(default_factory=set)  # (workflow, step)
    force_all: bool = False


def select_workflows(m: Manifests, names: list[str], project: str | None) -> list[Workflow]:
    """The named workflows (all, by name, when none is named), of ``project`` if given;
    archived projects' workflows are never reconciled."""
    if names:
        wfs = [m.workflow(n) for n in names]
    else:
        wfs = sorted(m.workflows.values(), key=lambda w: w.name)
    if project:
        if project not in m.projects:
            hint = did_you_mean(project, list(m.projects)) or "see orch project list"
            raise OrchError(f"no project named '{project}' ({hint})")
        wfs = [w for w in wfs if w.project == project]
    archived = {p.name for p in m.projects.values() if p.lifecycle == "archived"}
    return [w for w in wfs if w.project not in archived]


def parse_forced(m: Manifests, wfs: list[Workflow], specs: list[str]) -> set[tuple[str, str]]:
    """``--force`` values (``step`` or ``workflow/step``) as (workflow, step) pairs.

    Raises OrchError naming the value when no selected workflow has that step."""
    out: set[tuple[str, str]] = set()
    for spec in specs:
        wname, sep, sname = spec.partition("/")
        if not sep:
            sname, wname = wname, ""
        hits = [
            (w.name, sname) for w in wfs if (not wname or w.name == wname) and sname in w.step_names
        ]
        if not hits:
            raise OrchError(f"--force {spec}: no such step in the selected workflows")
        out.update(hits)
    return out


def check_env(m: Manifests, wfs: list[Workflow], env: str) -> None:
    """Raise OrchError unless some project defines the environment ``env``."""
    known = {e for p in m.projects.values() for e in p.environments}
    if known and env not in known:
        raise OrchError(
            f"--env {env}: no project defines that environment "
            f"({did_you_mean(env, known) or 'known: ' + ', '.join(sorted(known))})"
        )
