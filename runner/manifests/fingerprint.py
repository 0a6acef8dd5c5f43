"""A step's fingerprint: what, if unchanged, means its last result still stands.

    fingerprint = H( definition fields , input files' content , upstream results )

* definition: the command template and everything that renders it (the params,
  environment variables and ``git.*`` values it reads, the step's env, workdir, when,
  declared paths; a ``uses:`` step's StepTemplate fields are merged in before), each
  field hashed separately so a plan can say *which* field changed. Formatting, comments,
  key order, ``description``, ``priority``, ``timeout``, ``retry``, ``drift`` change
  nothing; nor do spacing and comments inside a template, a command's trailing newlines,
  or the order of ``inputs``/``outputs`` (templates are hashed by their tokens:
  ``templating.canonical``).
* inputs: the content hash of every file the input patterns match.
* upstream: each upstream step's output values and output-file hashes, so a re-run that
  produced identical outputs does not ripple further (early cutoff).

Hashing the inputs of rendering rather than the rendered text gives the same decisions
without importing Jinja on a no-op plan.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any

from runner.digests import combine, digest, flat, upstream_digest  # noqa: F401 - re-exported
from runner.masking import keyed_digest
from runner.model import Step, Workflow

FIELDS = (
    "run",
    "env",
    "workdir",
    "when",
    "inputs",
    "outputs",
    "params",
    "environ",
    "secrets",
    "shell",
    "git",
    "fan",
    "project",
)


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)


STATIC = ("run", "env", "workdir", "when", "inputs", "outputs", "secrets", "shell", "fan")


def static_fields(step: Step) -> dict[str, str]:
    """The parts of the definition that depend on nothing but the manifest: hashed once
    per manifest load and cached with it."""
    from runner.templating import canonical

    run = step.run
    raw = {
        # a shell command's trailing newlines (YAML's `|` against `|-`) change nothing
        "run": canonical(run.rstrip("\n")) if isinstance(run, str) else [canonical(a) for a in run],
        "env": {k: canonical(v) for k, v in step.env.items()},
        "workdir": _path(step.workdir),
        "when": canonical(step.when) if isinstance(step.when, str) else step.when,
        # inputs and outputs are sets: order and repeats change nothing
        "inputs": sorted({_path(p) for p in step.inputs}),
        "outputs": sorted({_path(p) for p in step.outputs}),
        "secrets": sorted(set(step.secrets)),
        "shell": list(step.shell) if step.shell else None,
        # an instance's matrix values or item: what makes it this instance
        "fan": step.fan or None,
    }
    return {k: digest(_canon(v)) for k, v in raw.items() if v not in (None, (), [], {}, ".", "")}


def _path(p: str) -> str:
    """A declared path as the plan reads it (``paths.join``: ``./src//a.txt`` is
    ``src/a.txt``, ``./`` is ``.``), keeping a final "/" and a leading "!"; a templated
    path by its template's tokens."""
    from runner.templating import canonical, is_templated

    if is_templated(p):
        return canonical(p)
    neg = "!" if p.startswith("!") else ""
    body = p[len(neg) :]
    if not body:
        return p
    n = posixpath.normpath(body)
    return neg + (n + "/" if body.endswith("/") and n != "." else n)


def definition_fields(
    wf: Workflow,
    step: Step,
    params: dict[str, Any],
    param_refs: tuple[str, ...] | None,
    env_refs: tuple[str, ...] | None = (),
    static: dict[str, str] | None = None,
    *,
    env_key: bytes,
    git: dict[str, Any] | None = None,
    project: dict[str, Any] | None = None,
) -> dict[str, str]:
    """``param_refs``/``env_refs``: the names the templates read; None means a name computed
    at render time (``env[name]``, ``params.items()``), so all of them count (fail closed).
    ``env_key`` keys the digest of the environment values read (``runner.masking.
    keyed_digest``): a secret read through ``{{ env.X }}`` never reaches the state as a
    plain hash. ``git``: the git.* values the templates read (``sources.GitValues``), so a
    new commit re-runs exactly the steps that read ``git.commit``."""
    fields = dict(static if static is not None else static_fields(step))
    if git:
        fields["git"] = digest(_canon(git))
    if param_refs is None or param_refs:
        merged = {**params, **step.params}
        used = merged if param_refs is None else {k: merged.get(k) for k in param_refs}
        fields["params"] = digest(_canon(used))
        for k, v in used.items():  # to say which param moved, and from what: not hashed
            fields[PARAM_NAMED + k] = _canon(v)
    if project is not None:  # a template reads {{ project.* }}: its values count
        fields["project"] = digest(_canon(project))
    if env_refs is None:
        fields["environ"] = keyed_digest(env_key, flat(dict(os.environ)))
    elif env_refs:
        values = _canon({k: os.environ.get(k) for k in env_refs})
        fields["environ"] = keyed_digest(env_key, values)
        for k in env_refs:  # to say which variable moved; not part of the fingerprint
            fields[ENV_NAMED + k] = keyed_digest(env_key, _canon(os.environ.get(k)))
    return fields


# fields kept beside the definition to explain a change of "environ", one per variable
# read by name (keyed digests of its value, never the value): ``fingerprint_fields`` leaves
# them out, so the fingerprint is what it was before they were kept
ENV_NAMED = "environ."
# and one per param read, its value as canonical JSON (params are manifest or --param
# values, not secrets; a value that contains a secret is masked wherever it is shown)
PARAM_NAMED = "param."
# the command as last rendered (secrets masked), kept by a success for ``orch explain``
COMMAND_SHOWN = "shown.command"
NOTES = (ENV_NAMED, PARAM_NAMED, COMMAND_SHOWN)


def fingerprint_fields(fields: dict[str, str]) -> dict[str, str]:
    """The fields a fingerprint is made of: all but the notes kept to explain a change
    (``NOTES``: per-variable keyed digests, per-param values, the rendered command)."""
    return {k: v for k, v in fields.items() if not k.startswith(NOTES)}


def param_value(text: str) -> str:
    """A recorded param value as a person reads it: a string without its JSON quotes."""
    try:
        v = json.loads(text)
    except ValueError:
        return text
    return v if isinstance(v, str) else text


LINE = 72  # a plan reason's "param NAME: OLD → NEW" longer than this names the param only


def changed_keys(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def changed_fields(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The parts of a definition that moved, as the plan says them: ``environ: A, B``
    names the environment variables whose values changed (names only, never values),
    where the record knows them; the names of a record made before they were kept, or
    of a template that reads the whole environment, are not known: ``environ``.
    ``param NAME: OLD → NEW`` names each param that moved, with its values (params are
    not secrets; the caller masks any secret value before showing a reason), where the
    record kept them (orch records before per-param values said ``params``)."""
    changed = changed_keys(fingerprint_fields(old), fingerprint_fields(new))
    if "environ" in changed:
        names = [
            k.removeprefix(ENV_NAMED)
            for k in changed_keys(old, new)
            if k.startswith(ENV_NAMED) and k in old and k in new
        ]
        if names:
            changed[changed.index("environ")] = f"environ: {', '.join(names)}"
    if "params" in changed and any(k.startswith(PARAM_NAMED) for k in old):
        moved = [
            _param_change(k.removeprefix(PARAM_NAMED), old.get(k), new.get(k))
            for k in changed_keys(old, new)
            if k.startswith(PARAM_NAMED)
        ]
        if moved:
            changed[changed.index("params")] = ", ".join(moved)
    return changed


def _param_change(name: str, old: str | None, new: str | None) -> str:
    """``param NAME: OLD → NEW`` where the line is short, else ``param NAME``; a param
    the step did not read before (or reads no more) is ``(not read)`` on that side."""
    was = "(not read)" if old is None else param_value(old)
    now = "(not read)" if new is None else param_value(new)
    line = f"param {name}: {was} → {now}"
    return line if len(line) <= LINE and "\n" not in line else f"param {name}"
