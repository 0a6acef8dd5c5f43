"""Fan-out: a step with ``matrix:`` or ``foreach:`` becomes one ordinary step per instance.

Expansion happens at load time, before the checks, so everything after the loader (the
DAG, fingerprints, records, logs, retries, quotas) sees plain steps named ``STEP[...]``
and needs no notion of fan-out (Argo's ``withItems``, DVC's ``foreach`` stages and
GitHub Actions' ``strategy.matrix`` all make instances the same kind of thing as a job).

- ``matrix:`` a mapping of lists: the cartesian product, the first key outermost
  (GitHub Actions' order); ``exclude:`` drops every combination that matches an entry on
  all of the entry's keys (a partial match); ``include:`` then adds each entry's pairs
  to every original combination whose original keys it does not contradict, or, when it
  fits none, is a combination of its own (GitHub's documented include rule: an added
  value may be overwritten by a later entry, an original one never). Instance name:
  ``STEP[k1=v1,k2=v2]``, keys in the order written.
- ``foreach:`` a glob (relative to the manifest's folder, matched as inputs are, links
  followed by ``runner.links``): one instance per file, ``STEP[PATH]``, reading
  ``item.path``/``name``/``stem``/``dir``; or a list: ``STEP[VALUE]``, reading ``item``.

Each instance keeps the fan-out step's ``index`` (diagnostics point at what was written),
gets ``group`` (the step's name) and ``fan`` (the ``matrix``/``item`` values its
templates read, part of its fingerprint). ``needs: [STEP]`` becomes every instance.
"""

from __future__ import annotations

import itertools
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runner.errors import Diagnostic
from runner.model import Step, Workflow

if TYPE_CHECKING:
    from pathlib import Path

    from runner.manifests.catalog import Manifests
    from runner.manifests.yamlsrc import Document

DEFAULT_LIMIT = 10_000  # instances per fan-out step; .orch/config.yaml max_instances
_DYNAMIC = re.compile(
    r"\A\{\{\s*steps\.([A-Za-z0-9_][A-Za-z0-9_-]*)\.outputs\.([A-Za-z_]\w*)\s*\}\}\Z"
)
OutputsOf = Callable[[str, str], "tuple[str, dict[str, str]] | None"]


def fanned(wf: Workflow) -> bool:
    return any("matrix" in s.spec or "foreach" in s.spec for s in wf.steps)


def value_text(v: Any) -> str:
    """A matrix or item value as it appears in an instance name: YAML's spelling of
    booleans and null, numbers and strings as written, anything else compact JSON."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (str, int, float)):
        return str(v)
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def instance_name(step: str, key: dict[str, Any] | Any) -> str:
    if isinstance(key, dict):
        return f"{step}[{','.join(f'{k}={value_text(v)}' for k, v in key.items())}]"
    return f"{step}[{value_text(key)}]"


def matrix_combinations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The combinations of a ``matrix:`` mapping, in order, by GitHub Actions' rules (see
    the module's docstring). Raises nothing: the schema has checked the shapes."""
    axes = {k: v for k, v in spec.items() if k not in ("include", "exclude")}
    combos: list[dict[str, Any]] = []
    if axes:
        keys = list(axes)
        combos = [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*axes.values())]
    for ex in spec.get("exclude") or ():
        combos = [c for c in combos if not all(k in c and c[k] == v for k, v in ex.items())]
    originals = [dict(c) for c in combos]  # only original keys decide whether an entry fits
    extra: list[dict[str, Any]] = []
    for inc in spec.get("include") or ():
        fits = False
        for c, orig in zip(combos, originals, strict=True):
            if all(orig[k] == v for k, v in inc.items() if k in orig):
                c.update(inc)
                fits = True
        if not fits:
            extra.append(dict(inc))
    return combos + extra


def _loc(doc: Document, path: tuple[Any, ...], what: str, hint: str = "") -> Diagnostic:
    from runner.manifests.schema import dotted

    line, col = doc.where(path)
    return Diagnostic(doc.path, line, col, dotted(path), what, hint)


def glob_files(root: Path, rel_pattern: str, seen: dict[str, Any]) -> list[str]:
    """Repo-relative files matching a repo-relative glob, sorted, found as input globs are
    (``runner.links`` walks, the same skipped folders); each folder walked is noted in
    ``seen`` ("path/" -> its stat key), so a file added or removed there is noticed by the
    manifest cache and the no-op witness."""
    from runner import globs, links, statkey

    prefix = globs.literal_prefix(rel_pattern)
    rx = globs.compile_glob(rel_pattern)
    skip = links.SKIP_DIRS.difference(rel_pattern.split("/"))
    out = []
    for rel, full, is_dir in links.walk(str(root), prefix, skip=skip):
        if is_dir:
            seen[rel + "/" if rel else "/"] = statkey.dir_stat(full)
        elif rx.match(rel):
            out.append(rel)
    out.sort()
    return out


def file_item(rel_to_base: str) -> dict[str, str]:
    name = posixpath.basename(rel_to_base)
    stem, dot, _ext = name.rpartition(".")
    return {
        "path": rel_to_base,
        "name": name,
        "stem": stem if dot and stem else name,
        "dir": posixpath.dirname(rel_to_base) or ".",
    }


def expand(
    wf: Workflow,
    doc: Document,
    root: Path,
    limit: int,
    m: Manifests,
    outputs_of: OutputsOf | None = None,
) -> tuple[Workflow, list[Diagnostic]]:
    """``wf`` with each fan-out step replaced by its instances, and what is wrong. The
    folders a glob walked go to ``m.fan_seen``, the glob itself to ``m.fan_globs``;
    ``outputs_of(workflow, step)`` is a step's recorded (status, outputs), or None, for a
    ``foreach`` over an upstream output (none given: no such instance is known yet)."""
    diags: list[Diagnostic] = []
    groups: dict[str, tuple[str, ...]] = {}
    steps: list[Step] = []
    for s in wf.steps:
        sp = ("spec", "steps", s.index)
        if "matrix" in s.spec and "foreach" in s.spec:
            diags.append(
                _loc(doc, sp + ("foreach",), f"step '{s.name}' has both matrix and foreach",
                     "a step fans out over one of them: keep matrix, or foreach")
            )  # fmt: skip
            steps.append(s)
            continue
        if "matrix" in s.spec:
            made = _matrix(s, sp, doc, limit, diags)
        elif "foreach" in s.spec:
            made = _foreach(wf, s, sp, doc, root, limit, m, diags, outputs_of)
        else:
            steps.append(s)
            continue
        if made is None:
            steps.append(s)  # the other checks still run on the step as written
            continue
        groups[s.name] = tuple(i.name for i in made)
        steps.extend(made)
    if groups:
        # needing a foreach over a step's outputs is needing that step too: its instances
        # may be none yet, and what reads them must not run before they can be known
        need_map = dict(groups)
        for w, g, src, _key in m.fan_dynamic:
            if w == wf.name and g in need_map:
                need_map[g] = (*need_map[g], src)
                for s in steps:
                    if g in s.needs and s.group != g:
                        k = (wf.name, s.name)
                        m.fan_waits[k] = (*m.fan_waits.get(k, ()), g)
        steps = [_expand_needs(s, need_map) for s in steps]
    by_name = {s.name: s for s in reversed(steps)}
    return replace(wf, steps=tuple(steps), by_name=by_name, groups=groups), diags


def _expand_needs(s: Step, groups: dict[str, tuple[str, ...]]) -> Step:
    if not any(n in groups and n != s.group for n in s.needs):
        return s
    needs: list[str] = []
    for n in s.needs:
        # a step's own group is left as written: the checks say it needs itself
        needs.extend(groups[n] if n in groups and n != s.group else (n,))
    return replace(s, needs=tuple(dict.fromkeys(needs)))


def _templated_values(s: Step, sp: tuple[Any, ...], doc: Document, diags: list[Diagnostic]) -> bool:
    """Whether a written ``matrix:`` or ``foreach:`` list value is a template, each said:
    values are data, as ``with:`` values are (a ``{{ params.x }}`` there would otherwise
    be the literal text in every command and instance name)."""
    where: list[tuple[Any, ...]] = []
    spec = s.spec.get("matrix")
    if isinstance(spec, dict):
        for k, vals in spec.items():
            rows = vals if k in ("include", "exclude") else [{None: v} for v in vals]
            for i, row in enumerate(rows):
                for kk, v in row.items():
                    at = ("matrix", k, i) if kk is None else ("matrix", k, i, kk)
                    if isinstance(v, str) and ("{{" in v or "{%" in v):
                        where.append(at)
    elif isinstance(s.spec.get("foreach"), list):
        for i, v in enumerate(s.spec["foreach"]):
            if isinstance(v, str) and ("{{" in v or "{%" in v):
                where.append(("foreach", i))
    for at in where:
        diags.append(
            _loc(doc, sp + at, f"{at[0]} values are data, not templates",
                 "write the values out; to fan out over a step's output, write "
                 'foreach: "{{ steps.NAME.outputs.KEY }}"')
        )  # fmt: skip
    return bool(where)


def _instances(
    s: Step,
    sp: tuple[Any, ...],
    field: str,
    doc: Document,
    limit: int,
    diags: list[Diagnostic],
    values: list[tuple[Any, dict[str, Any]]],
) -> list[Step] | None:
    """One Step per (name key, template values); None after a diagnostic."""
    if not values:
        diags.append(_loc(doc, sp + (field,), f"the {field} of step '{s.name}' is empty",
                          "give it at least one value"))  # fmt: skip
        return None
    if len(values) > limit:
        diags.append(
            _loc(doc, sp + (field,),
                 f"the {field} of step '{s.name}' makes {len(values)} instances, more than "
                 f"the limit of {limit}",
                 "fan out over fewer values, or raise max_instances in .orch/config.yaml")
        )  # fmt: skip
        return None
    out: list[Step] = []
    first: dict[str, int] = {}
    for i, (key, fan) in enumerate(values):
        name = instance_name(s.name, key)
        if name in first:
            diags.append(
                _loc(doc, sp + (field,),
                     f"step '{s.name}' has two instances named '{name}' "
                     f"(values {first[name] + 1} and {i + 1})",
                     "make each combination or item unique")
            )  # fmt: skip
            return None
        first[name] = i
        inst = replace(s, name=name, group=s.name, fan=fan)
        out.append(_literal_paths(inst) if s.inputs or s.outputs or s.workdir != "." else inst)
    return out


_SIMPLE = re.compile(r"\{\{-?\s*(item|matrix)(?:\.([A-Za-z_]\w*))?\s*-?\}\}")


def _literal_paths(inst: Step) -> Step:
    """``inst`` with each input, output and workdir that reads nothing but ``{{ item }}``,
    ``{{ item.KEY }}`` or ``{{ matrix.KEY }}`` (a text or number) written out: thousands
    of instances must not cost two Jinja renders per path at every plan. Anything else
    (a filter, params, a missing key) stays a template, rendered and checked as before.
    In inputs and outputs the values are glob-escaped, as ``paths.render`` does."""

    from runner import globs

    def lit(raw: str, pattern: bool = True) -> str:
        if "{" not in raw or "{%" in raw or "{#" in raw or "\n" in raw:
            return raw
        bad = False

        def sub(m: re.Match[str]) -> str:
            nonlocal bad
            v = inst.fan.get(m.group(1))
            if m.group(2) is not None:
                v = v.get(m.group(2)) if isinstance(v, dict) else None
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                bad = True
                return ""
            # a value in a pattern is data: a file a[1].txt names that file, not a glob
            return globs.escape(str(v)) if pattern else str(v)

        out = _SIMPLE.sub(sub, raw)
        return raw if bad or "{{" in out or "}}" in out else out

    return replace(
        inst,
        inputs=tuple(lit(p) for p in inst.inputs),
        outputs=tuple(lit(p) for p in inst.outputs),
        workdir=lit(inst.workdir, pattern=False),
    )


def _matrix(
    s: Step, sp: tuple[Any, ...], doc: Document, limit: int, diags: list[Diagnostic]
) -> list[Step] | None:
    spec = s.spec["matrix"]
    axes = [v for k, v in spec.items() if k not in ("include", "exclude")]
    size = 1
    for v in axes:
        size *= len(v)
    if axes and size > limit:  # said before the product is built: 100^4 would not fit
        diags.append(
            _loc(doc, sp + ("matrix",),
                 f"the matrix of step '{s.name}' makes {size} combinations, more than the "
                 f"limit of {limit}",
                 "exclude combinations, split the step, or raise max_instances in "
                 ".orch/config.yaml")
        )  # fmt: skip
        return None
    names = [k for k in spec if k not in ("include", "exclude")]
    bad = False
    for i, ex in enumerate(spec.get("exclude") or ()):
        for k in ex:
            if k not in names:  # GitHub Actions refuses it too: it would drop nothing
                from runner.errors import did_you_mean

                diags.append(
                    _loc(doc, sp + ("matrix", "exclude", i, k),
                         f"exclude key '{k}' is not a key of the matrix of step '{s.name}'",
                         did_you_mean(k, names) or f"use one of: {', '.join(names) or 'none'}")
                )  # fmt: skip
                bad = True
    if bad or _templated_values(s, sp, doc, diags):
        return None
    combos = matrix_combinations(spec)
    at = (*sp, "matrix")
    refused = [
        p for p in doc.keypos if len(p) == len(at) + 1 and p[: len(at)] == at and p[-1] not in spec
    ]
    if not combos and refused:
        return None  # keys the schema refused (said there) left it empty: not said again
    return _instances(s, sp, "matrix", doc, limit, diags, [(c, {"matrix": c}) for c in combos])


def _foreach(
    wf: Workflow,
    s: Step,
    sp: tuple[Any, ...],
    doc: Document,
    root: Path,
    limit: int,
    m: Manifests,
    diags: list[Diagnostic],
    outputs_of: OutputsOf | None,
) -> list[Step] | None:
    spec = s.spec["foreach"]
    if isinstance(spec, list):
        if _templated_values(s, sp, doc, diags):
            return None
        return _instances(s, sp, "foreach", doc, limit, diags, [(v, {"item": v}) for v in spec])
    from runner import globs
    from runner.manifests import paths

    where = sp + ("foreach",)
    if "{{" in spec or "{%" in spec:
        return _dynamic(wf, s, sp, doc, limit, m, diags, outputs_of)
    try:
        rel = paths.join(wf.base, spec)
        paths.check_symlinks(root, rel)
        globs.check(rel)
    except paths.PathEscape as e:
        diags.append(_loc(doc, where, str(e), "keep paths inside the repository"))
        return None
    except globs.GlobError as e:
        diags.append(_loc(doc, where, str(e), "escape a literal [ * ? with a backslash, as \\["))
        return None
    from runner.links import LinkEscape

    try:
        files = glob_files(root, rel, m.fan_seen)
    except LinkEscape as e:
        diags.append(_loc(doc, where, str(e)))
        return None
    m.fan_globs.append(rel)
    _glob_sources(wf, s, rel, m)
    base = wf.base + "/" if wf.base else ""
    items = [file_item(f[len(base) :]) for f in files]
    if not items:
        return []  # no file yet: no instance (a glob input matching nothing is not an error)
    return _instances(
        s, sp, "foreach", doc, limit, diags, [(i["path"], {"item": i}) for i in items]
    )


def _glob_sources(wf: Workflow, s: Step, rel: str, m: Manifests) -> None:
    """Each plain step of ``wf`` whose outputs the glob ``rel`` can match is a source of
    the foreach (key ""): while it runs, the files found now may grow, shrink or be
    renamed, so the instances are known only once it has run (as DVC, Argo and GitHub
    Actions' dynamic matrices know theirs), and apply plans again after it."""
    from runner.manifests import paths
    from runner.manifests.graph import file_edges

    probe = "\x00foreach"
    named: list[tuple[str, list[str], list[str]]] = [(probe, [rel], [])]
    for x in wf.steps:
        if x.name == s.name or "matrix" in x.spec or "foreach" in x.spec:
            continue
        outs = []
        for o in x.outputs:
            if "{{" not in o and "{%" not in o:
                try:
                    outs.append(paths.join_pattern(wf.base, o))
                except paths.PathEscape:
                    continue  # said by the path checks
        named.append((x.name, [], outs))
    for src in sorted({u for u, d in file_edges(named) if d == probe}):
        m.fan_dynamic.append((wf.name, s.name, src, ""))


def source_value(rec: tuple[str, dict[str, str]] | None, key: str) -> str | None:
    """The output ``key`` of a record (status, outputs) if it succeeded, else None."""
    return rec[1].get(key) if rec is not None and rec[0] == "succeeded" else None


def _dynamic(
    wf: Workflow,
    s: Step,
    sp: tuple[Any, ...],
    doc: Document,
    limit: int,
    m: Manifests,
    diags: list[Diagnostic],
    outputs_of: OutputsOf | None,
) -> list[Step] | None:
    """``foreach: "{{ steps.X.outputs.KEY }}"``: one instance per value of the JSON list
    X last recorded under KEY (Argo's ``withParam``). Until X has succeeded there is none;
    the plan says the instances are known once X has run, and apply, having run X,
    plans again and runs them. ``needs: [STEP]`` elsewhere means X too."""
    where = sp + ("foreach",)
    found = _DYNAMIC.match(s.spec["foreach"].strip())
    if not found:
        diags.append(_loc(doc, where, "a foreach template must read one upstream output",
                          'write foreach: "{{ steps.NAME.outputs.KEY }}" (a JSON list)'))  # fmt: skip
        return None
    source, key = found.groups()
    up = wf.by_name.get(source)
    if up is None or source == s.name or "matrix" in up.spec or "foreach" in up.spec:
        from runner.errors import did_you_mean

        why = (
            f"step '{s.name}' cannot fan out over its own outputs"
            if source == s.name
            else f"no plain step named '{source}' to fan out over"
        )
        hint = did_you_mean(source, [x.name for x in wf.steps if x.name != s.name])
        diags.append(
            _loc(doc, where, why, hint or "name a step of this workflow without matrix/foreach")
        )
        return None
    m.fan_dynamic.append((wf.name, s.name, source, key))
    rec = outputs_of(wf.name, source) if outputs_of is not None else None
    raw = m.fan_sources[f"{wf.name}/{source}"] = source_value(rec, key)
    if rec is None or rec[0] != "succeeded":
        return []
    try:
        values = json.loads(raw) if raw is not None else None
    except ValueError:
        values = None
    if not isinstance(values, list):
        shown_value = (
            "nothing" if raw is None else repr(raw if len(raw) <= 60 else raw[:57] + "...")
        )
        # not a load error: that would keep the source from ever running again to fix it.
        # The plan raises it while the source stays up to date (runner.reconcile.planner)
        m.fan_errors[f"{wf.name}/{s.name}"] = str(
            _loc(doc, where,
                 f"steps.{source}.outputs.{key} is not a JSON list (its last run gave {shown_value})",
                 f"make '{source}' write {key}=[...] (JSON) to $ORCH_OUTPUT")
        )  # fmt: skip
        return []
    if not values:
        return []
    # an instance depends on its item alone, not on the source's run: a value added to
    # the list adds one instance, and the values kept are not run again. A list that makes
    # two instances of one name, or too many, is the source's output at fault, not the
    # manifest: raised by the plan as a non-list is, never a load error that would stop
    # status, logs and graph and keep the source from running again to fix it
    bad: list[Diagnostic] = []
    made = _instances(s, sp, "foreach", doc, limit, bad, [(v, {"item": v}) for v in values])
    if bad:
        m.fan_errors[f"{wf.name}/{s.name}"] = str(bad[0])
        return []
    return made
