"""workflow create, project create|list|status|archive|restore, template list."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from runner.cli.common import print_json, repo_from
from runner.errors import OrchError
from runner.render import paint, shown, table, use_color


def _cwd(args: argparse.Namespace) -> Path:
    """Where relative ``--path`` values start: ``-C DIR`` if given, as git does."""
    return Path(args.directory) if args.directory else Path.cwd()


def _create(args: argparse.Namespace, kind: str) -> int:
    from runner.projects import scaffold
    from runner.projects.templates_index import parse_pairs

    repo = repo_from(args)
    try:
        created = scaffold.create(
            repo,
            kind,
            args.name,
            args.template,
            parse_pairs(args.param),
            args.path,
            _cwd(args),
        )
    except OrchError as e:
        _heading(e)
        raise
    if args.json:
        print_json(created.to_json())
        return 0
    where = f"{repo.prefix}{created.dir}" if created.dir != "." else (repo.prefix or ".")
    print(shown(f"created {kind} {created.name} from template {created.template} in {where}/"))
    for f in created.files:
        print(shown(f"  + {repo.prefix}{f}"))
    for f in created.unchanged:
        print(shown(f"  = {repo.prefix}{f} (already there, identical)"))
    if kind == "project":
        print(shown(f"next: orch plan --project {created.name}"), file=sys.stderr)
    elif created.workflows:
        joined = f" (project {created.project})" if created.project else ""
        print(shown(f"next: orch plan {' '.join(created.workflows)}{joined}"), file=sys.stderr)
    return 0


def _heading(e: OrchError) -> None:
    """The error handler prints only an error's diagnostics: say first what they are about."""
    if e.diagnostics and not str(e).endswith(("error", "errors")):  # not the bare count
        print(shown(f"orch: {e}"), file=sys.stderr)


def workflow_create(args: argparse.Namespace) -> int:
    return _create(args, "workflow")


def project_create(args: argparse.Namespace) -> int:
    return _create(args, "project")


def project_list(args: argparse.Namespace) -> int:
    from runner.projects.core import list_projects

    rows = list_projects(repo_from(args))
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no projects (orch project create NAME --template T; see orch template list)")
        return 0
    sys.stdout.write(
        table(
            [
                [
                    r["name"],
                    r["lifecycle"],
                    (r["path"] or "-") + "/",
                    r["template"] or "-",
                    ", ".join(r["workflows"]) or "-",
                    ", ".join(r["environments"]) or "-",
                    r["description"],
                ]
                for r in rows
            ],
            ["PROJECT", "LIFECYCLE", "PATH", "TEMPLATE", "WORKFLOWS", "ENVS", "DESCRIPTION"],
        )
    )
    return 0


_COLORS = {
    "green": "green",
    "done": "green",
    "failing": "red",
    "overdue": "red",
    "running": "cyan",
    "pending": "yellow",
    "incomplete": "yellow",
    "never-ran": "dim",
}


def project_status(args: argparse.Namespace) -> int:
    from runner.projects.core import project_status as status

    repo = repo_from(args)
    data = status(repo, args.name, args.env)
    if args.json:
        print_json(data)
        return 0
    c = use_color()
    env = data["env"] or "default"
    print(
        paint(f"project {data['name']}", "bold", c)
        + shown(f" ({data['lifecycle']}) in {data['path']}/")
        + (shown(f", from template {data['template']}") if data.get("template") else "")
    )
    if data["lifecycle"] == "archived" and "archive" in data:
        print(
            shown(
                f"archived {_ago(data['archived_at'])}: {data['files']} files in {data['archive']} "
                f"(orch project restore {data['name']})"
            )
        )
        return 0
    print(shown(f"env: {env}") + "\n")
    _print_workflows(data["workflows"], c)
    _print_failing(data["workflows"], repo.prefix, c)
    if data["milestones"]:
        _print_milestones(data["milestones"], c)
    if data["runs"]:
        _print_runs(data["runs"])
    return 0


def _print_workflows(workflows: list[dict[str, Any]], c: bool) -> None:
    """The project's workflows: status, green steps of all, last run."""
    if not workflows:
        print("no workflows (orch workflow create NAME --template T --path DIR)")
        return
    rows = []
    for w in workflows:
        last = w["last_run"]
        rows.append(
            [
                w["workflow"],
                paint(w["status"], _COLORS.get(w["status"], ""), c),
                f"{w['green']}/{w['steps']}",
                f"#{last['id']} {last['status']} {_ago(last['ended'] or last['started'])}"
                if last
                else "-",
            ]
        )
    sys.stdout.write(table(rows, ["WORKFLOW", "STATUS", "GREEN", "LAST RUN"]))


def _print_failing(workflows: list[dict[str, Any]], prefix: str, c: bool) -> None:
    """Each failing step with its exit code, message and log (``prefix``: the log's path
    from where the user stands)."""
    failing = [(w["workflow"], s) for w in workflows for s in w["failing"]]
    if not failing:
        return
    print("\nfailing steps:")
    for wname, s in failing:
        code = f" (exit {s['exit_code']})" if s.get("exit_code") is not None else ""
        msg = f": {s['message']}" if s.get("message") else ""
        print(
            f"  {shown(wname)}/{shown(s['step'])}  {paint(s['status'], 'red', c)}{shown(code + msg)}"
        )
        if s.get("log"):
            print(shown(f"      log: {prefix}{s['log']}"))


def _print_milestones(milestones: list[dict[str, Any]], c: bool) -> None:
    """Each milestone: state, green workflows and steps of all, due date, what is missing."""
    print("\nmilestones:")
    rows = []
    for ms in milestones:
        due = ms["due"] or "-"
        if ms["due"] and ms["state"] != "done":
            d = ms["days_left"]
            due += f" ({-d} days ago)" if d < 0 else " (today)" if d == 0 else f" (in {d} days)"
        rows.append(
            [
                "  " + ms["name"],
                paint(ms["state"], _COLORS.get(ms["state"], ""), c),
                f"{ms['green']}/{ms['total']}",
                due,
                ", ".join(ms["missing"]) or "-",
            ]
        )
    sys.stdout.write(table(rows, ["  MILESTONE", "STATE", "GREEN", "DUE", "NOT GREEN YET"]))


def _print_runs(runs: list[dict[str, Any]]) -> None:
    print("\nrecent runs:")
    for r in runs:
        env_txt = f" --env {r['env']}" if r["env"] else ""
        print(
            shown(
                f"  #{r['id']} {r['status']} {_ago(r['ended'] or r['started'])}{env_txt}: "
                + ", ".join(r["workflows"])
            )
        )


def _ago(t: float | None) -> str:
    if not t:
        return "-"
    s = max(0, time.time() - t)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit} ago"
    return f"{int(s)}s ago"


def project_archive(args: argparse.Namespace) -> int:
    from runner.projects.archive import archive

    try:
        out = archive(repo_from(args), args.name)
    except OrchError as e:
        _heading(e)
        raise
    if args.json:
        print_json(out)
        return 0
    print(
        shown(
            f"archived project {out['name']}: {out['files']} files ({_size(out['bytes'])}) "
            f"into {out['archive']} ({_size(out['archive_bytes'])}); removed {out['dir']}/"
        )
    )
    for p in out["not_removed"]:
        print(
            shown(f"orch: could not remove {p} (it is in the archive; remove it by hand)"),
            file=sys.stderr,
        )
    print(
        shown(
            f"its workflows ({', '.join(out['workflows']) or 'none'}) are no longer reconciled; "
            f"commit the removal, and orch project restore {out['name']} brings it back"
        ),
        file=sys.stderr,
    )
    return 0


def project_restore(args: argparse.Namespace) -> int:
    from runner.projects.archive import restore

    out = restore(repo_from(args), args.name)
    if args.json:
        print_json(out)
        return 0
    print(
        shown(
            f"restored project {out['name']}: {out['files']} files ({_size(out['bytes'])}) "
            f"into {out['dir']}/, each checked against its sha256"
        )
    )
    return 0


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def template_list(args: argparse.Namespace) -> int:
    from runner.projects.templates_index import list_templates

    templates = list_templates(repo_from(args))
    if args.json:
        print_json([t.to_json() for t in templates])
        return 0
    c = use_color()
    for i, t in enumerate(templates):
        if i:
            print()
        source = "" if t.source == "builtin" else f"  (from {t.source}/)"
        print(paint(f"{t.kind} {t.name}", "bold", c) + shown(source))
        print(shown(f"  {t.description}"))
        if t.workflows:
            print(shown("  lays out workflows: " + ", ".join(f"{w.template}" for w in t.workflows)))
        for p in t.params:
            default = "(required)" if p.required else f"= {_value(p.default)}"
            choices = f" [{'|'.join(_value(x) for x in p.choices)}]" if p.choices else ""
            print(shown(f"    --param {p.name} {default}{choices}  {p.description}"))
    return 0


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v) if v == "" or " " in v or "{" in v else v
    return str(v)
