"""The fan-in: one markdown report from the index, metrics, keywords and import graph.

Headline numbers arrive as arguments rendered from earlier steps' outputs
(``{{ steps.metrics.outputs.hotspot }}`` ...); the tables come from their JSON files.

Usage: python3 analysis/report.py --title T --coverage PCT --hotspot NAME --top-terms A,B
       --index out/index.json --metrics out/metrics.json --keywords out/keywords.json
       --deps out/deps.json --out out/report.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, read_json, write_text


def render(args: argparse.Namespace, index: dict, metrics: dict, keywords: dict, deps: dict) -> str:
    lines = [
        f"# {args.title}",
        "",
        f"{len(index['modules'])} modules, {len(index['classes'])} classes, "
        f"{len(index['functions'])} functions. Docstring coverage {args.coverage}%; "
        f"most complex: `{args.hotspot}`. Key terms: {', '.join(args.top_terms.split(','))}.",
        "",
        "## Modules",
        "",
        "| module | lines | imports | imported by | keywords | summary |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for m in index["modules"]:
        name = m["module"]
        k = keywords["modules"][name]
        lines.append(
            f"| `{name}` | {m['lines']} | {deps['fan_out'][name]} | {len(deps['fan_in'][name])} "
            f"| {', '.join(k['keywords'])} | {k['summary'] or '*(no docstring)*'} |"
        )
    lines += [
        "",
        f"## Complexity (threshold {metrics['threshold']})",
        "",
        "| function | complexity | lines | documented |",
        "| --- | ---: | ---: | --- |",
    ]
    for f in metrics["functions"]:
        flag = " **hotspot**" if f["name"] in metrics["hotspots"] else ""
        documented = "yes" if f["documented"] else "no"
        lines.append(f"| `{f['name']}`{flag} | {f['complexity']} | {f['lines']} | {documented} |")
    lines += ["", "## Import layers", ""]
    for number, layer in enumerate(deps["layers"]):
        lines.append(f"{number}. " + ", ".join(f"`{m}`" for m in layer))
    lines += ["", "Cycles: " + ("; ".join(deps["cycles"]) if deps["cycles"] else "none.")]
    if metrics["undocumented"]:
        lines += ["", "Undocumented: " + ", ".join(f"`{n}`" for n in metrics["undocumented"]) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--title", required=True)
    parser.add_argument("--coverage", required=True)
    parser.add_argument("--hotspot", required=True)
    parser.add_argument("--top-terms", required=True)
    for name in ("index", "metrics", "keywords", "deps", "out"):
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args()
    text = render(
        args,
        read_json(args.index),
        read_json(args.metrics),
        read_json(args.keywords),
        read_json(args.deps),
    )
    write_text(args.out, text)
    emit(report=args.out.as_posix())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
