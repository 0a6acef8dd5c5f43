"""Turning results into text for people (tables, graphs); JSON is the API's data as is.

Text from the repository (file names, step names made from file names, reasons, error
messages, descriptions) is untrusted: a committed file named ``x\n::error file=w.yaml::f``
would otherwise print a line of its own, a forged GitHub Actions command, and ``\x1b]``
sequences could retitle or rewrite a terminal. Every such text goes through ``shown()``
on its way to a person; JSON output is exact (JSON escapes it).
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a no-op plan prints through here: keep it light
    from runner.manifests.graph import Dag
    from runner.model import Workflow


# C0 and C1 controls, DEL, line/paragraph separators, bidirectional overrides and isolates
# ("Trojan Source"), and the lone surrogates that stand for bytes that are not UTF-8
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class Styled(str):
    """Text ``paint`` made: its own escape codes are ours, its content already shown()."""


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # a byte that is not UTF-8, kept by os.fsdecode
        return f"\\x{n - 0xDC00:02x}"
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def shown(text: object) -> str:
    """``text`` for a person: one line, every control character escaped as ``\n``,
    ``\x1b``, ``\u202e`` (as git's quoted paths and Python's ``repr`` write them), a byte
    that was not UTF-8 as ``\xff``. Idempotent on what ``paint`` made."""
    if isinstance(text, Styled):
        return text
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s


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
    """``text``, shown(), in ``color`` when ``enabled``."""
    safe = shown(text)
    return Styled(f"\x1b[{_COLORS[color]}m{safe}\x1b[0m") if enabled else Styled(safe)


Across = dict[str, list[tuple[str, str]]]


def render_graph(
    wf: Workflow,
    dag: Dag,
    fmt: str,
    into: Across | None = None,
    out: Across | None = None,
    pending: dict[str, list[str]] | None = None,
) -> str:
    """The DAG as text, Graphviz dot or Mermaid; step names (a fan-out over files names
    its instances after them) are shown(), and quotes in them escaped for dot/Mermaid.

    ``into``/``out`` ({step: [(workflow, step)]}, from ``Manifests.across``) are the file
    edges to and from other workflows, drawn with the other step named ``workflow/step``:
    the same edges one ``orch apply`` of both workflows follows.

    The instances of a ``matrix``/``foreach`` step are grouped under its name: indented
    in text, a cluster in dot, a subgraph in Mermaid; in text an edge from every instance
    of a step is written once, as the step's name with ``[*]``.

    ``pending`` ({source step: [foreach steps]}) names the foreach steps over a step's
    outputs that have no instance yet: each is drawn as ``STEP[*]`` after its source
    (text: a line saying so; dot, mermaid: a dashed node and edge), so no step is missing
    from the picture."""
    into, out, pending = into or {}, out or {}, pending or {}
    if fmt != "text":
        return _render_graph_markup(wf, dag, fmt, into, out, pending)
    # text: one line per step, in run order, with its direct upstream steps and why
    label = {n: shown(n) + ("" if wf.step(n).group else _uses(wf, n, " ")) for n in dag.order}
    width = max((len(v) for v in label.values()), default=0)
    lines = [f"{shown(wf.name)} ({len(dag.order)} steps)"]
    for n, group, first in _grouped(wf, dag):
        if first:
            used = _uses(wf, n, "")[1:-1]
            lines.append(
                f"  {shown(group)} ({len(wf.groups[group])} instances{', ' + used if used else ''})"
            )
        indent = "    " if group else "  "
        ups = dag.upstream[n]
        deps = [f"{shown(u)} ({'+'.join(sorted(k))})" for u, k in _collapsed(wf, dag, n, ups)]
        deps += [f"{shown(w + '/' + s)} (files)" for w, s in into.get(n, ())]
        readers = [f"{shown(w + '/' + s)} (files)" for w, s in out.get(n, ())]
        line = f"{indent}{label[n].ljust(width)}" if deps or readers else f"{indent}{label[n]}"
        if deps:
            line += f"  <- {', '.join(deps)}"
        if readers:
            line += f"  -> {', '.join(readers)}"
        lines.append(line)
        for g in pending.get(n, ()):
            lines.append(f"  {shown(g)}[*]  instances known once {shown(n)} has run")
    return "\n".join(lines) + "\n"


def _uses(wf: Workflow, n: str, sep: str) -> str:
    """``" (uses NAME)"`` (after ``sep``) for a step made from a StepTemplate, else "":
    the graph says where a step's fields come from."""
    t = wf.step(n).spec.get("uses")
    return f"{sep}(uses {shown(t)})" if isinstance(t, str) else ""


def _grouped(wf: Workflow, dag: Dag) -> list[tuple[str, str, bool]]:
    """(step, its fan-out step or "", whether it starts the group) in run order, each
    group's instances together where its first one runs."""
    if not wf.groups:
        return [(n, "", False) for n in dag.order]
    group_of = {i: g for g, names in wf.groups.items() for i in names}
    in_dag = set(dag.order)
    out: list[tuple[str, str, bool]] = []
    done: set[str] = set()
    for n in dag.order:
        g = group_of.get(n, "")
        if not g:
            out.append((n, "", False))
        elif g not in done:
            done.add(g)
            members = [i for i in wf.groups[g] if i in in_dag]
            out += [(i, g, k == 0) for k, i in enumerate(members)]
    return out


def _collapsed(
    wf: Workflow, dag: Dag, n: str, ups: list[str] | tuple[str, ...]
) -> list[tuple[str, set[str]]]:
    """``n``'s upstream steps with their edge kinds; every instance of one fan-out step,
    joined by the same kinds, as one ``STEP[*]``."""
    rows = [(u, set(dag.kinds.get((u, n), ()))) for u in ups]
    if not wf.groups:
        return rows
    ups_set = set(ups)
    out: list[tuple[str, set[str]]] = []
    done: set[str] = set()
    for u, kinds in rows:
        g = next((g for g, names in wf.groups.items() if u in names), "")
        if g and g not in done and len(wf.groups[g]) > 1:
            names = wf.groups[g]
            same = all(i in ups_set and set(dag.kinds.get((i, n), ())) == kinds for i in names)
            if same:
                done.add(g)
                out.append((f"{g}[*]", kinds))
                continue
        if g in done:
            continue
        out.append((u, kinds))
    return out


def _quoted(name: str, quote: str) -> str:
    return shown(name).replace("\\", "\\\\").replace('"', quote)


def _others(into: Across, out: Across) -> list[str]:
    """The other workflows' steps an edge reaches, as ``workflow/step``, sorted."""
    return sorted({f"{w}/{s}" for v in (*into.values(), *out.values()) for w, s in v})


def _render_graph_markup(
    wf: Workflow, dag: Dag, fmt: str, into: Across, out: Across, pending: dict[str, list[str]]
) -> str:
    others = _others(into, out)
    dot = fmt == "dot"
    if dot:
        q = {n: _quoted(n, '\\"') for n in dag.order}
        x = {o: _quoted(o, '\\"') for o in others}
        lines = [f'digraph "{_quoted(wf.name, chr(92) + chr(34))}" {{', "  rankdir=LR;"]
    else:
        ids = {n: f"s{i}" for i, n in enumerate(dag.order)}
        xids = {o: f"x{i}" for i, o in enumerate(others)}
        lines = ["graph LR"]
    k = 0
    current = ""
    for n, group, first in _grouped(wf, dag):
        if current and (first or not group):
            lines.append("  }" if dot else "  end")
        current = group
        if first:
            k += 1
            if dot:
                lines.append(f'  subgraph "cluster_{k}" {{')
                lines.append(
                    f'    label="{_quoted(group + _uses(wf, n, " "), chr(92) + chr(34))}";'
                )
            else:
                lines.append(f'  subgraph g{k}["{_quoted(group + _uses(wf, n, " "), "#quot;")}"]')
        pad = "    " if group else "  "
        used = "" if group else _uses(wf, n, " ")
        if dot:
            lines.append(
                f'{pad}"{q[n]}" [label="{_quoted(n + used, chr(92) + chr(34))}"];'
                if used
                else f'{pad}"{q[n]}";'
            )
        else:
            lines.append(f'{pad}{ids[n]}["{_quoted(n + used, "#quot;")}"]')
    if current:
        lines.append("  }" if dot else "  end")
    for src, gs in pending.items():  # foreach steps with no instance until src has run
        for j, g in enumerate(gs):
            label = f"{g}[*]"
            if dot:
                lines.append(f'  "{_quoted(label, chr(92) + chr(34))}" [style=dashed];')
                lines.append(
                    f'  "{q[src]}" -> "{_quoted(label, chr(92) + chr(34))}" [style=dashed];'
                )
            else:
                pid = f"{ids[src]}p{j}"
                lines.append(f'  {pid}["{_quoted(label, "#quot;")}"]')
                lines.append(f"  {ids[src]} -.-> {pid}")
    for o in others:  # steps of other workflows that a file edge reaches
        lines.append(
            f'  "{x[o]}" [style=dashed];' if dot else f'  {xids[o]}["{_quoted(o, "#quot;")}"]'
        )
    for n in dag.order:
        for u in dag.upstream[n]:
            if dot:
                kinds = ",".join(sorted(dag.kinds.get((u, n), ())))
                lines.append(f'  "{q[u]}" -> "{q[n]}" [label="{kinds}"];')
            else:
                lines.append(f"  {ids[u]} --> {ids[n]}")
        for w, s in into.get(n, ()):
            o = w + "/" + s
            lines.append(
                f'  "{x[o]}" -> "{q[n]}" [label="files",style=dashed];'
                if dot
                else f"  {xids[o]} -.-> {ids[n]}"
            )
        for w, s in out.get(n, ()):
            o = w + "/" + s
            lines.append(
                f'  "{q[n]}" -> "{x[o]}" [label="files",style=dashed];'
                if dot
                else f"  {ids[n]} -.-> {xids[o]}"
            )
    if dot:
        lines.append("}")
    return "\n".join(lines) + "\n"


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Columns padded to their widest cell; every cell is shown()."""
    rows = [[shown(c) for c in r] for r in rows]
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
