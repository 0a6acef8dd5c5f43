"""The bundled examples' template-made files: which they are, and rendering them in place.

Run as ``python -m runner.projects.examples [--check]``, as docs/projects.md says.
"""

from __future__ import annotations

import sys
from pathlib import Path

from runner.fsutil import same_bytes
from runner.projects.scaffold import render_files
from runner.projects.templates_index import builtin_dir, discover, find, resolve_params

# The bundled examples' scripts are rendered from the templates (like docs/manifests.md from
# the schemas), so a fix lands in one place. Per example: (kind, template, files as named in
# the template folder). Everything else in examples/NAME/ (orch.yaml, README.md, .gitignore,
# .orch/, quota.yaml, the sample code and tests it has of its own) is the example's own.
EXAMPLES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "build-and-test": (
        (
            "workflow",
            "build-and-test",
            ("tools/build.py", "tools/lint.py", "tools/orch_output.py", "tools/verify.py"),
        ),
    ),
    "data-pipeline": (
        (
            "workflow",
            "data-pipeline",
            tuple(
                f"scripts/{n}.py"
                for n in ("clean", "common", "generate", "profile", "report", "summarise")
            ),
        ),
    ),
    "ai-analysis": (
        (
            "workflow",
            "ai-analysis",
            tuple(
                f"analysis/{n}.py"
                for n in ("common", "deps", "index", "metrics", "report", "summarise")
            ),
        ),
        (
            "project",
            "ai-analysis",
            tuple(
                f"src/shelf/{n}.py" for n in ("__init__", "models", "pricing", "search", "storage")
            ),
        ),
    ),
    "word-counts": (),  # matrix/foreach; its scripts are its own, no template makes them
}


def example_files() -> dict[str, bytes]:
    """Every template-made file of the bundled examples, as ``NAME/path`` -> bytes."""
    templates = discover(builtin_dir())
    out: dict[str, bytes] = {}
    for example, parts in EXAMPLES.items():
        for kind, name, paths in parts:
            t = find(templates, kind, name)
            context = {"name": example, "project": None, "path": ".", "template": t.name}
            values = resolve_params(t, {}, context)
            for f in render_files(t, {**context, "params": values}, paths):
                out[f"{example}/{f.rel}"] = f.data
    return out


def render_examples(dest: Path, check: bool = False) -> list[str]:
    """Write the examples' template-made files under ``dest`` (or, with ``check``, write
    nothing); returns the ``NAME/path`` of each file that was (or would be) changed."""
    changed = []
    for rel, data in sorted(example_files().items()):
        target = dest / rel
        if not target.is_symlink() and same_bytes(target, data):
            continue
        changed.append(rel)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return changed


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m runner.projects.examples",
        description="Render the bundled examples' scripts.",
    )
    parser.add_argument("--examples", action="store_true", help=argparse.SUPPRESS)  # older spelling
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument(
        "--dest", type=Path, default=Path(__file__).resolve().parents[2] / "examples"
    )
    args = parser.parse_args(argv)
    changed = render_examples(args.dest, check=args.check)
    for rel in changed:
        verb = "out of date" if args.check else "written"
        print(f"{args.dest / rel}: {verb}")
    if args.check and changed:
        print("run: python -m runner.projects.examples", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
