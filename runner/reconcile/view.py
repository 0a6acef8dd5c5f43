"""``StepView``: one step as a selection sees it, built once by the planner and read by
decide, start and record (kept apart from ``planner`` so ``decide`` can name it without an
import cycle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.model import Project, Step, Workflow

Key = tuple[str, str]  # (workflow, step)


@dataclass(frozen=True)
class StepView:
    """One step as this selection sees it. Paths are repo-relative, rendered."""

    wf: Workflow
    step: Step
    params: dict[str, Any]  # the workflow's base params (project, env overlay, workflow)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    workdir: str  # "" = the repository root
    upstream: tuple[str, ...]  # direct upstream step names
    param_refs: tuple[str, ...] | None
    env_refs: tuple[str, ...] | None  # None: a computed name, the whole environment
    static: dict[str, str] | None
    forced: bool = False
    git: dict[str, Any] | None = None  # the git.* values its templates read (GitValues)
    # what ``{{ project.* }}`` reads, where a template of the step reads it (fingerprinted)
    project: dict[str, Any] | None = None

    @property
    def key(self) -> Key:
        return (self.wf.name, self.step.name)

    @property
    def task_key(self) -> str:
        """``workflow/step``: the step's kernel claim and its quota allocations."""
        return f"{self.wf.name}/{self.step.name}"


def project_context(proj: Project | None) -> dict[str, Any]:
    """``project`` as templates see it: its name, directory and params ({} outside one).
    One definition for rendering (``start``) and for the fingerprint (``planner``)."""
    if proj is None:
        return {}
    return {"name": proj.name, "path": proj.dir, "params": proj.params}
