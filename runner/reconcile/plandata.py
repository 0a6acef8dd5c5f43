"""A plan as data: the dict ``orch plan --json`` prints and ``api.plan`` returns.

    {"workflows", "steps": [{"workflow", "step", "action", "reasons"}], "summary": {action:
     n}, "env", "removed": [{"workflow", "step"}], "pending": [{"workflow", "step", "after"}]}

Values a reason shows (``param v: 1 → 2``) and commands (``--show-commands``) are masked
with the run's secrets. Imports nothing at load: the no-op answer is built here too.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.reconcile.planner import Plans
    from runner.reconcile.selection import Selection


def table(rows: list[tuple[str, str, str, list[str]]], env: str) -> dict[str, Any]:
    """The plan's dict of ``rows`` ((workflow, step, action, reasons)), with its summary."""
    steps = [{"workflow": w, "step": s, "action": a, "reasons": r} for w, s, a, r in rows]
    counts = {"run": 0, "restore": 0, "may-run": 0, "up-to-date": 0, "skip": 0}
    for s in steps:
        counts[s["action"]] += 1
    return {
        "workflows": list(dict.fromkeys(w for w, *_ in rows)),
        "steps": steps,
        "summary": counts,
        "env": env,
        "removed": [],  # instances whose fan-out no longer makes them: apply drops their records
        "pending": [],  # foreach steps whose instances are known once "after" has run
    }


def of(m: Manifests, sel: Selection, plans: Plans, *, commands: bool = False) -> dict[str, Any]:
    """The dict of a full plan of selection ``sel``: every selected workflow, the
    instances a fan-out dropped, the foreach steps still pending; ``commands``: each step
    that would run with its command (``add_commands``)."""
    data = table(plans.rows(), sel.env)
    # every selected workflow, one whose foreach makes no instance now (no step) included
    data["workflows"] = list(sel.workflows)
    data["removed"] = [{"workflow": w, "step": s} for w, s in plans.removed]
    data["pending"] = [{"workflow": w, "step": s, "after": a} for w, s, a in plans.pending]
    mask_values(data, m)
    if commands:
        add_commands(data, m, plans)
    return data


def settled(data: dict[str, Any], plans: Plans) -> bool:
    """Whether the plan may leave a no-op witness: every step up to date, nothing removed,
    and no warning (said again each time, until fixed)."""
    return (
        not plans.warnings  # said again each time, until fixed
        and not plans.removed
        and data["summary"]["up-to-date"] == len(data["steps"])
    )


def add_commands(data: dict[str, Any], m: Manifests, plans: Plans) -> None:
    """Each step of ``data`` that would run gets its ``command`` and ``note``
    (``reconcile.preview``), masked with the run's secrets."""
    from runner.reconcile.flow import run_secrets
    from runner.reconcile.preview import commands

    secrets = run_secrets(m)
    shown = commands(m, plans, dict(os.environ))
    for s in data["steps"]:
        c = shown.get((s["workflow"], s["step"]))
        if c is not None:
            s.update(secrets.mask_any(c))  # type: ignore[arg-type]


def mask_values(data: dict[str, Any], m: Manifests) -> None:
    """A reason that shows a param's values (``param v: 1 → 2``) masked with the run's
    secrets; the run's secrets are read only when one does."""
    if any("→" in r for s in data["steps"] for r in s["reasons"]):
        from runner.reconcile.flow import run_secrets

        data["steps"] = run_secrets(m).mask_any(data["steps"])
