"""Checks beyond the schema: names, references, templates, paths, quotas and cycles.

Each returns Diagnostics pointing at the exact key or value in the manifest, with a hint
("did you mean 'build'?") wherever one can be worked out. ``check_all`` runs them all; this
module holds the workflow-wide ones (step names, needs, cycles, quotas, projects) and the
rest are by subject: ``checkrefs`` (templates and the names they read), ``checkpaths``
(files, producers, cross-workflow edges), ``checksteps`` (shell, resources, breakers).
``base_params`` and ``workflow_params`` (``runner.manifests.params``) are importable from
here too, as callers have done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner import globs
from runner.errors import Diagnostic, did_you_mean
from runner.manifests import paths
from runner.manifests.checkctx import Ctx
from runner.manifests.checkpaths import check_cross_workflow, check_paths, check_producers
from runner.manifests.checkrefs import check_handlers, check_templates
from runner.manifests.checksteps import check_breakers, check_resources, check_shell
from runner.manifests.graph import CycleError, build_dag, file_edges
from runner.manifests.params import base_params, workflow_params

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Project, Quota


def _warn_retyped_env(ctx: Ctx) -> None:
    """An unquoted ``env`` value YAML reads as a number or yes/no whose text is not what
    was written (``1e3`` reaches the step as ``1000.0``, ``010`` as ``10``): a warning at
    the value, saying to quote it. An environment variable is text; YAML is not told so."""
    from runner.manifests.yamlsrc import resolve_plain
    from runner.model import as_text

    for path, source in ctx.doc.retyped.items():
        if len(path) >= 3 and path[0] == "spec" and path[-2] == "env":
            seen = as_text(resolve_plain(source))
            ctx.warn(
                path, f"env value {source} reaches the step as {seen}", f"quote it: '{source}'"
            )


def check_all(m: Manifests, prefix: str = "") -> list[Diagnostic]:
    """Every check of every manifest: each workflow's, then those across workflows
    (breakers, producers, cross-workflow edges), projects' and quotas'."""
    out: list[Diagnostic] = []
    for wf in m.workflows.values():
        doc = m.documents[(wf.path, wf.doc_index)]
        ctx = Ctx(m, wf, doc, prefix)
        _check_workflow(ctx)
        _warn_retyped_env(ctx)
        # the instances of a fan-out step share its text: one problem is said once
        out.extend(dict.fromkeys(ctx.out) if wf.groups else ctx.out)
    out.extend(check_breakers(m, prefix))
    out.extend(check_producers(m))
    out.extend(check_cross_workflow(m, prefix))
    for p in m.projects.values():
        out.extend(_check_project(m, p, prefix))
    for q in m.quotas.values():
        out.extend(_check_quota(m, q, prefix))
    return out


def _check_project(m: Manifests, p: Project, prefix: str) -> list[Diagnostic]:
    """Each milestone names workflows and steps that exist; the folder stays in the repository."""
    out: list[Diagnostic] = []
    doc = m.documents[(p.path, _doc_index(m, p.path, p.name, "Project"))]
    for i, ms in enumerate(p.milestones):
        for j, w in enumerate(ms.workflows):
            if w not in m.workflows:
                line, col = doc.where(("spec", "milestones", i, "workflows", j))
                out.append(
                    Diagnostic(
                        prefix + p.path,
                        line,
                        col,
                        f"spec.milestones[{i}].workflows[{j}]",
                        f"no workflow named '{w}'",
                        did_you_mean(w, list(m.workflows)),
                    )
                )
        for j, s in enumerate(ms.steps):
            wname, _, sname = s.partition("/")
            wf = m.workflows.get(wname)
            if wf is None or (sname not in wf.step_names and sname not in wf.groups):
                line, col = doc.where(("spec", "milestones", i, "steps", j))
                out.append(
                    Diagnostic(
                        prefix + p.path,
                        line,
                        col,
                        f"spec.milestones[{i}].steps[{j}]",
                        f"no step '{s}'",
                        "write it as workflow/step",
                    )
                )
    try:
        paths.join("", p.dir)
    except paths.PathEscape as e:
        line, col = doc.where(("spec", "path"))
        out.append(Diagnostic(prefix + p.path, line, col, "spec.path", str(e)))
    return out


def _check_quota(m: Manifests, q: Quota, prefix: str) -> list[Diagnostic]:
    """Each selector pattern is a well-formed glob."""
    out: list[Diagnostic] = []
    doc = m.documents[(q.path, _doc_index(m, q.path, q.name, "ResourceQuota"))]
    for key, names in (("workflows", q.workflows), ("projects", q.projects)):
        for j, pattern in enumerate(names):
            try:
                globs.check(pattern)
            except globs.GlobError as e:
                where = ("spec", "selector", key, j)
                line, col = doc.where(where)
                out.append(
                    Diagnostic(prefix + q.path, line, col, f"spec.selector.{key}[{j}]", str(e))
                )
    return out


def _doc_index(m: Manifests, path: str, name: str, kind: str) -> int:
    for (f, i), d in m.documents.items():
        if f == path and d.data.get("kind") == kind and d.data["metadata"]["name"] == name:
            return i
    return 0


def _check_workflow(ctx: Ctx) -> None:
    wf, m = ctx.wf, ctx.m
    names: dict[str, int] = {}
    for s in wf.steps:
        if s.name in names:
            ctx.add(
                ("spec", "steps", s.index, "name"),
                f"duplicate step name '{s.name}'",
                f"first used by spec.steps[{names[s.name]}]",
            )
        else:
            names[s.name] = s.index
    if wf.quota is not None and wf.quota not in m.quotas:
        ctx.add(
            ("spec", "quota"),
            f"no ResourceQuota named '{wf.quota}'",
            did_you_mean(wf.quota, list(m.quotas)) or "define one, or remove spec.quota",
        )
    edges: dict[tuple[str, str], set[str]] = {}
    known_params = workflow_params(m, wf)
    params = base_params(m, wf)
    file_spec: list[tuple[str, list[str], list[str]]] = []
    for s in wf.steps:
        sp = ("spec", "steps", s.index)
        for j, n in enumerate(s.needs):
            if n == s.name or n == s.group:
                ctx.add(sp + ("needs", j), f"step '{s.name}' needs itself")
            elif n not in names and n not in wf.groups:
                ctx.add(
                    sp + ("needs", j),
                    f"no step named '{n}'",
                    did_you_mean(n, list(names)),
                )
            else:
                edges.setdefault((n, s.name), set()).add("needs")
        for up in check_templates(ctx, s, sp, names, known_params | set(s.params)):
            edges.setdefault((up, s.name), set()).add("template")
        ins, outs = check_paths(ctx, s, sp, {**params, **s.params})
        file_spec.append((s.name, ins, outs))
        check_resources(ctx, s, sp)
        check_shell(ctx, s, sp)
    for u, d in file_edges(file_spec):
        edges.setdefault((u, d), set()).add("files")
    for name, ins, outs in file_spec:
        step = wf.step(name)
        neg = tuple(o[1:] for o in outs if o.startswith("!"))
        for k, o in enumerate(outs):  # by position: outputs[k] in the manifest
            if not o.startswith("!"):
                ctx.m.producers.append((globs.literal(o), ctx.wf, step, k, ctx.prefix, neg))
        if ins or outs:
            ctx.m.file_specs.append((wf.name, name, ins, outs))
    check_handlers(ctx, names, known_params)
    # a cycle is looked for even when other problems were found: the edges collected are
    # the ones that were valid, so a cycle among them is real and worth saying now
    try:
        dag = build_dag(wf.name, list(names), edges)
    except CycleError as e:
        for cycle, first in _every_cycle(e.cycle, names, edges):
            ctx.add(
                ("spec", "steps", names.get(first, 0), "name"),
                f"cycle: {' -> '.join(_rotate(cycle, first))}",
                "remove one of these dependencies",
            )
        return
    if not ctx.out:
        m.dags[wf.name] = dag


MAX_CYCLES = 10  # named per workflow; a dense tangle has exponentially many


def _every_cycle(
    found: list[str], names: dict[str, int], edges: dict[tuple[str, str], set[str]]
) -> list[tuple[list[str], str]]:
    """Every elementary cycle among ``edges`` (at most ``MAX_CYCLES``), each with the step
    declared first in it, in declaration order: fixing the one cycle ``graphlib`` found
    (``found``) should not reveal the next only on the next run. networkx's
    ``simple_cycles`` (Johnson's algorithm) is imported here, on the error path only."""
    import itertools

    import networkx as nx

    def pos(n: str) -> int:
        return names.get(n, 0)

    g = nx.DiGraph(list(edges))
    cycles = list(itertools.islice(nx.simple_cycles(g), MAX_CYCLES)) or [found]
    out = [(c, min(c, key=pos)) for c in cycles]
    return sorted(out, key=lambda cf: (pos(cf[1]), len(cf[0]), _rotate(cf[0], cf[1])))


def _rotate(cycle: list[str], first: str) -> list[str]:
    body = cycle[:-1] if len(cycle) > 1 and cycle[0] == cycle[-1] else cycle
    k = body.index(first)
    body = body[k:] + body[:k]
    return body + [body[0]]
