"""Saved plans: ``orch plan --out plan.json`` and ``orch apply plan.json``.

As Terraform's saved plan: the file holds the plan's selection and, for every step, its
action and the parts of its fingerprint (definition field digests, input file hashes,
upstream result digests). Applying it plans again, just before anything is written, and goes on
only if every step would get the same action and the same fingerprint; otherwise it
refuses before anything runs or is recorded, one line per step that moved. The file
names the repository root (another repository's plan is refused), orch's format version
(a newer format is refused) and the commit it was made at, and carries a checksum of its
body (a file edited by hand is refused: a plan is applied as orch wrote it, or not).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runner.errors import OrchError
from runner.manifests.fingerprint import changed_keys, fingerprint_fields

FORMAT = 1  # bumped when a reader of this version could misread a newer file
LABELS = {
    "run": "will run",
    "restore": "will restore",
    "may-run": "may run",
    "up-to-date": "up to date",
}


class StalePlan(OrchError):
    """A saved plan that no longer matches the work tree or the state: one line for the
    plan, then one per step that moved."""

    def __init__(self, path: str, moved: list[str]):
        super().__init__(
            f"{path}: the saved plan is stale ({len(moved)} step"
            f"{'s' if len(moved) != 1 else ''} changed since it was made); nothing ran; "
            f"make a new one with orch plan --out {path}"
        )
        self.moved = moved

    def lines(self) -> list[str]:
        return [str(self), *self.moved]


def _checksum(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _commit(root: Path) -> str | None:
    from runner.manifests.sources import git_commit_state

    return git_commit_state(root)[0]


def document(root: Path, selection: dict[str, Any], plans: Any, version: str) -> dict[str, Any]:
    """The saved plan as JSON data: ``{"format", "orch", "root", "commit", "selection",
    "steps": [{workflow, step, action, reasons, fingerprint, definition, inputs,
    upstream}], "checksum"}``."""
    steps = [
        {
            "workflow": d.workflow,
            "step": d.step,
            "action": d.action,
            "reasons": list(d.reasons),
            "fingerprint": d.fingerprint,
            "definition": fingerprint_fields(d.fields),
            "inputs": d.inputs,
            "upstream": d.upstream,
        }
        for ds in plans.decisions.values()
        for d in ds
    ]
    body = {
        "format": FORMAT,
        "orch": version,
        "root": str(root),
        "commit": _commit(root),
        "selection": selection,
        "steps": steps,
    }
    return {**body, "checksum": _checksum(body)}


def write(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically (a temporary file renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def load(path: Path, shown_as: str, root: Path) -> dict[str, Any]:
    """The saved plan at ``path``, refused (OrchError, one line naming ``shown_as``) when
    it is not one, was edited, is of a newer format or of another repository."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OrchError(
            f"{shown_as}: no such file; make one with orch plan --out {shown_as}"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise OrchError(
            f"{shown_as}: not a saved plan ({type(e).__name__}); make one with orch plan --out"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("format"), int):
        raise OrchError(f"{shown_as}: not a saved plan (no format); make one with orch plan --out")
    if doc["format"] > FORMAT:
        raise OrchError(
            f"{shown_as}: saved plan format {doc['format']} is newer than this orch reads "
            f"({FORMAT}); apply it with the orch that made it ({doc.get('orch', '?')})"
        )
    body = {k: v for k, v in doc.items() if k != "checksum"}
    if doc.get("checksum") != _checksum(body):
        raise OrchError(
            f"{shown_as}: the saved plan was modified after orch wrote it; make a new one "
            f"with orch plan --out {shown_as}"
        )
    if doc.get("root") != str(root):
        raise OrchError(
            f"{shown_as}: the saved plan is of repository {doc.get('root')}, not {root}; "
            "make a plan here with orch plan --out"
        )
    return doc


def check(doc: dict[str, Any], plans: Any, shown_as: str) -> None:
    """Raise StalePlan unless every step of ``plans`` has the action and fingerprint the
    saved plan ``doc`` gave it (and the same steps are planned)."""
    saved = {(s["workflow"], s["step"]): s for s in doc["steps"]}
    now = {(d.workflow, d.step): d for ds in plans.decisions.values() for d in ds}
    moved = []
    for key in list(dict.fromkeys([*saved, *now])):
        name = f"{key[0]}/{key[1]}"
        s, d = saved.get(key), now.get(key)
        if s is None:
            moved.append(f"{name}: new since the plan")
        elif d is None:
            moved.append(f"{name}: no longer planned (removed from its workflow)")
        elif s["fingerprint"] != d.fingerprint:
            moved.append(f"{name}: changed since the plan: {_what_moved(s, d)}")
        elif s["action"] != d.action:
            moved.append(
                f"{name}: the plan said {LABELS.get(s['action'], s['action'])}, now "
                f"{LABELS.get(d.action, d.action)} (its recorded state changed since the plan)"
            )
    if moved:
        raise StalePlan(shown_as, moved)


def _what_moved(s: dict[str, Any], d: Any) -> str:
    parts = []
    fields = changed_keys(s["definition"], fingerprint_fields(d.fields))
    if fields:
        parts.append(f"definition changed ({', '.join(fields)})")
    files = changed_keys(s["inputs"], d.inputs)
    if files:
        more = f" (+{len(files) - 3} more)" if len(files) > 3 else ""
        parts.append(f"input changed: {', '.join(files[:3])}{more}")
    ups = changed_keys(s["upstream"], d.upstream)
    if ups:
        parts.append(f"upstream changed: {', '.join(ups)}")
    return "; ".join(parts) or "fingerprint changed"
