"""Turning results into text for people (tables, graphs); JSON is the API's data as is."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a no-op plan prints through here: keep it light
    from runner.manifests.graph import Dag
    from runner.model import Workflow


def use_color(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


_COLORS = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "dim": "2",
    "bold": "1",
    "cyan": "36",
}


def paint(text: str, color: str, enabled: bool) -> str:
    return f"\x1b[{_COLORS[color]}m{text}\x1b[0m" if enabled else text


def render_graph(wf: Workflow, dag: Dag, fmt: str) -> str:
    if fmt == "dot":
        lines = [f'digraph "{wf.name}" {{', "  rankdir=LR;"]
        for n in dag.order:
            lines.append(f'  "{n}";')
        for n in dag.order:
            for u in dag.upstream[n]:
                kinds = ",".join(sorted(dag.kinds.get((u, n), ())))
                lines.append(f'  "{u}" -> "{n}" [label="{kinds}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"
    if fmt == "mermaid":
        ids = {n: f"s{i}" for i, n in enumerate(dag.order)}
        lines = ["graph LR"]
        for n in dag.order:
            lines.append(f'  {ids[n]}["{n}"]')
        for n in dag.order:
            for u in dag.upstream[n]:
                lines.append(f"  {ids[u]} --> {ids[n]}")
        return "\n".join(lines) + "\n"
    # text: one line per step, in run order, with its direct upstream steps and why
    width = max((len(n) for n in dag.order), default=0)
    lines = [f"{wf.name} ({len(dag.order)} steps)"]
    for n in dag.order:
        ups = dag.upstream[n]
        if ups:
            deps = ", ".join(f"{u} ({'+'.join(sorted(dag.kinds.get((u, n), ())))})" for u in ups)
            lines.append(f"  {n.ljust(width)}  <- {deps}")
        else:
            lines.append(f"  {n}")
    return "\n".join(lines) + "\n"


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(_strip(c)))
    out = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for r in rows:
        out.append(
            "  ".join(c + " " * (widths[i] - len(_strip(c))) for i, c in enumerate(r)).rstrip()
        )
    return "\n".join(out) + "\n"


def _strip(s: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", s)
