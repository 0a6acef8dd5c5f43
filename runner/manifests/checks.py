"""Checks beyond the schema: names, references, templates, paths, quotas and cycles.

Each returns Diagnostics pointing at the exact key or value in the manifest, with a hint
("did you mean 'build'?") wherever one can be worked out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import globs
from runner.errors import Diagnostic, did_you_mean
from runner.manifests import paths
from runner.manifests.graph import CycleError, build_dag, file_edges
from runner.manifests.yamlsrc import Document
from runner.model import Step, Workflow
from runner.pathmatch import STATE_DIR

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests

TEMPLATE_ROOTS = ("params", "steps", "workflow", "env", "project", "step", "git", "matrix", "item")
# Roots a path (inputs, outputs, workdir) may not read, with their name for the message:
# where a file is is decided before anything runs, from the manifest and params alone
# (``paths.render`` gives a path an empty env, no project and no step).
PATH_REFUSED = {"env": "environment variables", "project": "project values", "step": "step values"}
JINJA_GLOBALS = (
    "range",
    "dict",
    "lipsum",
    "cycler",
    "joiner",
    "namespace",
    "true",
    "false",
    "none",
)


def _is_templated(s: Any) -> bool:
    return isinstance(s, str) and ("{{" in s or "{%" in s)


class _Ctx:
    def __init__(self, m: Manifests, wf: Workflow, doc: Document, prefix: str):
        self.m, self.wf, self.doc, self.prefix = m, wf, doc, prefix
        self.out: list[Diagnostic] = []

    def add(self, path: tuple[Any, ...], what: str, hint: str = "", key: bool = False) -> None:
        from runner.manifests.schema import dotted

        line, col = self.doc.where(path, key=key)
        hint = _from_template(self.doc, path, hint)
        self.out.append(Diagnostic(self.doc.path, line, col, dotted(path), what, hint))

    def warn(self, path: tuple[Any, ...], what: str, hint: str = "") -> None:
        """Said on stderr (``orch: warning: ...``), kept with the cached manifests; not an error."""
        from runner.manifests.schema import dotted

        line, col = self.doc.where(path)
        self.m.warnings.append(str(Diagnostic(self.doc.path, line, col, dotted(path), what, hint)))


def _from_template(doc: Document, path: tuple[Any, ...], hint: str) -> str:
    """A problem in a field a step took from its StepTemplate is reported at the step (the
    use decides the params it reads), saying where the field is written."""
    name = inherited(doc, path)
    if name is None:
        return hint
    said = f"from StepTemplate '{name}'"
    return f"{hint}; {said}" if hint else said


def inherited(doc: Document, path: tuple[Any, ...]) -> str | None:
    """The StepTemplate a step's field at ``path`` comes from, None for its own field."""
    if len(path) < 4 or path[:2] != ("spec", "steps") or not isinstance(path[2], int):
        return None
    try:
        own = doc.data["spec"]["steps"][path[2]]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(own, dict) or "uses" not in own:
        return None
    mine = own.get(path[3])
    if path[3] in own and len(path) > 4:  # env/resources merge, inputs/outputs extend
        if isinstance(mine, dict) and path[4] not in mine:
            return str(own["uses"])
        if isinstance(mine, list) and isinstance(path[4], int) and path[4] >= len(mine):
            return str(own["uses"])
    return None if path[3] in own else str(own["uses"])


SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish"})
RUN_C = frozenset({"su", "runuser", "flock", "script", "sg"})  # -c CMD: CMD runs in a shell


def shell_command_string(argv: list[Any] | tuple[Any, ...]) -> int | None:
    """Index of the command string in an argv that starts a shell with ``-c``, else None.

    ``[sh, -c, CMD, ...]``, ``[/bin/bash, -euo, pipefail, -c, CMD]``, ``[bash, -lc, CMD]``,
    ``[env, X=1, zsh, -c, CMD]``: the shell parses CMD itself, so a value templated into it
    is shell code again, and orch does not quote list items (each is one argument).
    """
    words = [a if isinstance(a, str) else "" for a in argv]
    names = [w.rsplit("/", 1)[-1] for w in words]
    runner = next((k for k, n in enumerate(names) if n in RUN_C), None)
    if runner is not None:  # [su, -c, CMD, user], [flock, FILE, -c, CMD]
        c = next(
            (k for k in range(runner + 1, len(words)) if words[k] in ("-c", "--command")), None
        )
        return c + 1 if c is not None and c + 1 < len(words) else None
    # the shell may come after any launcher: env, sudo, xargs, timeout 5, nice -n 1...
    i = next((k for k, n in enumerate(names) if n in SHELLS), len(words))
    if i >= len(words):
        return None
    i += 1
    command = False
    while i < len(words):
        w = words[i]
        if w == "--":  # the end of the options: the command string follows
            return i + 1 if command and i + 1 < len(words) else None
        if not w.startswith(("-", "+")) or w in ("-", "+"):
            return i if command else None
        if not w.startswith("--"):
            command = command or "c" in w[1:]
            if w[-1] in "oO":  # -o NAME, -O NAME take the next word
                i += 1
        i += 1
    return None


def workflow_params(m: Manifests, wf: Workflow) -> set[str]:
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


def _warn_retyped_env(ctx: _Ctx) -> None:
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
    out: list[Diagnostic] = []
    for wf in m.workflows.values():
        doc = m.documents[(wf.path, wf.doc_index)]
        ctx = _Ctx(m, wf, doc, prefix)
        _check_workflow(ctx)
        _warn_retyped_env(ctx)
        # the instances of a fan-out step share its text: one problem is said once
        out.extend(dict.fromkeys(ctx.out) if wf.groups else ctx.out)
    out.extend(check_breakers(m, prefix))
    out.extend(check_producers(m))
    out.extend(check_cross_workflow(m, prefix))
    for p in m.projects.values():
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
    for q in m.quotas.values():
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


def _check_workflow(ctx: _Ctx) -> None:
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
        for up in _check_templates(ctx, s, sp, names, known_params | set(s.params)):
            edges.setdefault((up, s.name), set()).add("template")
        ins, outs = _check_paths(ctx, s, sp, {**params, **s.params})
        file_spec.append((s.name, ins, outs))
        _check_resources(ctx, s, sp)
        _check_shell(ctx, s, sp)
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
    _check_handlers(ctx, names, known_params)
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


def _syntax(source: str, shell: bool = False) -> str | None:
    if not _is_templated(source):
        return None
    from runner.templating import check_shell_spots, check_syntax

    err = check_syntax(source)
    if err is None and shell:
        err = check_shell_spots(source)
    if err is None:
        return None
    return str(err)


def _template_fields(s: Step) -> list[tuple[tuple[Any, ...], str]]:
    fields: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(s.run, str):
        fields.append((("run",), s.run))
    else:
        fields.extend((("run", i), a) for i, a in enumerate(s.run))
    if isinstance(s.when, str):
        fields.append((("when",), s.when))
    for k, v in (s.spec.get("env") or {}).items():
        if isinstance(v, str):
            fields.append((("env", k), v))
    for key in ("inputs", "outputs"):
        fields.extend(((key, i), v) for i, v in enumerate(s.spec.get(key, ())))
    if "workdir" in s.spec:
        fields.append((("workdir",), s.spec["workdir"]))
    return [(p, v) for p, v in fields if _is_templated(v)]


def _check_templates(
    ctx: _Ctx, s: Step, sp: tuple[Any, ...], names: dict[str, int], known_params: set[str]
) -> set[str]:
    """Syntax and references of every templated field; returns the steps referenced."""
    fields = _template_fields(s)
    if not fields:
        return set()
    from runner.templating import TemplateError, check_shell_spots, check_syntax, references

    if not isinstance(s.run, str):
        _warn_shell_list(ctx, sp + ("run",), s.run)

    ups: set[str] = set()
    reads_project = False
    pref: set[str] | None = set()
    eref: set[str] | None = set()
    gref: set[str] | None = set()
    for rel, source in fields:
        path = sp + rel
        err = check_syntax(source)
        if err is None and rel == ("run",):
            err = check_shell_spots(source)
        if err is not None:
            if inherited(ctx.doc, path) is None:  # else said once, in the template's file
                ctx.add(path, f"template error: {err}", _line_hint(err))
            continue
        try:
            refs = references(source)
        except TemplateError as e:  # pragma: no cover - syntax already checked
            ctx.add(path, f"template error: {e}")
            continue
        guarded = "default" in source or " is defined" in source or ".get(" in source
        is_path = rel[0] in ("inputs", "outputs", "workdir")
        for ref in sorted(refs):
            root = ref[0]
            if root in JINJA_GLOBALS:
                continue
            if root not in TEMPLATE_ROOTS:
                ctx.add(
                    path,
                    f"unknown name '{root}' in template",
                    did_you_mean(root, TEMPLATE_ROOTS) or f"use one of {', '.join(TEMPLATE_ROOTS)}",
                )
                continue
            if root in ("matrix", "item"):
                _check_fan_ref(ctx, s, path, ref, guarded)
                continue
            if is_path and root in PATH_REFUSED:
                ctx.add(path, f"paths may use params, not {PATH_REFUSED[root]}",
                        "paths are known before anything runs, from the manifest and params alone")  # fmt: skip
                continue
            if root == "steps" and len(ref) >= 2 and str(ref[1]) in ctx.wf.groups:
                ups |= _check_group_ref(ctx, s, path, ref, is_path)
                continue
            if root == "steps":
                if len(ref) < 2:
                    continue
                target = str(ref[1])
                if is_path:
                    ctx.add(
                        path,
                        "paths may use params, not step outputs",
                        "declare the file as an input instead",
                    )
                elif target == s.name:
                    ctx.add(path, f"step '{s.name}' refers to its own outputs")
                elif target not in names:
                    ctx.add(path, f"no step named '{target}'", did_you_mean(target, list(names)))
                elif "matrix" in ctx.wf.step(target).spec or "foreach" in ctx.wf.step(target).spec:
                    ups.add(target)  # a fan-out that failed, reported where it is written
                else:
                    ups.add(target)
                    if (
                        len(ref) >= 3
                        and ref[2] != "outputs"
                        and ref[2] not in ("status", "exit_code")
                    ):
                        ctx.add(
                            path,
                            f"steps.{target}.{ref[2]} is not defined",
                            "use steps.NAME.outputs.KEY",
                        )
            elif root == "git":
                gref = _git_ref(ctx, path, ref, is_path, gref)
            elif root == "project":
                reads_project = True
            elif root == "env" and is_path and not guarded:
                ctx.add(
                    path,
                    "paths may use params, not env: where a file is must not depend on who"
                    " runs orch",
                    "use a param (orch apply --env, or params:), or read the variable in run",
                )
            elif root == "env":
                if len(ref) < 2:
                    eref = None  # read by a name computed at render time: all of it counts
                elif eref is not None:
                    eref.add(str(ref[1]))
            elif root == "params":
                if len(ref) < 2:
                    pref = None
                    continue
                p = str(ref[1])
                if pref is not None:
                    pref.add(p)
                if not guarded and p not in known_params:
                    ctx.add(
                        path,
                        f"no param named '{p}'",
                        did_you_mean(p, known_params)
                        or "declare it in spec.params, or use | default(...)",
                    )
    key = (ctx.wf.name, s.name)
    ctx.m.param_refs[key] = tuple(sorted(pref)) if pref is not None else None
    if reads_project:
        ctx.m.project_reads[key] = True
    if eref is None or eref:
        ctx.m.env_refs[key] = tuple(sorted(eref)) if eref is not None else None
    if gref is None or gref:
        ctx.m.git_refs[key] = tuple(sorted(gref)) if gref is not None else None
    return ups


def _git_ref(
    ctx: _Ctx, path: tuple[Any, ...], ref: tuple[str, ...], is_path: bool, gref: set[str] | None
) -> set[str] | None:
    """One ``git.KEY`` a template reads, added to ``gref`` (None: all of them, for ``git``
    read whole or by a computed key). Paths may not read it: they are decided before
    anything runs, from the manifest and params alone."""
    from runner.manifests.sources import GIT_KEYS

    if is_path:
        ctx.add(
            path, "paths may use params, not git values", "paths are known before anything runs"
        )
        return gref
    if len(ref) < 2:
        return None
    if ref[1] not in GIT_KEYS:
        hint = did_you_mean(str(ref[1]), GIT_KEYS) or f"use one of {', '.join(GIT_KEYS)}"
        ctx.add(path, f"git.{ref[1]} is not defined", hint)
        return gref
    if gref is not None:
        gref.add(str(ref[1]))
    return gref


def _check_fan_ref(
    ctx: _Ctx, s: Step, path: tuple[Any, ...], ref: tuple[str, ...], guarded: bool
) -> None:
    """``matrix.KEY`` only in a matrix step, naming one of its keys; ``item`` only in a
    foreach step (its fields are checked when the instance renders)."""
    root = ref[0]
    field = "matrix" if root == "matrix" else "foreach"
    if root not in s.fan:
        if not s.group and ("matrix" in s.spec or "foreach" in s.spec):
            return  # its fan-out failed, and that is reported where it is written
        if s.group:  # an instance of the other kind of fan-out
            ctx.add(path, f"'{root}' is not defined in a step with {'foreach' if root == 'matrix' else 'matrix'}",
                    f"this step fans out with {'foreach: read item' if root == 'matrix' else 'matrix: read matrix.KEY'}")  # fmt: skip
        else:
            ctx.add(path, f"'{root}' is only defined in a step with {field}:",
                    f"add {field}: to step '{s.name}', or use params")  # fmt: skip
        return
    if root == "matrix" and len(ref) >= 2 and not guarded and str(ref[1]) not in s.fan["matrix"]:
        keys = list(s.fan["matrix"])
        ctx.add(path, f"matrix key '{ref[1]}' is not set in every combination of step '{s.group}'",
                did_you_mean(str(ref[1]), keys) or f"keys: {', '.join(keys)}")  # fmt: skip


def _check_group_ref(
    ctx: _Ctx, s: Step, path: tuple[Any, ...], ref: tuple[str, ...], is_path: bool
) -> set[str]:
    """``steps.G`` where G fans out: only ``steps.G.instances`` (every instance's key or
    item and outputs) is defined; it makes every instance an upstream step, and for a
    foreach over a step's outputs that step too (its instances may be none yet): the
    reader waits for them as ``needs: [G]`` does (``Manifests.fan_waits``)."""
    target = str(ref[1])
    if is_path:
        ctx.add(
            path, "paths may use params, not step outputs", "declare the file as an input instead"
        )
        return set()
    if target == s.group:
        ctx.add(path, f"step '{s.name}' refers to the instances of its own step '{target}'")
        return set()
    if len(ref) >= 3 and ref[2] != "instances":
        ctx.add(path, f"step '{target}' fans out: steps.{target}.{ref[2]} is not defined",
                f"read steps.{target}.instances, a list of each instance's key or item and outputs")  # fmt: skip
        return set()
    ups = set(ctx.wf.groups[target])
    for w, g, src, _key in ctx.m.fan_dynamic:
        if w == ctx.wf.name and g == target:
            ups.add(src)
            k = (w, s.name)
            if target not in ctx.m.fan_waits.get(k, ()):
                ctx.m.fan_waits[k] = (*ctx.m.fan_waits.get(k, ()), target)
    return ups


HANDLER_ROOTS = ("params", "steps", "workflow", "env")


def _check_handlers(ctx: _Ctx, names: dict[str, int], known_params: set[str]) -> None:
    """``on:`` commands are templates too: syntax and every name they read, as for steps.

    They see ``params``, ``workflow`` (with ``status``), ``env`` and every step's
    ``steps.NAME.outputs``/``status`` (they run after all steps), nothing else."""
    from runner.templating import references

    for hk, handlers in ctx.wf.handlers.items():
        for i, h in enumerate(handlers):
            base = ("spec", "on", hk, i, "run")
            if isinstance(h.run, str):
                runs = [(base, h.run)]
            else:
                runs = [((*base, j), a) for j, a in enumerate(h.run)]
                _warn_shell_list(ctx, base, h.run)
            for path, r in runs:
                err = _syntax(r, shell=isinstance(h.run, str))
                if err:
                    ctx.add(path, f"template error: {err}")
                    continue
                if not _is_templated(r):
                    continue
                guarded = "default" in r or " is defined" in r
                for ref in sorted(references(r)):
                    root = ref[0]
                    if root in JINJA_GLOBALS:
                        continue
                    if root not in HANDLER_ROOTS:
                        ctx.add(
                            path,
                            f"unknown name '{root}' in template",
                            did_you_mean(root, HANDLER_ROOTS)
                            or f"on: commands may use {', '.join(HANDLER_ROOTS)}",
                        )
                    elif (
                        root == "steps"
                        and len(ref) >= 2
                        and str(ref[1]) not in names
                        and str(ref[1]) not in ctx.wf.groups
                    ):
                        target = str(ref[1])
                        ctx.add(
                            path, f"no step named '{target}'", did_you_mean(target, list(names))
                        )
                    elif (
                        root == "params"
                        and len(ref) >= 2
                        and not guarded
                        and str(ref[1]) not in known_params
                    ):
                        ctx.add(
                            path,
                            f"no param named '{ref[1]}'",
                            did_you_mean(str(ref[1]), known_params)
                            or "declare it in spec.params, or use | default(...)",
                        )


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


def check_breakers(m: Manifests, prefix: str = "") -> list[Diagnostic]:
    """One breaker name, one set of settings: the steps that share a breaker count failures
    together, so two steps that disagree on its threshold or cooldown would each trip it by
    their own rule. ``breaker: NAME`` alone means the defaults (threshold 3, cooldown 1m)."""
    first: dict[str, tuple[Any, Workflow, Step]] = {}
    out: list[Diagnostic] = []
    for wf in sorted(m.workflows.values(), key=lambda w: (w.path, w.loc.line)):
        for s in wf.steps:
            b = s.breaker
            if b is None:
                continue
            seen = first.get(b.name)
            if seen is None:
                first[b.name] = (b, wf, s)
                continue
            b0, wf0, s0 = seen
            if (b0.threshold, b0.cooldown) != (b.threshold, b.cooldown):
                doc = m.documents[(wf.path, wf.doc_index)]
                line, col = doc.where(("spec", "steps", s.index, "breaker"))
                line0, _ = m.documents[(wf0.path, wf0.doc_index)].where(
                    ("spec", "steps", s0.index, "breaker")
                )
                out.append(
                    Diagnostic(
                        prefix + wf.path,
                        line,
                        col,
                        f"spec.steps[{s.index}].breaker",
                        f"breaker '{b.name}' has threshold {b.threshold}, cooldown "
                        f"{_fmt(b.cooldown)}s here but threshold {b0.threshold}, cooldown "
                        f"{_fmt(b0.cooldown)}s in step '{wf0.name}/{s0.name}' "
                        f"({prefix}{wf0.path}:{line0})",
                        "give every step that shares a breaker the same settings",
                    )
                )
    return out


def _warn_shell_list(ctx: _Ctx, path: tuple[Any, ...], argv: Any) -> None:
    """A ``run`` list that hands a templated string to a shell: its values go in unquoted."""
    i = shell_command_string(argv)
    if i is not None and _is_templated(argv[i]):
        ctx.warn(
            (*path, i),
            "values in this shell command string are not quoted (a run list passes each item"
            " as one argument, and the shell parses this one)",
            "write run as a string and orch quotes each value, or pass values as arguments:"
            " [sh, -c, 'echo \"$1\"', sh, '{{ x }}']",
        )


def _line_hint(err: Any) -> str:
    lineno = getattr(err, "lineno", None)
    return f"template line {lineno}" if lineno and lineno > 1 else ""


def _check_paths(
    ctx: _Ctx, s: Step, sp: tuple[Any, ...], params: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Repo-relative inputs and outputs of ``s``; reports absolute/escaping/symlinked ones."""
    root: Path = ctx.m.root
    base = ctx.wf.base
    result: dict[str, list[str]] = {"inputs": [], "outputs": []}
    for key in ("inputs", "outputs"):
        for i, raw in enumerate(getattr(s, key)):
            value = raw
            if _is_templated(raw):
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
    if _is_templated(wd):
        wd = _render_path(wd, params, ctx.wf, s, pattern=False) or "."
    try:
        rel = paths.join(base, wd)
        paths.check_symlinks(root, rel)
    except paths.PathEscape as e:
        ctx.add(sp + ("workdir",), str(e), "keep paths inside the repository")
    return result["inputs"], result["outputs"]


def _check_glob(ctx: _Ctx, where: tuple[Any, ...], key: str, rel: str) -> bool:
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


def _check_shell(ctx: _Ctx, s: Step, sp: tuple[Any, ...]) -> None:
    """``shell:`` must split into a command line whose program can be found now."""
    if s.shell is None:
        return
    import shlex
    import shutil

    where = sp + ("shell",) if "shell" in s.spec else ("spec", "defaults", "shell")
    text = s.spec.get("shell") or " ".join(s.shell)
    try:
        argv = shlex.split(text)
    except ValueError as e:
        ctx.add(where, f"shell {text!r} does not split into words: {e}", "close the quote")
        return
    if not shutil.which(argv[0]):
        ctx.add(
            where,
            f"shell program '{argv[0]}' is not on PATH",
            "install it, or leave shell: out for sh -e",
        )
    program = argv[0].rsplit("/", 1)[-1] if argv else ""
    if isinstance(s.run, str) and _is_templated(s.run) and program not in POSIX_SHELLS:
        # values are quoted for sh; python, node, pwsh or fish read that quoting differently
        ctx.add(
            sp + ("run",),
            f"values in run are quoted for a POSIX shell, and shell: '{program}' is not one,"
            " so a value could become code",
            "pass values in env: and read them from the environment there, or use sh or bash",
        )


POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "posh", "yash"})


def _check_resources(ctx: _Ctx, s: Step, sp: tuple[Any, ...]) -> None:
    """A request no quota governing the step could ever grant is an error now, not a hang."""
    from runner.manifests.quotas import governing

    for q in governing(ctx.m, ctx.wf):
        if q.limits.get("concurrency", 1) < 1:  # every task holds one unit of concurrency
            ctx.add(
                sp + ("name",),
                f"step '{s.name}' can never start: quota '{q.name}' allows concurrency {_fmt(q.limits['concurrency'])}",
                "raise the quota's concurrency to at least 1",
            )
        for res, amount in s.resources.items():
            if res in q.limits and amount > q.limits[res]:
                ctx.add(
                    sp + ("resources", res),
                    f"step '{s.name}' requests {res}={_qty(res, amount)} but quota '{q.name}' allows at most {_qty(res, q.limits[res])}",
                    "lower the request or raise the quota's limit",
                )
    if s.resources.get("cpu") or s.resources.get("memory"):
        from runner.execute.host import host_limits  # psutil: only when a step asks for cpu/memory

        # Kept apart (Manifests.host_diags): the host is the ceiling only where tasks run
        # here, the local executor; on a Dask cluster the workers are (execute.dask).
        kept = len(ctx.out)
        for res, limit in host_limits().items():
            amount = s.resources.get(res, 0.0)
            if amount > limit:
                ctx.add(
                    sp + ("resources", res),
                    f"step '{s.name}' requests {res}={_qty(res, amount)} but this host has {_qty(res, limit)}",
                    "the host is the ceiling of every quota with the local executor; lower the "
                    "request, or run it on a Dask cluster: docs/distributed.md",
                )
        ctx.m.host_diags.extend(ctx.out[kept:])
        del ctx.out[kept:]


def _qty(res: str, x: float) -> str:
    if res == "memory":
        from runner.units import format_bytes

        return format_bytes(x)
    return _fmt(x)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
