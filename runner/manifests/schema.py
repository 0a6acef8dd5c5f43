"""Validation of documents against the JSON Schemas in ``schemas/``.

The schemas are the single source of truth; this module only loads them and turns
jsonschema's errors into ``Diagnostic`` lines a person can act on (the nearest valid key
for a misspelling, the accepted syntax for a duration, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from functools import cache
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic, did_you_mean, suggest
from runner.manifests.yamlsrc import Document
from runner.units import DURATION_PATTERN, QUANTITY_PATTERN, SIZE_PATTERN

# executor.address in .orch/config.yaml: the schemes Dask's comms speak (less inproc://,
# which one process alone can reach); a bare HOST:PORT is tcp (runner.execute.dask.SCHEMES)
DASK_ADDRESS_PATTERN = r"^((tcp|tls|ucx|ws|wss)://)?[^/\s]+/?$"

KINDS = {
    "Workflow": "workflow",
    "ResourceQuota": "resourcequota",
    "Project": "project",
    "StepTemplate": "steptemplate",
}
API_VERSION = "orch/v1"


def schema_dir() -> Path:
    """``schemas/`` of a source checkout, else the copy shipped in the wheel."""
    here = Path(__file__).resolve().parent.parent  # runner/
    src = here.parent / "schemas"
    if (src / "workflow.json").is_file():
        return src
    return here / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    with open(schema_dir() / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)


@cache
def _validator(name: str) -> Any:
    """jsonschema's validator for ``name``, checking ``format`` as editors do (JSON Schema
    makes ``format`` an annotation unless a checker is given: without one, ``due:
    2026-13-45`` passed validation and crashed ``orch project status``)."""
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker(formats=())
    for fmt, check in FORMATS.items():
        checker.checks(fmt, raises=ValueError)(check)
    return Draft202012Validator(load_schema(name), format_checker=checker)


def _is_date(value: object) -> bool:
    """RFC 3339 ``full-date`` (``YYYY-MM-DD``, a day that exists), as JSON Schema's
    ``date`` format and yaml-language-server define it; a non-string is not ours to judge."""
    if not isinstance(value, str):
        return True
    import re
    from datetime import date

    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


# every ``format`` the schemas use, checked the one way by both validators (the gate's
# regex for ``date`` takes 2026-02-30; a format the schemas do not use is not checked)
FORMATS = {"date": _is_date}
FORMATS_VERSION = "1"  # bump when FORMATS change: the gate's cached code is keyed by it


SCHEMA_NAMES = ("workflow", "project", "resourcequota", "steptemplate", "config")
# every $id lives under the project's own repository (a name, not a download: editors
# read the files `orch schema --write` puts on disk); the manifests' ids carry apiVersion
SCHEMA_BASE = "https://github.com/orch-gitops/orch/schemas/"
MANIFEST_ID = SCHEMA_BASE + "v1/manifest.json"


def combined_schema() -> dict[str, Any]:
    """One schema for a manifest file that mixes kinds: a ``oneOf`` whose branches each
    require their ``kind`` (so exactly one applies), each kind's schema embedded under
    ``$defs``. Self-contained, so an editor reading it from disk never fetches a ``$ref``
    over the network. ``$id``s follow ``apiVersion``: ``.../schemas/v1/KIND.json``; a
    ``v2`` gets new ones, and a released ``$id`` never changes meaning."""
    defs: dict[str, Any] = {}
    branches = []
    for kind, name in KINDS.items():
        body = {k: v for k, v in load_schema(name).items() if k not in ("$schema", "$id")}
        defs[name] = body
        branches.append(
            {
                "properties": {"kind": {"const": kind}},
                "required": ["kind"],
                "$ref": f"#/$defs/{name}",
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": MANIFEST_ID,
        "title": "orch manifest",
        "description": "Any orch manifest document (" + ", ".join(KINDS) + "), chosen by `kind`.",
        "type": "object",
        "properties": {"kind": {"enum": list(KINDS)}},
        "required": ["kind"],
        "oneOf": branches,
        "$defs": defs,
    }


def dotted(path: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _code_cache() -> Path:
    """Where compiled validators are kept between processes: the user's cache folder.

    Never the repository's ``.orch/``: the cached file is Python that is executed, and a
    cache anyone who can write ``.orch/`` could edit would let them run code in every later
    ``orch`` (issue 11, kind 3). The user's own cache is as trusted as their shell profile.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "orch"


def _owned(*paths: Path) -> bool:
    """Ours alone: each path owned by this user, not a link, not writable by group or
    others (what ssh asks of ``~/.ssh``)."""
    try:
        for p in paths:
            st = os.lstat(p)
            if st.st_uid != os.getuid() or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
                return False
    except OSError:
        return False
    return True


@cache
def _gate(name: str) -> Any:
    """A fast yes/no validator compiled from the same schema by fastjsonschema.

    jsonschema walks a 10,000-step workflow in seconds; the compiled gate takes a tenth of
    that. Valid documents (the common case) stop here; an invalid one goes on to
    jsonschema, whose errors carry the paths our diagnostics need. The generated code is
    cached in the user's cache folder by the schema's hash and fastjsonschema's version,
    so its compile cost is paid once per machine.
    """
    import hashlib

    import fastjsonschema

    schema = load_schema(name)
    text = json.dumps(schema, sort_keys=True) + fastjsonschema.VERSION + FORMATS_VERSION
    tag = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    cached = _code_cache() / f"schema-{name}-{tag}.py"
    code = None
    if _owned(cached.parent, cached):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            code = cached.read_text(encoding="utf-8")
    if code is None:
        code = fastjsonschema.compile_to_code(schema, formats=FORMATS)
        from runner.fsutil import atomic_write

        with contextlib.suppress(OSError):  # only a cache
            cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if _owned(cached.parent):
                atomic_write(cached, code)
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<schema {name}>", "exec"), namespace)  # noqa: S102 - our own schema
    import re

    entry = re.search(r"^def (validate\w*)\(", code, re.M)  # named after the schema's $id
    func = namespace[entry.group(1)] if entry else namespace["validate"]
    from functools import partial

    return partial(func, custom_formats=FORMATS)


def validate_document(doc: Document, schema_name: str) -> list[Diagnostic]:
    data = doc.data
    try:
        _gate(schema_name)(data)
        return []
    except Exception:  # invalid (or a gate problem): let jsonschema say exactly what
        pass
    errors = list(_validator(schema_name).iter_errors(data))
    out: list[Diagnostic] = []
    for err in errors:
        out.extend(_to_diagnostics(doc, err))
    return out


def repaired(doc: Document, schema_name: str, rounds: int = 8) -> dict[str, Any] | None:
    """A copy of an invalid document with each offending field dropped, or None.

    Only for diagnostics: the semantic checks (references, cycles, paths) then run on the
    rest of the document, so a schema error does not hide the other problems in it (as a
    compiler goes on after a syntax error). Values in lists are never dropped, since that
    would shift the indexes diagnostics name; a document that cannot be made valid by
    dropping mapping fields gives None.
    """
    import copy

    data = copy.deepcopy(doc.data)
    validator = _validator(schema_name)
    for _ in range(rounds):
        errors = list(validator.iter_errors(data))
        if not errors:
            return data
        for err in errors:
            if not _drop(data, err):
                return None
    return None


def _drop(data: Any, err: Any) -> bool:
    """Remove what ``err`` complains about from ``data``; False when it cannot be done."""
    path = list(err.absolute_path)
    keys: list[Any] = []
    if "propertyNames" in err.absolute_schema_path:  # the instance is the bad key itself
        keys = [err.instance]
    elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        keys = [k for k in err.instance if k not in known]
    if keys:
        parent = _at(data, path)
        if not isinstance(parent, dict):
            return False
        for k in keys:
            parent.pop(k, None)
        return True
    while path and not isinstance(path[-1], str):
        path.pop()  # a bad list item: drop the whole optional field that holds it
    if len(path) < 2:
        return False  # the document's header itself
    parent = _at(data, path[:-1])
    if not isinstance(parent, dict) or path[-1] not in parent:
        return False
    del parent[path[-1]]
    return True


def _at(data: Any, path: list[Any]) -> Any:
    for p in path:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _to_diagnostics(doc: Document, err: Any) -> list[Diagnostic]:
    path = tuple(err.absolute_path)
    line, col = doc.where(path)
    where = dotted(path) or "(document)"
    v = err.validator
    schema = err.schema if isinstance(err.schema, dict) else {}
    inst = err.instance

    if v == "additionalProperties" and isinstance(inst, dict):
        known = list(schema.get("properties", {}))
        extras = [k for k in inst if k not in schema.get("properties", {})]
        out = []
        for key in extras:
            kl, kc = doc.where(path + (key,), key=True)
            hint = suggest(str(key), known, "valid fields")
            out.append(
                Diagnostic(doc.path, kl, kc, dotted(path + (key,)), f"unknown field '{key}'", hint)
            )
        return out
    if v == "required":
        missing = str(err.message).split("'")[1] if "'" in err.message else err.message
        return [Diagnostic(doc.path, line, col, where, f"missing required field '{missing}'")]
    if v in ("oneOf", "anyOf"):
        return [Diagnostic(doc.path, line, col, where, *_describe_alternatives(err))]
    return [Diagnostic(doc.path, line, col, where, *_describe(err))]


_TYPE_NAMES = {
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return type(value).__name__


def _describe(err: Any) -> tuple[str, str]:
    v = err.validator
    inst = err.instance
    schema = err.schema if isinstance(err.schema, dict) else {}
    if v == "type":
        want = err.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        names = " or ".join(_TYPE_NAMES.get(w, w) for w in wants)
        return f"expected {names}, got {_type_of(inst)}", ""
    if v == "pattern":
        pat = err.validator_value
        if pat == DURATION_PATTERN:
            return f"{inst!r} is not a duration", "use e.g. 500ms, 30s, 10m, 1h30m"
        if pat == SIZE_PATTERN:
            return f"{inst!r} is not a size", "use e.g. 500MB, 5GiB, 1024"
        if pat == QUANTITY_PATTERN:
            return f"{inst!r} is not a quantity", "use e.g. 2, 0.5, 500m, 512Mi, 2Gi"
        if pat == DASK_ADDRESS_PATTERN:
            return f"{inst!r} is not a Dask scheduler address", (
                "Dask speaks tcp://, tls://, ucx://, ws://, wss://; e.g. tcp://HOST:8786"
            )
        if "A-Za-z0-9_-" in pat:
            return f"{inst!r} is not a valid name", "use letters, digits, '_' and '-', at most 100"
        if "A-Za-z0-9_]*" in pat:
            return f"{inst!r} is not a valid identifier", "use letters, digits and '_'"
        return f"{inst!r} does not match {pat}", ""
    if v == "format" and err.validator_value == "date":
        return f"{inst!r} is not a date", "use YYYY-MM-DD, a day that exists, e.g. 2026-03-31"
    if v == "format":
        return f"{inst!r} is not a valid {err.validator_value}", ""
    if v == "additionalProperties" and isinstance(inst, dict):  # inside a oneOf branch
        known = list(schema.get("properties", {}))
        extra = next((k for k in inst if k not in known), "")
        return f"unknown field '{extra}'", suggest(str(extra), known, "valid fields")
    if v == "const":
        return f"must be {err.validator_value!r}, not {inst!r}", ""
    if v == "enum":
        opts = ", ".join(repr(o) for o in err.validator_value)
        return f"{inst!r} is not allowed", f"use one of {opts}"
    if v == "minItems":
        return "must not be empty", ""
    if v == "minLength":
        return "must not be empty", ""
    if v == "uniqueItems":
        return "has duplicate entries", ""
    if v in ("minimum", "maximum"):
        word = "at least" if v == "minimum" else "at most"
        return f"{inst!r} must be {word} {err.validator_value}", ""
    if v == "propertyNames":
        return f"{err.message}", "use letters, digits and '_'"
    desc = schema.get("description", "")
    return err.message, desc[:80]


def _describe_alternatives(err: Any) -> tuple[str, str]:
    """oneOf/anyOf: say what the value should have been, not every branch's complaint."""
    inst = err.instance
    for sub in err.context:
        if sub.validator == "pattern" and not sub.absolute_path.__len__() - len(err.absolute_path):
            return _describe(sub)
    branches = err.validator_value
    names = []
    for b in branches:
        t = b.get("type")
        if isinstance(t, str):
            names.append(_TYPE_NAMES.get(t, t))
    # a value of the right type that failed deeper: report the deepest failure instead
    from jsonschema.exceptions import best_match

    deeper = [s for s in err.context if len(s.absolute_path) > len(err.absolute_path)]
    if deeper:
        best = best_match(deeper)
        return _describe(best)
    matching_type = [s for s in err.context if s.validator != "type"]
    if matching_type:
        return _describe(matching_type[0])
    return f"expected {' or '.join(dict.fromkeys(names))}, got {_type_of(inst)}", (
        err.schema.get("description", "")[:80] if isinstance(err.schema, dict) else ""
    )


def check_header(doc: Document) -> tuple[str | None, list[Diagnostic]]:
    """The schema to use for an ``orch/...`` document, or why there is none."""
    data = doc.data
    api = data.get("apiVersion")
    kind = data.get("kind")
    if api != API_VERSION:
        line, col = doc.where(("apiVersion",))
        return None, [
            Diagnostic(
                doc.path,
                line,
                col,
                "apiVersion",
                f"unsupported apiVersion {api!r}",
                f"this orch reads {API_VERSION}",
            )
        ]
    if kind not in KINDS:
        line, col = doc.where(("kind",))
        hint = did_you_mean(str(kind), list(KINDS)) or f"use one of {', '.join(KINDS)}"
        return None, [Diagnostic(doc.path, line, col, "kind", f"unknown kind {kind!r}", hint)]
    return KINDS[kind], []
