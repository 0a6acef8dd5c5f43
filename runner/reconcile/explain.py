"""``orch explain``: every part of one step's fingerprint, as recorded → as it is now.

The parts are those of ``manifests.fingerprint`` (the definition fields, the input files'
hashes, the upstream results), each with the notes a record keeps to say *what* moved:
the command as last rendered, each param value read. Environment values are never shown,
whether or not a variable is declared a secret (a token in a variable nobody declared is
still a token): only whether each one changed, by a short keyed digest
(``masking.keyed_digest``). Everything returned is masked with the run's secrets by the
caller. A record written before a note was kept says ``UNKNOWN_OLD`` for it.
"""

from __future__ import annotations

import json
from typing import Any

from runner.manifests.fingerprint import (
    COMMAND_SHOWN,
    ENV_NAMED,
    PARAM_NAMED,
    param_value,
)
from runner.reconcile.decide import StepDecision
from runner.store.state import StepRecord

UNKNOWN_OLD = "unknown (recorded by an older orch)"
ABSENT = "(none)"
PENDING = "(known after apply)"  # an upstream step that will run first (Terraform's words)
SHORT = 12  # hex digits of a digest shown: enough to tell two apart by eye

# the definition fields other than the command, params and environment, as explain names them
OTHER = ("env", "workdir", "when", "inputs", "outputs", "secrets", "shell", "git", "fan", "project")


def parts(
    d: StepDecision,
    rec: StepRecord | None,
    command: str | None,
    upstream: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """``[{"kind", "name", "old", "new", "changed"}]``, kind one of command, param, env,
    definition, input, upstream; ``old`` is None when the step never recorded a result.
    ``command``: the step's command rendered now, already masked (None: it cannot render
    before apply); ``upstream``: the steps it needs (one that will run first has no
    result yet: ``PENDING``)."""
    old_f = rec.fields if rec is not None else None
    new_f = d.fields
    out = [_command(old_f, new_f, command)]
    out += _params(old_f, new_f)
    out += _environ(old_f, new_f)
    for name in OTHER:
        if name in new_f or (old_f and name in old_f):
            out.append(_part("definition", name, _dig(old_f, name), _dig(new_f, name)))
    out += _files("input", rec.inputs if rec else None, d.inputs)
    now_up = {**{u: PENDING for u in upstream if u not in d.upstream}, **d.upstream}
    out += _files("upstream", rec.upstream if rec else None, now_up)
    return out


def _part(kind: str, name: str, old: str | None, new: str | None) -> dict[str, Any]:
    return {"kind": kind, "name": name, "old": old, "new": new, "changed": old != new}


def _short(h: str | None) -> str:
    return ABSENT if h is None else h if h == PENDING else h[:SHORT]


def _dig(fields: dict[str, str] | None, name: str) -> str | None:
    if fields is None:
        return None
    return _short(fields.get(name))


def _command(old: dict[str, str] | None, new: dict[str, str], now: str | None) -> dict[str, Any]:
    """The rendered command when both sides are known; it changed if its text or its
    template moved (a template's digest tells a change the masked text hides)."""
    was: str | None = None
    if old is not None:
        was = old.get(COMMAND_SHOWN, UNKNOWN_OLD)
    shown = now if now is not None else "(cannot render before apply)"
    p = _part("command", "run", was, shown)
    p["changed"] = (
        old is None
        or old.get("run") != new.get("run")
        or (was not in (None, UNKNOWN_OLD) and now is not None and was != now)
    )
    return p


def _params(old: dict[str, str] | None, new: dict[str, str]) -> list[dict[str, Any]]:
    names = {k for k in new if k.startswith(PARAM_NAMED)}
    known = old is not None and any(k.startswith(PARAM_NAMED) for k in old)
    if known:
        names |= {k for k in old or {} if k.startswith(PARAM_NAMED)}
    out = []
    for k in sorted(names):
        now = param_value(new[k]) if k in new else "(not read)"
        if old is None:
            was = None
        elif not known:
            was = UNKNOWN_OLD if "params" in old else "(not read)"
        else:
            was = param_value(old[k]) if k in old else "(not read)"
        p = _part("param", k.removeprefix(PARAM_NAMED), was, now)
        if was == UNKNOWN_OLD:  # the digest of all params read still says whether any moved
            p["changed"] = old.get("params") != new.get("params")  # type: ignore[union-attr]
        out.append(p)
    return out


def _environ(old: dict[str, str] | None, new: dict[str, str]) -> list[dict[str, Any]]:
    """One part per variable read by name, by keyed digest (never its value); one for
    the whole environment where a template reads a name computed at render time."""
    names = sorted(
        {k for k in new if k.startswith(ENV_NAMED)}
        | {k for k in old or {} if k.startswith(ENV_NAMED)}
    )
    if not names:
        if "environ" in new or (old and "environ" in old):
            return [_part("env", "(whole environment)", _dig(old, "environ"), _dig(new, "environ"))]
        return []
    out = []
    for k in names:
        was = _dig(old, k)
        if old is not None and k not in old and "environ" in old:
            was = UNKNOWN_OLD
        out.append(_part("env", k.removeprefix(ENV_NAMED), was, _dig(new, k)))
    return out


def _files(kind: str, old: dict[str, str] | None, new: dict[str, str]) -> list[dict[str, Any]]:
    names = sorted(set(new) | set(old or {}))
    return [
        _part(kind, n, None if old is None else _short(old.get(n)), _short(new.get(n)))
        for n in names
    ]


def fingerprint(d: StepDecision, rec: StepRecord | None) -> dict[str, Any]:
    """The fingerprint recorded (None: none, the step never succeeded) and the one now."""
    return {
        "old": rec.fingerprint if rec is not None else None,
        "new": d.fingerprint,
        "changed": rec is None or rec.fingerprint != d.fingerprint,
    }


def command_text(cmd: Any) -> str | None:
    """A rendered command as ``preview.commands`` gives it, as one text (an argv list as
    JSON, as a record keeps it)."""
    if cmd is None:
        return None
    return cmd if isinstance(cmd, str) else json.dumps(cmd)
