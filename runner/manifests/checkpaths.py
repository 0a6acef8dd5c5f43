"""Checks of files: each step's inputs, outputs and workdir stay inside the repository
and are well-formed patterns; each path has one producing step; files one workflow writes
and another reads order the two, without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import globs
from runner.errors import Diagnostic
from runner.manifests import paths
from runner.manifests.checkctx import Ctx, is_templated
from runner.model import Step, Workflow
from runner.pathmatch import STATE_DIR

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests


def check_paths(
    ctx: Ctx, s: Step, sp: tuple[Any, ...], params: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Repo-relative inputs and outputs of ``s``; reports absolute/escaping/symlinked ones."""
    root: Path = ctx.m.root
    base = ctx.wf.base
    result: dict[str, list[str]] = {"inputs": [], "outputs": []}
    for key in ("inputs", "outputs"):
        for i, raw in enumerate(getattr(s, key)):
            value = raw
            if is_templated(raw):
                value = _render_path(raw, params, ctx.wf, s)
                if value is None:
                    continue
            try:
                rel = paths.join_pattern(base, value)
                paths.check_symlinks(root, rel)
            except paths.PathEscape as e:
                ctx.add(sp + (key, i), str(e), "keep paths inside the repository")
                continue
            if not _check_glob(ctx, sp + (key, i), key, rel):
                continue
            result[key].append(rel)
    wd = s.workdir
    if is_templated(wd):
        wd = _render_path(wd, params, ctx.wf, s, pattern=False) or "."
    try:
        rel = paths.join(base, wd)
        paths.check_symlinks(root, rel)
    except paths.PathEscape as e:
        ctx.add(sp + ("workdir",), str(e), "keep paths inside the repository")
    return result["inputs"], result["outputs"]


def _check_glob(ctx: Ctx, where: tuple[Any, ...], key: str, rel: str) -> bool:
    """A pattern is checked now, never at apply: malformed, or a glob where a step names
    what it writes (an output is a path; only its "!" exclusions may be globs)."""
    pattern = rel.removeprefix("!")
    try:
        globs.check(pattern)
    except globs.GlobError as e:
        ctx.add(where, str(e), "escape a literal [ * ? with a backslash, as \\[")
        return False
    if rel.startswith("!") and not pattern:
        ctx.add(where, "an exclusion needs a path after '!'", "write !PATH or !GLOB")
        return False
    if not rel.startswith("!") and pattern.split("/")[0] == STATE_DIR:
        ctx.add(
            where,
            f"'{pattern}': {STATE_DIR}/ is orch's own state (state, logs, caches),"
            f" never a step's {key[:-1]}",
            f"use a path outside {STATE_DIR}/ at the repository root"
            f" (a {STATE_DIR} folder deeper down is an ordinary folder)",
        )
        return False
    if key == "outputs" and not rel.startswith("!") and globs.is_glob(pattern):
        ctx.add(
            where,
            f"an output is a path, not a glob: '{pattern}'",
            "name the file or folder the step writes (escape a literal [ * ? as \\[)",
        )
        return False
    return True


def _render_path(
    raw: str, params: dict[str, Any], wf: Workflow, s: Step, *, pattern: bool = True
) -> str | None:
    from runner.templating import TemplateError

    try:
        return paths.render(wf, s, raw, params, pattern=pattern)
    except TemplateError:
        return None  # reported by the template checks


def check_producers(m: Manifests) -> list[Diagnostic]:
    """Each path has one producer: two steps declaring the same output, or one step's
    output folder holding another's output, would each see the other's writes as their
    output modified and re-run forever (make warns "overriding recipe"; DVC refuses
    overlapping outputs). Across workflows too: they share the files."""
    outs = sorted(m.producers, key=lambda t: (t[0].rstrip("/").split("/"), t[1].path, t[2].index))
    m.producers = []
    out: list[Diagnostic] = []
    # folders and files still open, by path, with what their step excludes (``!``)
    owner: list[tuple[str, Workflow, Step, tuple[str, ...]]] = []
    for path, wf, step, k, prefix, neg in outs:
        bare = path.rstrip("/")
        while owner and not (
            bare == owner[-1][0] or bare.startswith(owner[-1][0].rstrip("/") + "/")
        ):
            owner.pop()
        clash = next(
            (
                o
                for o in owner
                if (o[1].name, o[2].name) != (wf.name, step.name)
                and not (o[3] and globs.excluded(bare, list(o[3])))  # left out by its owner
            ),
            None,
        )
        if clash is not None:
            other, wf0, s0, _neg = clash
            doc = m.documents[(wf.path, wf.doc_index)]
            line, col = doc.where(("spec", "steps", step.index, "outputs", k))
            a, b = _qualified(wf0, s0, wf), _qualified(wf, step, wf0)
            if other.rstrip("/") == bare:
                what = f"steps '{a}' and '{b}' both declare output '{path}'"
            else:
                what = f"output '{path}' of step '{b}' is inside output '{other}' of step '{a}'"
            out.append(
                Diagnostic(
                    prefix + wf.path,
                    line,
                    col,
                    f"spec.steps[{step.index}].outputs[{k}]",
                    what,
                    "give each path one producing step",
                )
            )
            continue
        owner.append((path, wf, step, neg))
    return out


def _qualified(wf: Workflow, step: Step, other: Workflow) -> str:
    return step.name if wf.name == other.name else f"{wf.name}/{step.name}"


def check_cross_workflow(m: Manifests, prefix: str = "") -> list[Diagnostic]:
    """Files one workflow's step writes and another's reads are an edge between the two
    steps (``m.cross_upstream``): one ``orch apply`` of both runs the writer first, so the
    reader never reads a stale file. A cycle through such edges is an error naming it."""
    from runner.manifests.graph import cross_workflow_edges

    specs, m.file_specs = m.file_specs, []
    if len({w for w, *_ in specs}) < 2:
        return []
    ups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for up, down in cross_workflow_edges(specs):
        ups.setdefault(down, []).append(up)
    if not ups or any(w not in m.dags for w in m.workflows):
        m.cross_upstream = ups
        return []  # a workflow with errors has no DAG: its cycles are not known yet
    import graphlib

    graph: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for w, dag in m.dags.items():
        for s, us in dag.upstream.items():
            graph[(w, s)] = [(w, u) for u in us]
    for down, us in ups.items():
        graph[down] = graph.get(down, []) + us
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        nodes = list(e.args[1])
        if nodes[0] not in graph.get(nodes[1], ()):  # say it upstream first, as files flow
            nodes.reverse()
        body = nodes[:-1]
        k = body.index(min(body))  # and from the same step every time
        nodes = body[k:] + body[:k] + [body[k]]
        cycle = [f"{w}/{s}" for w, s in nodes]
        wf = m.workflows[nodes[0][0]]
        return [
            Diagnostic(
                prefix + wf.path,
                wf.loc.line,
                1,
                "",
                f"cycle across workflows: {' -> '.join(cycle)}",
                "a file one workflow writes is read by the other and the other way round;"
                " remove one of these dependencies",
            )
        ]
    m.cross_upstream = ups
    return []
