"""init, validate, graph, workflow list."""

from __future__ import annotations

import argparse
import os
import sys

from runner import api
from runner.cli.common import print_json, repo_from
from runner.errors import OrchError


def init(args: argparse.Namespace) -> int:
    repo = repo_from(args, exact=True)
    created = api.init(repo)
    if args.json:
        print_json({"root": str(repo.root), "created": [f"{repo.prefix}{r}" for r in created]})
        return 0
    for rel in created:
        print(f"created {repo.prefix}{rel}")
    if not created:
        print("already initialised")
    return 0


def validate(args: argparse.Namespace) -> int:
    fmt = "json" if args.json else args.format
    repo = repo_from(args)
    try:
        if args.ref:
            from runner.manifests.revisions import manifests_at

            m = manifests_at(repo, args.ref)
        else:
            # "run as if started in DIR": a relative PATH is DIR's, as with git -C
            here = args.directory
            m = api.validate(repo, [os.path.join(here, p) if here else p for p in args.paths or ()])
    except OrchError as e:
        if not e.diagnostics or fmt == "text":
            raise
        if fmt == "json":
            # the keys every --json error has (docs/cli.md), beside validate's own
            errors = [d.to_json() for d in e.diagnostics]
            print_json({"ok": False, "error": str(e), "exit": 1, "errors": errors})
        else:
            from runner.ci import MESSAGE_MAX, capped

            for d in e.diagnostics:
                msg = (f"{d.where}: " if d.where else "") + d.what
                msg += f" ({d.hint})" if d.hint else ""
                print(
                    f"::error file={_gh(d.path, True)},line={d.line or 1},col={d.col or 1},"
                    f"title=orch validate::{_gh(capped(msg, MESSAGE_MAX))}"
                )
        return 1
    summary = {
        "ok": True,
        "errors": [],
        "files": len(m.files),
        "workflows": sorted(m.workflows),
        "projects": sorted(m.projects),
        "quotas": sorted(m.quotas),
        "step_templates": list(m.step_templates),
        "steps": sum(len(w.steps) for w in m.workflows.values()),
    }
    if fmt == "json":
        print_json(summary)
    elif fmt == "text":
        print(
            f"ok: {summary['files']} files, {len(m.workflows)} workflows "
            f"({summary['steps']} steps), {len(m.step_templates)} step templates, "
            f"{len(m.projects)} projects, {len(m.quotas)} quotas",
            file=sys.stderr,
        )
    return 0


def _gh(s: str, prop: bool = False) -> str:
    """Text for a GitHub workflow command (``runner.ci``: shown, then escaped as GitHub's
    toolkit does; a ',' or ':' in a file name would end the property)."""
    from runner.ci import escape_data, escape_property

    return escape_property(s) if prop else escape_data(s)


def schema(args: argparse.Namespace) -> int:
    """``orch schema [KIND] [--write DIR]``: needs no repository (an editor's set-up)."""
    import json
    import os

    from runner.manifests.schema import SCHEMA_NAMES, combined_schema, load_schema

    def text_of(name: str) -> str:
        data = combined_schema() if name == "manifest" else load_schema(name)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    if not args.write:
        sys.stdout.write(text_of(args.kind or "manifest"))
        return 0
    names = [args.kind] if args.kind else ["manifest", *SCHEMA_NAMES]
    folder = os.path.join(args.directory or ".", args.write)  # relative to -C, as every path
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        raise OrchError(
            f"--write {args.write}: not a folder; name a folder to write into"
        ) from None
    from pathlib import Path

    from runner.fsutil import atomic_write

    written = []
    for name in names:
        path = Path(folder) / f"{name}.json"
        atomic_write(path, text_of(name))
        written.append(str(path))
    if args.json:
        print_json({"written": written})
    else:
        from runner.render import shown

        for path in written:
            print(f"wrote {shown(path)}")
    return 0


def graph(args: argparse.Namespace) -> int:
    if args.json:
        print_json(api.graph_data(repo_from(args), args.workflow, args.reduce))
        return 0
    sys.stdout.write(api.graph(repo_from(args), args.workflow, args.format, args.reduce))
    return 0


def workflow_list(args: argparse.Namespace) -> int:
    rows = api.workflows(repo_from(args))
    if args.json:
        print_json(rows)
        return 0
    from runner.render import table

    sys.stdout.write(
        table(
            [
                [r["name"], r["project"] or "-", str(r["steps"]), r["path"], r["description"]]
                for r in rows
            ],
            ["WORKFLOW", "PROJECT", "STEPS", "FILE", "DESCRIPTION"],
        )
    )
    return 0
