"""The parsed manifests of a repository (``Manifests``) and its ``.orch/config.yaml``
(``Config``): plain data every stage below the loader reads.

Kept apart from ``load`` (which builds them and runs ``checks``) so ``checks``, ``quotas``
and the engine can name the type without importing the loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import OrchError

if TYPE_CHECKING:
    from runner.manifests.yamlsrc import Document
    from runner.model import Project, Quota, Workflow

StepEdges = dict[str, list[tuple[str, str]]]


@dataclass
class Config:
    manifests: tuple[str, ...] = (".",)
    exclude: tuple[str, ...] = ()
    templates: str | None = None
    jobs: int | None = None
    debounce: float = 0.1
    exists: bool = False
    executor: dict[str, Any] | None = None  # {kind, address?, path_map?}; None = local
    max_instances: int = 10_000  # per matrix/foreach step (runner.manifests.fanout)
    audit_max_rows: int = 10_000  # audit: {max_rows} (runner.audit)
    audit_max_age: float = 90 * 86400.0  # audit: {max_age}, seconds
    # cache: false, or {dir, remote, max_size, link} as written (runner.store.results)
    cache: bool | dict[str, Any] | None = None


@dataclass
class Manifests:
    root: Path
    config: Config
    workflows: dict[str, Workflow] = field(default_factory=dict)
    quotas: dict[str, Quota] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    dags: dict[str, Any] = field(default_factory=dict)  # name -> graph.Dag
    documents: dict[tuple[str, int], Document] = field(default_factory=dict)
    # (workflow, step) -> params / environment variables its templates read; None = all
    param_refs: dict[tuple[str, str], tuple[str, ...] | None] = field(default_factory=dict)
    env_refs: dict[tuple[str, str], tuple[str, ...] | None] = field(default_factory=dict)
    # (workflow, step) -> git.* keys its templates read (None = all); absent: none
    git_refs: dict[tuple[str, str], tuple[str, ...] | None] = field(default_factory=dict)
    # (workflow, step) -> True where a template reads ``project`` (its name, path, params)
    project_reads: dict[tuple[str, str], bool] = field(default_factory=dict)
    static_fields: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    # (output path, workflow, step, index, prefix), collected by the checks, then dropped
    producers: list[Any] = field(default_factory=list)
    # (workflow, step, inputs, outputs), collected by the checks, then dropped
    file_specs: list[Any] = field(default_factory=list)
    # (workflow, step) -> steps of other workflows that write files it reads
    cross_upstream: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    # requests of cpu/memory beyond this host: errors only where tasks run here (the
    # local executor); see ``load.runs_here`` and ``reconcile.flow.apply``
    host_diags: list[Any] = field(default_factory=list)
    step_templates: tuple[str, ...] = ()  # the StepTemplates' names, sorted
    # workflow -> the StepTemplate files its steps use (a change there affects it)
    template_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # folders walked by foreach globs ("path/" -> stat key): a file added there changes
    # the instances, so the manifest cache and the no-op witness check them too
    fan_seen: dict[str, Any] = field(default_factory=dict)
    fan_globs: list[str] = field(default_factory=list)  # their patterns, repo-relative (watch)
    # (workflow, step, source step, key) of each foreach over an upstream output, and the
    # value each source's record held when the instances were made ("wf/source" -> value)
    fan_dynamic: list[tuple[str, str, str, str]] = field(default_factory=list)
    fan_sources: dict[str, str | None] = field(default_factory=dict)
    fan_errors: dict[str, str] = field(default_factory=dict)  # "wf/step" -> diagnostic line
    # (workflow, step) -> the foreach-over-outputs steps it needs or reads the instances
    # of: while such a source runs, the step waits for the next round (runner.api.apply)
    fan_waits: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # files skipped as not ours (YAML that does not parse, with no orch apiVersion in it)
    warnings: list[str] = field(default_factory=list)

    def across(self, workflow: str) -> tuple[StepEdges, StepEdges]:
        """The file edges between ``workflow`` and the others, as ``orch apply`` follows
        them (``cross_upstream``, built by ``checkpaths.check_cross_workflow``): {step: the
        (workflow, step) pairs whose outputs it reads} and {step: the pairs that read its
        outputs}, each list sorted. ``orch graph`` draws them; ``orch watch`` restarts on
        them."""
        into: StepEdges = {}
        out: StepEdges = {}
        for (dw, ds), ups in self.cross_upstream.items():
            for uw, us in ups:
                if dw == workflow:
                    into.setdefault(ds, []).append((uw, us))
                if uw == workflow:
                    out.setdefault(us, []).append((dw, ds))
        return (
            {k: sorted(v) for k, v in into.items()},
            {k: sorted(v) for k, v in out.items()},
        )

    def workflow(self, name: str) -> Workflow:
        if name not in self.workflows:
            from runner.errors import did_you_mean

            hint = did_you_mean(name, list(self.workflows)) or (
                f"known: {', '.join(sorted(self.workflows))}" if self.workflows else "none found"
            )
            raise OrchError(f"no workflow named '{name}' ({hint})")
        return self.workflows[name]
