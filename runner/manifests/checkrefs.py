"""Checks of templates: the syntax of every templated field of a step or an ``on:``
command, and every name it reads (params, steps, env, git, matrix, item...), with the
references recorded on the catalog (which params, env variables and git values a step reads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.errors import did_you_mean
from runner.manifests.checkctx import Ctx, inherited, is_templated
from runner.model import Step
from runner.shellcode import shell_command_string

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


def _syntax(source: str, shell: bool = False) -> str | None:
    if not is_templated(source):
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
    return [(p, v) for p, v in fields if is_templated(v)]


def check_templates(
    ctx: Ctx, s: Step, sp: tuple[Any, ...], names: dict[str, int], known_params: set[str]
) -> set[str]:
    """Syntax and references of every templated field; returns the steps referenced. What
    the step reads (params, env, git, project) is recorded on the catalog for its
    fingerprint."""
    fields = _template_fields(s)
    if not fields:
        return set()
    if not isinstance(s.run, str):
        _warn_shell_list(ctx, sp + ("run",), s.run)
    reads = _Reads()
    for rel, source in fields:
        refs = _field_references(ctx, sp + rel, rel, source)
        if refs is None:
            continue
        guarded = "default" in source or " is defined" in source or ".get(" in source
        is_path = rel[0] in ("inputs", "outputs", "workdir")
        f = _Field(ctx, s, sp + rel, guarded, is_path, names, known_params)
        for ref in sorted(refs):
            _check_ref(f, ref, reads)
    reads.record(ctx.m, (ctx.wf.name, s.name))
    return reads.steps


def _field_references(
    ctx: Ctx, path: tuple[Any, ...], rel: tuple[Any, ...], source: str
) -> set[tuple[str, ...]] | None:
    """The names one field's template reads, or None after saying its syntax error (a
    field a step took from its StepTemplate: said once, in the template's file)."""
    from runner.templating import TemplateError, check_shell_spots, check_syntax, references

    err = check_syntax(source)
    if err is None and rel == ("run",):
        err = check_shell_spots(source)
    if err is not None:
        if inherited(ctx.doc, path) is None:  # else said once, in the template's file
            ctx.add(path, f"template error: {err}", _line_hint(err))
        return None
    try:
        return references(source)
    except TemplateError as e:  # pragma: no cover - syntax already checked
        ctx.add(path, f"template error: {e}")
        return None


@dataclass(frozen=True)
class _Field:
    """One templated field of a step, as the per-root checks need it."""

    ctx: Ctx
    step: Step
    path: tuple[Any, ...]
    guarded: bool  # ``| default``, ``is defined`` or ``.get(``: a missing name is allowed
    is_path: bool  # inputs, outputs, workdir: decided before anything runs
    names: dict[str, int]  # the workflow's step names -> index
    known_params: set[str]


@dataclass
class _Reads:
    """What one step's templates read, over all its fields: the steps they refer to, and
    the params, env variables and git values (None: all of them, read by a name computed
    at render time)."""

    steps: set[str] = field(default_factory=set)
    project: bool = False
    params: set[str] | None = field(default_factory=set)
    env: set[str] | None = field(default_factory=set)
    git: set[str] | None = field(default_factory=set)

    def record(self, m: Manifests, key: tuple[str, str]) -> None:
        """Onto the catalog, for the step's fingerprint."""
        m.param_refs[key] = tuple(sorted(self.params)) if self.params is not None else None
        if self.project:
            m.project_reads[key] = True
        if self.env is None or self.env:
            m.env_refs[key] = tuple(sorted(self.env)) if self.env is not None else None
        if self.git is None or self.git:
            m.git_refs[key] = tuple(sorted(self.git)) if self.git is not None else None


def _check_ref(f: _Field, ref: tuple[str, ...], reads: _Reads) -> None:
    """One name a field reads: a known root, allowed where it is read, then its root's own
    check (``ROOT_CHECKS``)."""
    root = ref[0]
    if root in JINJA_GLOBALS:
        return
    if root not in TEMPLATE_ROOTS:
        f.ctx.add(
            f.path,
            f"unknown name '{root}' in template",
            did_you_mean(root, TEMPLATE_ROOTS) or f"use one of {', '.join(TEMPLATE_ROOTS)}",
        )
        return
    if f.is_path and root in PATH_REFUSED:
        f.ctx.add(f.path, f"paths may use params, not {PATH_REFUSED[root]}",
                  "paths are known before anything runs, from the manifest and params alone")  # fmt: skip
        return
    check = ROOT_CHECKS.get(root)
    if check is not None:
        check(f, ref, reads)


def _steps_ref(f: _Field, ref: tuple[str, ...], reads: _Reads) -> None:
    """``steps.NAME.outputs.KEY`` (or ``.status``, ``.exit_code``) of another step of the
    workflow, which becomes its upstream; ``steps.G`` of a fan-out: ``_group_ref``."""
    if len(ref) < 2:
        return
    target = str(ref[1])
    if target in f.ctx.wf.groups:
        reads.steps |= _group_ref(f, ref)
        return
    ctx, s = f.ctx, f.step
    if f.is_path:
        ctx.add(
            f.path,
            "paths may use params, not step outputs",
            "declare the file as an input instead",
        )
    elif target == s.name:
        ctx.add(f.path, f"step '{s.name}' refers to its own outputs")
    elif target not in f.names:
        ctx.add(f.path, f"no step named '{target}'", did_you_mean(target, list(f.names)))
    elif "matrix" in ctx.wf.step(target).spec or "foreach" in ctx.wf.step(target).spec:
        reads.steps.add(target)  # a fan-out that failed, reported where it is written
    else:
        reads.steps.add(target)
        if len(ref) >= 3 and ref[2] != "outputs" and ref[2] not in ("status", "exit_code"):
            ctx.add(
                f.path,
                f"steps.{target}.{ref[2]} is not defined",
                "use steps.NAME.outputs.KEY",
            )


def _params_ref(f: _Field, ref: tuple[str, ...], reads: _Reads) -> None:
    """``params.NAME``: declared (by the workflow, its project or an environment), unless
    the template guards it."""
    if len(ref) < 2:
        reads.params = None
        return
    p = str(ref[1])
    if reads.params is not None:
        reads.params.add(p)
    if not f.guarded and p not in f.known_params:
        f.ctx.add(
            f.path,
            f"no param named '{p}'",
            did_you_mean(p, f.known_params) or "declare it in spec.params, or use | default(...)",
        )


def _env_ref(f: _Field, ref: tuple[str, ...], reads: _Reads) -> None:
    """``env.NAME``: recorded, so a change of that variable changes the fingerprint."""
    if f.is_path and not f.guarded:
        f.ctx.add(
            f.path,
            "paths may use params, not env: where a file is must not depend on who runs orch",
            "use a param (orch apply --env, or params:), or read the variable in run",
        )
    elif len(ref) < 2:
        reads.env = None  # read by a name computed at render time: all of it counts
    elif reads.env is not None:
        reads.env.add(str(ref[1]))


def _project_ref(f: _Field, ref: tuple[str, ...], reads: _Reads) -> None:
    reads.project = True


def _git_ref(f: _Field, ref: tuple[str, ...], reads: _Reads) -> None:
    """One ``git.KEY`` a template reads, added to ``reads.git`` (None: all of them, for
    ``git`` read whole or by a computed key). Paths may not read it: they are decided before
    anything runs, from the manifest and params alone."""
    from runner.manifests.sources import GIT_KEYS

    if f.is_path:
        f.ctx.add(
            f.path, "paths may use params, not git values", "paths are known before anything runs"
        )
        return
    if len(ref) < 2:
        reads.git = None
        return
    if ref[1] not in GIT_KEYS:
        hint = did_you_mean(str(ref[1]), GIT_KEYS) or f"use one of {', '.join(GIT_KEYS)}"
        f.ctx.add(f.path, f"git.{ref[1]} is not defined", hint)
        return
    if reads.git is not None:
        reads.git.add(str(ref[1]))


def _fan_ref(f: _Field, ref: tuple[str, ...], reads: _Reads) -> None:
    """``matrix.KEY`` only in a matrix step, naming one of its keys; ``item`` only in a
    foreach step (its fields are checked when the instance renders)."""
    ctx, s, path = f.ctx, f.step, f.path
    root = ref[0]
    kind = "matrix" if root == "matrix" else "foreach"
    if root not in s.fan:
        if not s.group and ("matrix" in s.spec or "foreach" in s.spec):
            return  # its fan-out failed, and that is reported where it is written
        if s.group:  # an instance of the other kind of fan-out
            ctx.add(path, f"'{root}' is not defined in a step with {'foreach' if root == 'matrix' else 'matrix'}",
                    f"this step fans out with {'foreach: read item' if root == 'matrix' else 'matrix: read matrix.KEY'}")  # fmt: skip
        else:
            ctx.add(path, f"'{root}' is only defined in a step with {kind}:",
                    f"add {kind}: to step '{s.name}', or use params")  # fmt: skip
        return
    if root == "matrix" and len(ref) >= 2 and not f.guarded and str(ref[1]) not in s.fan["matrix"]:
        keys = list(s.fan["matrix"])
        ctx.add(path, f"matrix key '{ref[1]}' is not set in every combination of step '{s.group}'",
                did_you_mean(str(ref[1]), keys) or f"keys: {', '.join(keys)}")  # fmt: skip


def _group_ref(f: _Field, ref: tuple[str, ...]) -> set[str]:
    """``steps.G`` where G fans out: only ``steps.G.instances`` (every instance's key or
    item and outputs) is defined; it makes every instance an upstream step, and for a
    foreach over a step's outputs that step too (its instances may be none yet): the
    reader waits for them as ``needs: [G]`` does (``Manifests.fan_waits``)."""
    ctx, s, path = f.ctx, f.step, f.path
    target = str(ref[1])
    if f.is_path:
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


# the check of each root a step's template may read, after the checks every name gets
# (known, allowed in a path); ``workflow`` and ``step`` need none
ROOT_CHECKS: dict[str, Callable[[_Field, tuple[str, ...], _Reads], None]] = {
    "steps": _steps_ref,
    "params": _params_ref,
    "env": _env_ref,
    "git": _git_ref,
    "project": _project_ref,
    "matrix": _fan_ref,
    "item": _fan_ref,
}


HANDLER_ROOTS = ("params", "steps", "workflow", "env")


def check_handlers(ctx: Ctx, names: dict[str, int], known_params: set[str]) -> None:
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
                if not is_templated(r):
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


def _warn_shell_list(ctx: Ctx, path: tuple[Any, ...], argv: Any) -> None:
    """A ``run`` list that hands a templated string to a shell: its values go in unquoted."""
    i = shell_command_string(argv)
    if i is not None and is_templated(argv[i]):
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
