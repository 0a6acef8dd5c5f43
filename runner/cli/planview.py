"""``orch plan``'s text: a line per step (icon, action, why), the steps a foreach will
make once its source has run, the instances a fan-out dropped, the summary line."""

from __future__ import annotations

from typing import Any

from runner.cli.sinks import command_lines
from runner.render import paint, shown

ICONS = {
    "run": ("+", "yellow"),
    "restore": ("<", "green"),
    "may-run": ("~", "cyan"),
    "up-to-date": ("=", "dim"),
    "skip": ("-", "yellow"),
}

LABELS = {
    "run": "will run",
    "restore": "restore",
    "may-run": "may run",
    "up-to-date": "up to date",
    "skip": "skip",
}


def lines(data: dict[str, Any], color: bool) -> list[str]:
    """The plan ``data`` (``api.plan``'s dict) as the lines ``orch plan`` prints, built
    for one write: 10,000 print calls cost more than planning them."""
    out = step_lines(data, color)
    gone = data.get("removed") or []
    if not data["steps"] and not gone:
        out.append("no workflows selected")
    out.append(summary_line(data["summary"], len(gone)))
    return out


def step_lines(data: dict[str, Any], color: bool) -> list[str]:
    """A line per step under its workflow's heading, each with its command when asked;
    then the pending foreach steps and the removed instances."""
    styled = {
        a: (paint(ICONS[a][0], ICONS[a][1], color), paint(LABELS[a], ICONS[a][1], color))
        for a in LABELS
    }
    out: list[str] = []
    current = None
    for s in data["steps"]:
        if s["workflow"] != current:
            current = s["workflow"]
            out.append(paint(f"workflow {current}", "bold", color))
        icon, label = styled[s["action"]]
        why = f": {shown('; '.join(s['reasons']))}" if s["reasons"] else ""
        if s["action"] == "skip":  # "skip (when: false)": a state, not a change to explain
            why = f" ({shown('; '.join(s['reasons']))})"
        out.append(f"  {icon} {shown(s['step'])}  {label}{why}")
        if "command" in s:
            out.extend(command_lines(s, color))
    for p in data.get("pending") or []:
        out.append(
            f"  {paint('~', 'cyan', color)} {shown(p['workflow'] + '/' + p['step'] + '[*]')}  "
            f"{paint('instances known once', 'cyan', color)} {shown(p['after'])} has run"
        )
    for r in data.get("removed") or []:
        out.append(
            f"  {paint('-', 'red', color)} {shown(r['workflow'] + '/' + r['step'])}  "
            f"{paint('removed', 'red', color)}: its fan-out no longer makes it; apply drops its record"
        )
    return out


def summary_line(n: dict[str, int], removed: int) -> str:
    """``Plan: N to run, ...`` from the plan's summary counts and how many were removed."""
    return (
        f"\nPlan: {n['run']} to run, "
        + (f"{n['restore']} to restore from the cache, " if n.get("restore") else "")
        + f"{n['may-run']} may run (if upstream outputs change), "
        f"{n['up-to-date']} up to date"
        + (f", {n['skip']} to skip" if n.get("skip") else "")
        + (f", {removed} removed." if removed else ".")
    )
