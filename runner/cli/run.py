"""plan, explain and apply/run: what the engine would do and doing it (apply's output: ``sinks``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner import api
from runner.cli import planview
from runner.cli.common import (
    executor_choice,
    print_json,
    repo_from,
)
from runner.cli.sinks import Sinks, reports, summary
from runner.render import paint, shown, use_color


def params_of(args: argparse.Namespace) -> dict[str, str]:
    """``--param KEY=VALUE`` options as KEY -> text (UsageError, exit 2, for a malformed one)."""
    pairs = getattr(args, "params", None) or []
    if not pairs:
        return {}
    from runner.projects.templates_index import parse_pairs

    return parse_pairs(pairs)


def _here(args: argparse.Namespace, name: str) -> Path:
    """A file named on the command line, read from where the command runs: the current
    folder, or DIR of ``-C DIR`` (as ``orch validate PATH`` reads one)."""
    p = Path(name)
    return p if p.is_absolute() else Path(getattr(args, "directory", None) or ".") / p


def plan(args: argparse.Namespace) -> int:
    repo = repo_from(args)
    out = getattr(args, "out", None)
    data = api.plan(
        repo,
        args.workflows,
        project=args.project,
        env=args.env,
        ref=args.ref,
        force=args.force,
        force_all=args.force_all,
        since=args.since,
        commands=getattr(args, "show_commands", False),
        params=params_of(args),
        save=_here(args, out) if out else None,
        cache=not getattr(args, "no_cache", False),
    )
    if out:
        print(
            f"Saved the plan to {shown(out)}; apply exactly it with: orch apply {shown(out)}",
            file=sys.stderr,
        )
    stale = 1 if getattr(args, "check", False) and _stale_checked(repo, data) else 0
    code = stale or _detailed(args, data)
    if args.json:
        print_json(data)
        return code
    sys.stdout.write("\n".join(planview.lines(data, use_color())) + "\n")
    if stale:
        print(
            "orch: workflows marked spec.check are out of date; run 'orch apply' and commit",
            file=sys.stderr,
        )
    return code


def explain(args: argparse.Namespace) -> int:
    """``orch explain WORKFLOW STEP``: the plan line, then one line per part of the
    fingerprint, ``~`` marking those that changed (old → new)."""
    repo = repo_from(args)
    data = api.explain(repo, args.workflow, args.step, env=args.env, params=params_of(args))
    if args.json:
        print_json(data)
        return 0
    color = use_color()
    labels = {
        "run": "will run",
        "restore": "will restore",
        "may-run": "may run",
        "up-to-date": "up to date",
        "skip": "skip",
    }
    why = f": {shown('; '.join(data['reasons']))}" if data["reasons"] else ""
    fp = data["fingerprint"]
    out = [
        paint(shown(f"{data['workflow']}/{data['step']}"), "bold", color)
        + f"  {labels.get(data['action'], data['action'])}{why}",
        f"fingerprint: {_was(fp['old'], fp['new'], fp['changed'])}",
    ]
    for p in data["parts"]:
        mark = paint("~", "yellow", color) if p["changed"] else " "
        name = "command" if p["kind"] == "command" else f"{p['kind']} {p['name']}"
        out.append(f"  {mark} {shown(name)}: {_was(p['old'], p['new'], p['changed'])}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _was(old: str | None, new: str | None, changed: bool) -> str:
    """``OLD → NEW`` for a part that changed, its value for one that did not; a step
    that never recorded a result has no OLD: ``(never recorded) → NEW``."""
    if old is None:
        return f"(never recorded) → {shown(new)}"
    return f"{shown(old)} → {shown(new)}" if changed else shown(new)


def _detailed(args: argparse.Namespace, data: dict[str, Any]) -> int:
    """``--detailed-exitcode``, Terraform's rule: 2 when the plan would run something (a
    step to run, or one that may run), else 0; errors stay 1 (and usage errors 2, as
    Terraform's do). Without the flag, 0."""
    if not getattr(args, "detailed_exitcode", False):
        return 0
    return 2 if any(s["action"] != "up-to-date" for s in data["steps"]) else 0


def _stale_checked(repo: api.Repo, data: dict[str, Any]) -> bool:
    checked = {w.name for w in repo.manifests().workflows.values() if w.check}
    return any(s["workflow"] in checked and s["action"] != "up-to-date" for s in data["steps"])


def apply(args: argparse.Namespace) -> int:
    from runner.reconcile.results import ApplyOptions

    saved = _saved_plan(args)
    if getattr(args, "dry_run", False):
        return _dry_run(args, saved)
    kind, address = executor_choice(args)
    repo = repo_from(args)
    sinks = Sinks(args, repo)  # before anything runs: an unwritable --events changes nothing
    opts = ApplyOptions(
        jobs=args.jobs or 0,
        fail_fast=args.fail_fast,
        wait=not args.no_wait,
        echo=sinks.task_echo(),
        echo_for=sinks.groups.echo_for if sinks.groups is not None else None,
        report=sinks.report,
        argv=sys.argv[1:],
        executor_kind=kind,
        dask_address=address,
        cache=not getattr(args, "no_cache", False),
    )
    try:
        try:
            result = api.apply(
                repo,
                args.workflows,
                project=args.project,
                env=args.env,
                force=args.force,
                force_all=args.force_all,
                since=args.since,
                options=opts,
                params=params_of(args),
                saved=None if saved is None else _load_saved(args, repo, saved),
            )
        finally:
            sinks.close_display()  # the summary and any error print below it, plainly
    except KeyboardInterrupt as e:
        from runner.errors import cut_short_result

        sinks.failed(e)
        cut = cut_short_result(e)
        if cut is not None:  # the run was recorded interrupted: report what it did
            reports(args, repo, cut, interrupted=True)
        raise
    except BaseException as e:
        sinks.failed(e)
        raise
    sinks.finished(result)
    reports(args, repo, result, interrupted=False)
    summary(result, sinks)
    return 0 if result.ok else 1


def _dry_run(args: argparse.Namespace, saved: str | None) -> int:
    """``apply --dry-run``: the plan with each command as rendered, as ``make -n``; not
    audited (nothing changes)."""
    from runner.cli.common import AUDIT_SKIP

    if saved is not None:
        from runner.errors import UsageError

        raise UsageError("a saved plan is shown by the plan that wrote it; drop --dry-run")
    AUDIT_SKIP[0] = True  # a plan: nothing changes
    args.ref = None
    args.show_commands = True
    return plan(args)


def _saved_plan(args: argparse.Namespace) -> str | None:
    """The saved plan to apply: ``--plan FILE``, or a lone WORKFLOW argument that ends in
    ``.json`` and is a file (a workflow name has no dot-json file next to it by chance:
    a name that is not a file stays a workflow name). A saved plan carries its own
    selection: UsageError with workflows, filters, --param or --force beside it."""
    from runner.errors import UsageError

    name = getattr(args, "plan", None)
    wfs = list(args.workflows)
    if (
        name is None
        and len(wfs) == 1
        and wfs[0].endswith(".json")
        and _here(args, wfs[0]).is_file()
    ):
        name, wfs = wfs[0], []
    if name is None:
        return None
    given = [
        flag
        for flag, on in (
            ("WORKFLOW", wfs), ("--project", args.project), ("--env", args.env),
            ("--since", args.since), ("--param", args.params), ("--force", args.force),
            ("--force-all", args.force_all),
        )
        if on
    ]  # fmt: skip
    if given:
        raise UsageError(
            f"a saved plan ({name}) carries its own selection: drop {', '.join(given)}"
        )
    args.workflows = []
    return name


def _load_saved(args: argparse.Namespace, repo: api.Repo, name: str) -> tuple[dict[str, Any], str]:
    from runner.reconcile.savedplan import load

    return load(_here(args, name), name, repo.root), name
