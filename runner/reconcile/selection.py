"""What one plan or apply is about: the workflows, the environment, the forced steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import OrchError, UsageError, did_you_mean, suggest

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Workflow


@dataclass
class Selection:
    workflows: list[str]
    env: str = ""  # the environment name ("" = none)
    forced: set[tuple[str, str]] = field(default_factory=set)  # (workflow, step)
    force_all: bool = False
    # --param overrides, typed per workflow: workflow -> {param: value}
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    git: Any = None  # runner.manifests.sources.GitValues, made when a step first reads git.*

    def git_values(self, root: Path) -> Any:
        """The run's one ``GitValues``: each git.* value is asked once per plan or apply."""
        if self.git is None:
            from runner.manifests.sources import GitValues

            self.git = GitValues(root)
        return self.git


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

    A fan-out step's name forces every instance; ``STEP[...]`` one instance (its name may
    hold "/": ``count[books/a.txt]``, so only a "/" before any "[" ends a workflow name).
    Raises OrchError naming the value when no selected workflow has that step."""
    out: set[tuple[str, str]] = set()
    for spec in specs:
        wname, sep, sname = spec.partition("/")
        if not sep or "[" in wname:
            sname, wname = spec, ""
        hits = [
            (w.name, n)
            for w in wfs
            if not wname or w.name == wname
            for n in (w.groups.get(sname) or ((sname,) if sname in w.by_name else ()))
        ]
        # a foreach over a step's outputs whose instances are not known yet is a step too:
        # forcing it forces none now (its instances run once known, as never run)
        pending = any(sname in w.groups for w in wfs if not wname or w.name == wname)
        if not hits and not pending:
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


def parse_params(
    m: Manifests, wfs: list[Workflow], given: dict[str, Any], env: str
) -> dict[str, dict[str, Any]]:
    """``--param KEY=VALUE`` overrides as workflow -> {KEY: typed value}.

    A KEY must be a param of some selected workflow (its ``spec.params``, its project's
    params or an environment's): Terraform refuses an undeclared ``-var`` for the same
    reason, a misspelt name would otherwise be ignored silently. Text is typed by the
    value the param has without the override, as GitHub Actions types ``workflow_dispatch``
    inputs by their declared type (and ``orch project new --param`` does): a boolean,
    whole number or number must read as one; a list or mapping is JSON; anything else
    stays the text as given, so ``1.10`` is never the number 1.1. Non-text values (from
    the MCP tools' ``params`` object) are used as they are.

    Raises UsageError (exit 2) naming the bad ``--param``."""
    from runner.manifests.checks import base_params, workflow_params

    known: set[str] = set()
    for w in wfs:
        known |= workflow_params(m, w)
    for key in given:
        if key not in known:
            used = _template_using(wfs, key)
            if used is not None:  # a StepTemplate's own param: the use's with: sets it
                raise UsageError(
                    f"--param {key}: '{key}' is a param of StepTemplate '{used[0]}' (step "
                    f"'{used[1]}' uses it), not of a workflow (set it in that step's with:)"
                )
            hint = suggest(key, sorted(known), "params", "they declare none")
            raise UsageError(f"--param {key}: no selected workflow has a param '{key}' ({hint})")
    out: dict[str, dict[str, Any]] = {}
    for w in wfs:
        names = workflow_params(m, w)
        base = base_params(m, w, env or None)
        mine = {k: _typed(k, v, base.get(k)) for k, v in given.items() if k in names}
        if mine:
            out[w.name] = mine
    return out


def _template_using(wfs: list[Workflow], key: str) -> tuple[str, str] | None:
    """(StepTemplate, step) of the first selected step whose template declares ``key``: a
    --param never reaches a template's own param (docs/manifests.md, Step templates)."""
    for w in wfs:
        for s in w.steps:
            t = s.spec.get("uses")
            if isinstance(t, str) and key in s.params:
                return t, s.group or s.name
    return None


def _typed(key: str, value: Any, current: Any) -> Any:
    """``value`` (text from the command line) as the type of ``current``; see parse_params."""
    if not isinstance(value, str) or current is None or isinstance(current, str):
        return value
    if isinstance(current, (list, dict)):
        import json

        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if type(parsed) is not type(current):
            what = "a JSON list" if isinstance(current, list) else "a JSON object"
            raise UsageError(f"--param {key}={value}: expected {what}, as its value is")
        return parsed
    text = value.strip()
    try:
        if isinstance(current, bool):
            if text.lower() in ("true", "yes", "on", "1"):
                return True
            if text.lower() in ("false", "no", "off", "0"):
                return False
            raise ValueError
        return type(current)(text) if isinstance(current, (int, float)) else value
    except ValueError:
        word = (
            "true or false"
            if isinstance(current, bool)
            else ("a whole number" if isinstance(current, int) else "a number")
        )
        raise UsageError(f"--param {key}={value}: expected {word}, as its value is") from None
