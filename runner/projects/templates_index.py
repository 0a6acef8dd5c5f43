"""Template discovery and description: where templates come from, what they take.

::

    runner/templates/{project,workflow}/NAME/   shipped with orch     ─┐
    <.orch/config.yaml `templates:`>/NAME/      the repository's own  ─┴─> discover()

A template folder holds ``template.yaml`` (kind, description, parameters, the workflow
templates a project lays out with it, and the files it borrows from a workflow template).
This module reads and checks those, and types ``--param`` values by their defaults;
``runner.projects.scaffold`` renders the files and moves them into place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import Diagnostic, OrchError, UsageError, did_you_mean, suggest

if TYPE_CHECKING:
    from runner.workspace import Repo

KINDS = ("project", "workflow")
META = "template.yaml"
PARAM_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SKIP_NAMES = ("__pycache__", ".DS_Store")
SKIP_SUFFIXES = (".pyc", ".pyo")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def builtin_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "templates"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Param:
    """One template parameter; its default's type is the type a ``--param`` value gets."""

    name: str
    default: Any = None
    required: bool = False
    description: str = ""
    choices: tuple[Any, ...] = ()

    @property
    def type(self) -> str:
        d = self.default
        if isinstance(d, bool):
            return "boolean"
        if isinstance(d, int):
            return "integer"
        if isinstance(d, float):
            return "number"
        return "string"

    def coerce(self, raw: str) -> Any:
        """``--param k=v`` text as the value the template expects, or why it cannot be."""
        kind = self.type
        text = raw.strip()
        try:
            if kind == "boolean":
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError
            if kind == "integer":
                return int(text)
            if kind == "number":
                return float(text)
        except ValueError:
            word = {"boolean": "true or false", "integer": "a whole number", "number": "a number"}
            raise UsageError(
                f"--param {self.name}={raw}: expected {word[kind]} (the default is {_show(self.default)})"
            ) from None
        return raw

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "default": None if self.required else self.default,
            "required": self.required,
            "description": self.description,
            "choices": list(self.choices),
        }


@dataclass(frozen=True)
class Include:
    """A workflow template a project template lays out into the project's folder too."""

    template: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Borrow:
    """Files a template takes from a workflow template, so a shared script has one copy."""

    template: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    kind: str
    name: str
    description: str
    dir: Path
    source: str  # "builtin", or the repository folder it came from
    params: tuple[Param, ...] = ()
    workflows: tuple[Include, ...] = ()
    borrows: tuple[Borrow, ...] = ()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "description": self.description,
            "parameters": [p.to_json() for p in self.params],
            "workflows": [
                {"template": i.template, "name": i.name, "params": i.params} for i in self.workflows
            ],
            "files": [{"template": b.template, "paths": list(b.paths)} for b in self.borrows],
        }


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    return str(v)


# --------------------------------------------------------------------------- discovery


def template_roots(root: Path, folder: str | None) -> list[tuple[Path, str]]:
    """Where templates come from, builtin first so the repository's own override them."""
    roots = [(builtin_dir(), "builtin")]
    if folder:
        from runner.manifests import paths

        try:
            rel = paths.join("", folder).rstrip("/")
        except paths.PathEscape as e:
            raise OrchError(f".orch/config.yaml: templates: {e}") from None
        d = root / rel
        if not d.is_dir():
            raise OrchError(f".orch/config.yaml: templates: {folder}: no such folder")
        roots.append((d, rel or "."))
    return roots


def discover(root: Path, folder: str | None = None) -> list[Template]:
    """Every template, sorted by kind and name; a repository template hides a builtin one."""
    found: dict[tuple[str, str], Template] = {}
    diags: list[Diagnostic] = []
    for base, source in template_roots(root, folder):
        for d in _template_dirs(base):
            display = (
                f"{source}/{d.relative_to(base).as_posix()}/{META}"
                if source != "builtin"
                else f"{d.relative_to(base.parent.parent).as_posix()}/{META}"
            )
            t, errs = _read_template(d, source, display)
            diags.extend(errs)
            if t is not None:
                found[(t.kind, t.name)] = t
    if diags:
        raise OrchError(diagnostics=diags)
    return sorted(found.values(), key=lambda t: (t.kind, t.name))


def _template_dirs(base: Path) -> list[Path]:
    """Folders holding a ``template.yaml``, one or two levels down (``kind/name/`` or ``name/``);
    a template's own sub-folders are never searched."""
    out = []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and p.name not in SKIP_NAMES):
        if (d / META).is_file():
            out.append(d)
            continue
        out.extend(sub for sub in sorted(d.iterdir()) if sub.is_dir() and (sub / META).is_file())
    return out


def _read_template(d: Path, source: str, display: str) -> tuple[Template | None, list[Diagnostic]]:
    from runner.manifests.yamlsrc import load_text, read_file

    text, diag = read_file(d / META, display)
    if diag:
        return None, [diag]
    assert text is not None
    docs, diags = load_text(text, display)
    if diags:
        return None, diags
    if not docs or not isinstance(docs[0].data, dict):
        return None, [
            Diagnostic(display, 1, 1, "", "expected a mapping with kind, description, parameters")
        ]
    doc = docs[0]
    data: dict[str, Any] = doc.data
    out: list[Diagnostic] = []

    def err(path: tuple[Any, ...], what: str, hint: str = "", key: bool = False) -> None:
        from runner.manifests.schema import dotted

        line, col = doc.where(path, key=key)
        out.append(Diagnostic(display, line, col, dotted(path), what, hint))

    allowed = ("kind", "description", "parameters", "workflows", "files")
    for k in data:
        if k not in allowed:
            err((k,), f"unknown field '{k}'", did_you_mean(str(k), allowed), key=True)
    kind = data.get("kind")
    if kind not in KINDS:
        err(("kind",), f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        err(("description",), "expected a string")
        description = ""
    params: list[Param] = []
    raw_params = data.get("parameters") or {}
    if not isinstance(raw_params, dict):
        err(("parameters",), "expected a mapping of parameter name to {default, description}")
        raw_params = {}
    for name, spec in raw_params.items():
        p = ("parameters", name)
        if not isinstance(name, str) or not PARAM_PATTERN.match(name):
            err(
                p,
                f"{name!r} is not a valid parameter name",
                "use letters, digits and '_'",
                key=True,
            )
            continue
        if not isinstance(spec, dict):
            params.append(Param(name, spec, spec is None))  # shorthand: `name: default`
            continue
        for k in spec:
            if k not in ("default", "description", "choices"):
                err(p + (k,), f"unknown field '{k}'", "use default, description, choices", key=True)
        choices = spec.get("choices") or []
        if not isinstance(choices, list):
            err(p + ("choices",), "expected a list")
            choices = []
        params.append(
            Param(
                name,
                spec.get("default"),
                spec.get("default") is None,
                str(spec.get("description") or ""),
                tuple(choices),
            )
        )
    includes: list[Include] = []
    raw_inc = data.get("workflows") or []
    if raw_inc and kind != "project":
        err(("workflows",), "only a project template lays out workflow templates")
    elif not isinstance(raw_inc, list):
        err(("workflows",), "expected a list of {template, name, params}")
    else:
        for i, inc in enumerate(raw_inc):
            p = ("workflows", i)
            if not isinstance(inc, dict) or not isinstance(inc.get("template"), str):
                err(p, "expected {template: NAME, name: WORKFLOW-NAME, params: {...}}")
                continue
            for k in inc:
                if k not in ("template", "name", "params"):
                    err(p + (k,), f"unknown field '{k}'", "use template, name, params", key=True)
            params_inc = inc.get("params") or {}
            if not isinstance(params_inc, dict):
                err(p + ("params",), "expected a mapping")
                params_inc = {}
            includes.append(
                Include(inc["template"], str(inc.get("name") or "{{ name }}"), dict(params_inc))
            )
    borrows: list[Borrow] = []
    raw_files = data.get("files") or []
    if not isinstance(raw_files, list):
        err(("files",), "expected a list of {template, paths}")
        raw_files = []
    for i, b in enumerate(raw_files):
        p = ("files", i)
        paths = b.get("paths") if isinstance(b, dict) else None
        if (
            not isinstance(b, dict)
            or not isinstance(b.get("template"), str)
            or not isinstance(paths, list)
            or not all(isinstance(x, str) and x for x in paths)
        ):
            err(p, "expected {template: WORKFLOW-TEMPLATE, paths: [FILE, ...]}")
            continue
        for k in b:
            if k not in ("template", "paths"):
                err(p + (k,), f"unknown field '{k}'", "use template, paths", key=True)
        borrows.append(Borrow(b["template"], tuple(paths)))
    if out:
        return None, out
    return (
        Template(
            str(kind),
            d.name,
            description.strip(),
            d,
            source,
            tuple(params),
            tuple(includes),
            tuple(borrows),
        ),
        [],
    )


def find(templates: list[Template], kind: str, name: str) -> Template:
    for t in templates:
        if t.kind == kind and t.name == name:
            return t
    others = [t for t in templates if t.name == name]
    if others:
        other = others[0].kind
        raise UsageError(
            f"'{name}' is a {other} template, not a {kind} template "
            f"(use orch {other} create ... --template {name})"
        )
    names = sorted(t.name for t in templates if t.kind == kind)
    hint = suggest(name, names, f"{kind} templates", f"{kind} templates: none")
    raise UsageError(f"no {kind} template named '{name}' ({hint}; see orch template list)")


def list_templates(repo: Repo) -> list[Template]:
    from runner.manifests.load import read_config

    config, diags = read_config(repo.root)
    if diags:
        raise OrchError(diagnostics=diags)
    return discover(repo.root, config.templates)


# --------------------------------------------------------------------------- parameters


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` from the command line; a later ``k`` wins, as in make."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair}: write it as NAME=VALUE")
        out[key.strip()] = value
    return out


def resolve_params(t: Template, given: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The template's parameter values: given ones coerced to their type, the rest defaulted.

    A string default may itself be a template (``"{{ name }}: analysis"``); it sees the
    context and the parameters before it.
    """
    from runner.templating import TemplateError, is_templated, render_text

    known = [p.name for p in t.params]
    unknown = [k for k in given if k not in known]
    if unknown:
        k = unknown[0]
        hint = suggest(k, known, "its parameters", "it takes none")
        raise UsageError(f"template '{t.name}' has no parameter '{k}' ({hint})")
    out: dict[str, Any] = {}
    missing = []
    for p in t.params:
        if p.name in given:
            v = given[p.name]
            v = p.coerce(v) if isinstance(v, str) and p.type != "string" else v
        elif p.required:
            missing.append(p.name)
            continue
        else:
            v = p.default
            if isinstance(v, str) and is_templated(v):
                try:
                    v = render_text(v, {**context, "params": dict(out)})
                except TemplateError as e:
                    raise OrchError(
                        f"template '{t.name}': parameter {p.name}: default: {e.message}"
                    ) from None
        if p.choices and v not in p.choices:
            raise UsageError(
                f"--param {p.name}={_show(v)}: not one of {', '.join(_show(c) for c in p.choices)}"
            )
        out[p.name] = v
    if missing:
        raise UsageError(
            f"template '{t.name}' needs "
            + ", ".join(f"--param {m}=..." for m in missing)
            + " (see orch template list)"
        )
    return out
