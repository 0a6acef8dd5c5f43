"""``StepTemplate``: a step written once and used by many (``uses: NAME`` with ``with:``).

The models are GitHub Actions' composite actions (``uses:``/``with:``, inputs with
defaults, ``required`` where there is none) and Argo's ``templateRef``. A use is expanded
into a plain step before anything else sees the workflow, so checks, fingerprints, plans
and runs treat it exactly as if its fields were written in the step::

    StepTemplate fields ──┐
    the step's own fields ├──> merged step (params: with: over the defaults) ──> model.Step
    with: values ─────────┘

Merge rule, field by field (the step is the more specific, so it wins):

* ``env`` and ``resources``: merged by key, the step's value winning;
* ``inputs``, ``outputs`` and ``secrets``: the step's entries, then the template's;
* every other field (``run``, ``when``, ``workdir``, ``shell``, ``retry``, ``timeout``,
  ``breaker``, ``priority``, ``description``): the step's replaces the template's, and the
  template's replaces the workflow's ``spec.defaults``.

Inside the merged step ``{{ params.X }}`` reads the ``with:`` value, else the template's
default, else the workflow's param ``X`` (a template's own params shadow the workflow's of
the same name). Templates do not nest: a ``uses:`` in a StepTemplate is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.errors import Diagnostic, suggest
from runner.manifests.yamlsrc import Document

MERGED = ("env", "resources")
EXTENDED = ("inputs", "outputs", "secrets")
TEMPLATED = ("run", "when", "workdir", "env", "inputs", "outputs")
_REQUIRED = object()


@dataclass(frozen=True)
class StepTemplate:
    name: str
    path: str  # the manifest file, repo-relative posix
    line: int
    params: dict[str, Any]  # name -> default (``_REQUIRED`` where there is none)
    fields: dict[str, Any] = field(default_factory=dict)  # the step fields, as written

    @property
    def loc(self) -> Any:
        from runner.model import Loc

        return Loc(self.path, self.line, 1)

    @property
    def required(self) -> list[str]:
        return [k for k, v in self.params.items() if v is _REQUIRED]


def build_template(path: str, doc: Document) -> StepTemplate:
    """From a document that passed ``schemas/steptemplate.json``. A param written as
    ``NAME:`` (nothing) or ``{description: ...}`` without ``default`` is required; a
    mapping ``{default: V}`` gives ``V``; any other value is the default itself."""
    spec = dict(doc.data["spec"])
    params: dict[str, Any] = {}
    for k, v in (spec.pop("params", None) or {}).items():
        if v is None:
            params[k] = _REQUIRED
        elif isinstance(v, dict):
            params[k] = v.get("default", _REQUIRED)
        else:
            params[k] = v
    spec.pop("description", None)
    return StepTemplate(doc.data["metadata"]["name"], path, doc.line, params, spec)


def check_template(t: StepTemplate, doc: Document) -> list[Diagnostic]:
    """The template's own mistakes, positioned in its file: a ``uses:`` (templates do not
    nest) and template syntax; names are checked where it is used, where they resolve."""
    from runner.manifests.schema import dotted
    from runner.templating import check_shell_spots, check_syntax

    out: list[Diagnostic] = []

    def add(path: tuple[Any, ...], what: str, hint: str = "") -> None:
        line, col = doc.where(path)
        out.append(Diagnostic(doc.path, line, col, dotted(path), what, hint))

    if "uses" in t.fields:
        add(
            ("spec", "uses"),
            f"StepTemplate '{t.name}' uses another template: templates do not nest",
            "write the fields here, or use both templates from the workflow's steps",
        )
    for key, source in _strings(t.fields):
        err = check_syntax(source)
        if err is None and key == ("run",):  # a shell string: where no quoting can hold
            err = check_shell_spots(source)
        if err is not None:
            add(("spec", *key), f"template error: {err}")
    return out


def _strings(fields: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    out: list[tuple[tuple[Any, ...], str]] = []
    for k in TEMPLATED:
        v = fields.get(k)
        if isinstance(v, str):
            out.append(((k,), v))
        elif isinstance(v, list):
            out += [((k, i), s) for i, s in enumerate(v) if isinstance(s, str)]
        elif isinstance(v, dict):
            out += [((k, n), s) for n, s in v.items() if isinstance(s, str)]
    return out


def expand_steps(
    doc: Document, templates: dict[str, StepTemplate]
) -> tuple[dict[str, Any], list[Diagnostic], tuple[str, ...]]:
    """A workflow document's data with every ``uses:`` step merged with its template, the
    problems found (positioned in this file), and the template files it used.

    A step that cannot be expanded keeps a blank ``run`` so the rest of the workflow is
    still checked; the diagnostics keep it from ever running."""
    data = doc.data
    steps = (data.get("spec") or {}).get("steps")
    if not isinstance(steps, list):
        return data, [], ()
    out: list[Diagnostic] = []
    used: list[str] = []
    expanded = []
    for i, s in enumerate(steps):
        if not isinstance(s, dict):
            expanded.append(s)
            continue
        where = ("spec", "steps", i)
        if "uses" not in s:
            if "run" not in s:
                if (*where, "uses") not in doc.keypos:  # else a bad uses:, said by the schema
                    why = "missing required field 'run'"
                    out.append(_diag(doc, where, why, "or uses: a StepTemplate"))
                s = {**s, "run": ""}
            expanded.append(s)
            continue
        t = templates.get(s["uses"])
        if t is None:
            known = sorted(templates)
            hint = suggest(str(s["uses"]), known, "StepTemplates", "define one: kind: StepTemplate")
            out.append(_diag(doc, (*where, "uses"), f"no StepTemplate named '{s['uses']}'", hint))
            expanded.append({**s, "run": s.get("run", "")})
            continue
        used.append(t.path)
        bad = _check_with(doc, where, s, t)
        out += bad
        # a use already wrong is not merged: its fields, rendered with params it lacks,
        # would only add errors that follow from this one (two steps writing "out/.n")
        expanded.append({**s, "run": s.get("run", "")} if bad else merge(t, s))
    new = dict(data)
    new["spec"] = {**data["spec"], "steps": expanded}
    return new, out, tuple(dict.fromkeys(used))


def _check_with(
    doc: Document, where: tuple[Any, ...], s: dict[str, Any], t: StepTemplate
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    given = s.get("with") or {}
    known = list(t.params)
    for k, v in given.items():
        if k not in t.params:
            hint = suggest(str(k), known, "its params", "it takes none")
            out.append(
                _diag(doc, (*where, "with", k), f"StepTemplate '{t.name}' has no param '{k}'",
                      hint, key=True)
            )  # fmt: skip
        elif isinstance(v, str) and ("{{" in v or "{%" in v):
            out.append(
                _diag(doc, (*where, "with", k), "with: values are data, not templates",
                      "the template reads the workflow's params itself: {{ params.NAME }}")
            )  # fmt: skip
    for k in t.required:
        if k not in given and not ("with" not in s and (*where, "with") in doc.keypos):
            out.append(
                _diag(doc, (*where, "uses"), f"StepTemplate '{t.name}' needs param '{k}'",
                      f"set it under with:; the template is at {t.path}:{t.line}")
            )  # fmt: skip
    if "params" in s:
        out.append(
            _diag(doc, (*where, "params"), "a step with uses: takes its values in with:",
                  "move these into with:", key=True)
        )  # fmt: skip
    return out


def merge(t: StepTemplate, s: dict[str, Any]) -> dict[str, Any]:
    """The step ``s`` (which says ``uses: t``) as a plain step; see the module doc."""
    out = {k: v for k, v in t.fields.items() if k != "uses"}
    for k, v in s.items():
        if k == "with":
            continue
        if k in MERGED and isinstance(v, dict):
            out[k] = {**(t.fields.get(k) or {}), **v}
        elif k in EXTENDED and isinstance(v, list):
            out[k] = list(dict.fromkeys([*v, *(t.fields.get(k) or [])]))
        else:
            out[k] = v
    given = s.get("with") or {}
    # a required param not given is reported by _check_with; None keeps it from being
    # reported again as an unknown name wherever the template reads it
    out["params"] = {k: given.get(k, None if d is _REQUIRED else d) for k, d in t.params.items()}
    return out


def _diag(
    doc: Document, path: tuple[Any, ...], what: str, hint: str = "", key: bool = False
) -> Diagnostic:
    from runner.manifests.schema import dotted

    line, col = doc.where(path, key=key)
    return Diagnostic(doc.path, line, col, dotted(path), what, hint)
