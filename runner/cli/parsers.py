"""orch's command line: one builder per top-level verb, listed in ``VERBS`` in the order
``orch --help`` shows them.

``build_parser(only)`` calls only the builder of the verb ``only`` names: each command runs
one verb, and building the other twenty costs about as much as the rest of a no-op
``orch plan``'s start-up. A verb is added by writing its builder ``build_VERB`` here
(options that other verbs take too come from ``runner.cli.options``) and naming it in
``VERBS``; its handler is ``target``, ``"MODULE:FUNCTION"`` in ``runner/cli/``, imported
only when the verb runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import cached_property

from runner import __version__
from runner.cli.errorline import Parser
from runner.cli.options import (
    COMMON,
    add_apply_options,
    add_created,
    add_env,
    add_events,
    add_executor,
    add_filters,
    add_force,
    add_jobs,
    add_json,
    add_limit,
    add_no_cache,
    add_params,
    add_project,
    add_quiet,
    add_ref,
    add_step_address,
    add_task_id,
    add_verbose,
    add_workflows,
    age,
    parent,
    port_number,
    positive_int,
    seconds,
    size,
)

Subs = argparse._SubParsersAction


class Shared:
    """The option groups several verbs take whole, as argparse parents, each built the
    first time a verb asks for it (``orch status`` builds none)."""

    @cached_property
    def filters(self) -> argparse.ArgumentParser:
        return parent(add_filters)

    @cached_property
    def jobs(self) -> argparse.ArgumentParser:
        return parent(add_jobs)

    @cached_property
    def applying(self) -> argparse.ArgumentParser:
        return parent(add_apply_options)

    @cached_property
    def executing(self) -> argparse.ArgumentParser:
        return parent(add_executor)

    def running(self) -> list[argparse.ArgumentParser]:
        """What every verb that applies takes (apply, run, workflow run)."""
        return [self.filters, self.jobs, self.applying, self.executing]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) just the verb ``only`` with its options.
    ``only`` that names no verb builds nothing but the top level (``main`` then builds
    everything, so the error lists every verb)."""
    from runner.cli.examples import epilog

    parser = Parser(
        prog="orch",
        description="A declarative, GitOps-style workflow runner.",
        epilog=epilog(""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"orch {__version__}")
    parser.add_argument("-C", dest="directory", metavar="DIR", help="run as if started in DIR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    shared = Shared()
    for name, add in VERBS.items():
        if not only or name == only:
            add(sub, shared)
    return parser


def _verb(
    sub: Subs,
    name: str,
    help: str,
    target: str,
    parents: Sequence[argparse.ArgumentParser] = (),
    **kw: object,
) -> argparse.ArgumentParser:
    """Add verb ``name`` (its help, the common ``-C``, its examples) handled by ``target``."""
    from runner.cli.examples import epilog

    p = sub.add_parser(
        name,
        help=help,
        description=help,
        parents=[COMMON, *parents],
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the examples' lines
        **kw,  # type: ignore[arg-type]
    )
    p.epilog = epilog(p.prog.removeprefix("orch").strip())
    p.set_defaults(target=target)
    return p


def _group(sub: Subs, name: str, help: str) -> Subs:
    """Add verb ``name`` whose own verbs (``orch NAME SUBCOMMAND``) go into what it returns."""
    g = _verb(sub, name, help, "")
    return g.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=Parser, required=True
    )


def build_init(sub: Subs, shared: Shared) -> None:
    p = _verb(sub, "init", "create .orch/config.yaml and .orch/.gitignore here", "basic:init")
    add_json(p)


def build_validate(sub: Subs, shared: Shared) -> None:
    p = _verb(
        sub,
        "validate",
        "check every manifest; print each problem as path:line:col",
        "basic:validate",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="also check these files")
    p.add_argument(
        "--format",
        choices=["text", "json", "github"],
        default="text",
        help="text (default), json, or github (workflow-command annotations for Actions)",
    )
    add_ref(p, "validate")
    add_json(p)


def build_schema(sub: Subs, shared: Shared) -> None:
    p = _verb(
        sub,
        "schema",
        "print or write the JSON Schemas of the manifests (for editors)",
        "basic:schema",
    )
    p.add_argument(
        "kind",
        nargs="?",
        type=str.lower,
        choices=["manifest", "workflow", "project", "resourcequota", "steptemplate", "config"],
        metavar="KIND",
        help="manifest (default: every kind, chosen by `kind`), workflow, project, "
        "resourcequota, steptemplate or config",
    )
    p.add_argument(
        "--write",
        metavar="DIR",
        help="write KIND.json into DIR (every schema when KIND is not given) instead of printing",
    )
    add_json(p)


def build_graph(sub: Subs, shared: Shared) -> None:
    p = _verb(sub, "graph", "show a workflow's DAG", "basic:graph")
    p.add_argument("workflow", metavar="WORKFLOW", help="the workflow to draw")
    p.add_argument(
        "--format",
        choices=["text", "dot", "mermaid"],
        default="text",
        help="text (default), Graphviz dot, or Mermaid",
    )
    p.add_argument(
        "--reduce",
        action="store_true",
        help="leave out each edge a longer path implies (the transitive reduction)",
    )
    add_json(p)


def build_plan(sub: Subs, shared: Shared) -> None:
    p = _verb(sub, "plan", "show what apply would run, and why", "run:plan", [shared.filters])
    add_workflows(p)
    add_force(p, "plan STEP (WORKFLOW/STEP or STEP) as forced", "plan every step as forced")
    add_no_cache(p, "plan as if the result cache were empty (what apply --no-cache would run)")
    add_ref(p, "plan")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a workflow marked spec.check is out of date (for pre-commit and CI)",
    )
    p.add_argument(
        "--show-commands",
        action="store_true",
        help="print the command each step would run, rendered, secrets masked",
    )
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when nothing would run, 2 when something would, 1 on error (as Terraform)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="also save the plan to FILE (.json) for `orch apply FILE` to apply exactly",
    )
    add_json(p)


def _build_applying(sub: Subs, shared: Shared, name: str, help: str) -> None:
    p = _verb(sub, name, help, "run:apply", shared.running())
    add_workflows(p)
    p.add_argument(
        "--plan",
        metavar="FILE",
        help="apply exactly the plan saved by `orch plan --out FILE`, or refuse if it "
        "is stale (also: a single WORKFLOW argument that is a .json file)",
    )


def build_apply(sub: Subs, shared: Shared) -> None:
    _build_applying(sub, shared, "apply", "run what changed or failed")


def build_run(sub: Subs, shared: Shared) -> None:
    _build_applying(sub, shared, "run", "run what changed or failed (alias of apply)")


def build_explain(sub: Subs, shared: Shared) -> None:
    p = _verb(
        sub,
        "explain",
        "every part of a step's fingerprint, recorded -> now: why it would (not) run",
        "run:explain",
    )
    add_step_address(p, "the step to explain")
    add_env(p)
    add_params(p, "explain as if this param were set (repeatable), as plan --param does")
    add_json(p)


def build_status(sub: Subs, shared: Shared) -> None:
    p = _verb(sub, "status", "recorded state of each step", "records:status")
    add_workflows(p, "workflows to show (default: all)")
    add_project(p)
    add_json(p)


def build_logs(sub: Subs, shared: Shared) -> None:
    p = _verb(sub, "logs", "print a task's log", "logs:logs")
    add_step_address(p, "the step whose log to print")
    p.add_argument(
        "--run",
        type=positive_int,
        metavar="ID",
        help="the run (default: the latest that ran the step)",
    )
    p.add_argument(
        "--attempt",
        type=positive_int,
        metavar="N",
        help="attempt N of the step (1 = the first try; default: the last)",
    )
    p.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing while the task runs; end when it ends (as tail -f, then stop)",
    )
    add_json(p)


def build_history(sub: Subs, shared: Shared) -> None:
    p = _verb(sub, "history", "past runs", "records:history")
    add_workflows(p, "only runs of these workflows")
    add_limit(p)
    p.add_argument(
        "--tasks", action="store_true", help="each run's tasks with wall, CPU and peak RSS"
    )
    add_json(p)


def build_watch(sub: Subs, shared: Shared) -> None:
    p = _verb(
        sub,
        "watch",
        "apply, then re-apply on every change",
        "watch:watch",
        [shared.filters, shared.jobs, shared.executing],
    )
    add_workflows(p)
    p.add_argument(
        "--restart", action="store_true", help="end affected running tasks and start over on change"
    )
    p.add_argument(
        "--debounce",
        type=seconds,
        metavar="SECONDS",
        help="wait this long after the last change before applying (default: the config's)",
    )
    add_events(p)
    p.add_argument(
        "--poll",
        action="store_true",
        help="look for changes by polling, not kernel notifications (network and container "
        "file systems, where none come)",
    )
    p.add_argument(
        "--poll-interval",
        type=seconds,
        metavar="SECONDS",
        help="with --poll, stat the tree this often (default: 1; implies --poll)",
    )
    add_quiet(p, "print only failures and each cycle's summary line")
    add_verbose(p, "also print each attempt's end (status, exit code, time) and retries")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per cycle on stdout, as apply --json's (docs/watch.md); "
        "the other lines go to stderr",
    )


def build_audit(sub: Subs, shared: Shared) -> None:
    p = _verb(sub, "audit", "who changed state, when, with which command", "records:audit")
    p.add_argument(
        "--since",
        metavar="DATE",
        help="only records from DATE on: YYYY-MM-DD, an ISO 8601 time (UTC unless it "
        "gives an offset), or an age such as 7d or 12h",
    )
    add_json(p)


def build_workflow(sub: Subs, shared: Shared) -> None:
    wsub = _group(sub, "workflow", "list, run or create workflows")
    add_json(_verb(wsub, "list", "list workflows", "basic:workflow_list"))
    p = _verb(wsub, "run", "apply one workflow", "run:apply", shared.running())
    add_workflows(p, "the workflow to apply", nargs=1)
    p = _verb(
        wsub, "create", "write a workflow manifest from a template", "projects:workflow_create"
    )
    add_created(p, "workflow", "folder to write it in (default: the current folder)")


def build_project(sub: Subs, shared: Shared) -> None:
    psub = _group(sub, "project", "create and manage projects")
    p = _verb(psub, "create", "lay out a new project from a template", "projects:project_create")
    add_created(p, "project", "its folder (default: NAME)")
    add_json(_verb(psub, "list", "list projects", "projects:project_list"))
    p = _verb(
        psub,
        "status",
        "a project's workflows, failing steps and milestones",
        "projects:project_status",
    )
    p.add_argument("name", metavar="NAME", help="the project")
    add_env(p)
    add_json(p)
    p = _verb(
        psub,
        "archive",
        "pack a project into .orch/archive/ and stop reconciling it",
        "projects:project_archive",
    )
    p.add_argument("name", metavar="NAME", help="the project to archive")
    add_json(p)
    p = _verb(psub, "restore", "unpack an archived project", "projects:project_restore")
    p.add_argument("name", metavar="NAME", help="the archived project (see .orch/archive/)")
    add_json(p)


def build_template(sub: Subs, shared: Shared) -> None:
    tsub = _group(sub, "template", "templates for projects and workflows")
    add_json(_verb(tsub, "list", "list templates and their parameters", "projects:template_list"))


def build_task(sub: Subs, shared: Shared) -> None:
    ksub = _group(sub, "task", "inspect and cancel tasks")
    p = _verb(ksub, "list", "queued, running and recent tasks", "records:task_list")
    add_limit(p)
    add_json(p)
    p = _verb(ksub, "status", "one task", "records:task_status")
    add_task_id(p)
    add_json(p)
    p = _verb(
        ksub,
        "cancel",
        "end a running task's process tree (or every task of a run)",
        "records:task_cancel",
    )
    add_task_id(p, nargs="?")
    p.add_argument(
        "--run",
        type=positive_int,
        metavar="RUN_ID",
        help="cancel the whole run: each of its tasks, and no more start (see orch history)",
    )
    add_json(p)


def build_state(sub: Subs, shared: Shared) -> None:
    ssub = _group(sub, "state", "manage .orch/state.db")
    add_json(
        _verb(
            ssub,
            "reset",
            "move state.db aside (kept as a backup) and start afresh",
            "records:state_reset",
        )
    )


def build_system(sub: Subs, shared: Shared) -> None:
    ysub = _group(sub, "system", "the host and the runner")
    for name, helptext in (
        ("status", "host resources and quota use"),
        ("metrics", "task metrics"),
        ("health", "can orch run here?"),
    ):
        add_json(_verb(ysub, name, helptext, f"system:system_{name}"))


def build_cache(sub: Subs, shared: Shared) -> None:
    csub = _group(sub, "cache", "the result cache: status, gc, clear (docs/cache.md)")
    add_json(
        _verb(csub, "status", "entries, size and hit rate of the result cache", "cache:status")
    )
    p = _verb(
        csub,
        "gc",
        "drop cached results, least recently used first, to a size or an age",
        "cache:gc",
    )
    p.add_argument(
        "--max-size",
        type=size,
        metavar="SIZE",
        help="keep at most SIZE: 5GiB, 500MB, or bytes (default: the config's cache.max_size)",
    )
    p.add_argument(
        "--older-than",
        type=age,
        metavar="AGE",
        help="drop results not used for AGE: 30d, 12h, or seconds",
    )
    # "-1d" and "-5GiB" are values (refused by size/age with their own message), not
    # options: argparse reads only "-1" and "-.5" as negative numbers, and said
    # "expected one argument" for the rest. gc has no option that starts with a digit.
    import re

    p._negative_number_matcher = re.compile(r"^-\.?\d")
    add_json(p)
    add_json(_verb(csub, "clear", "remove every cached result", "cache:clear"))


def build_mcp(sub: Subs, shared: Shared) -> None:
    _verb(sub, "mcp", "serve orch to AI agents over MCP (stdio)", "mcp:serve")


def build_ui(sub: Subs, shared: Shared) -> None:
    p = _verb(
        sub,
        "ui",
        "serve a live web dashboard of this repository (needs the [ui] extra)",
        "ui:serve",
    )
    p.add_argument(
        "--port",
        type=port_number,
        default=8040,
        metavar="N",
        help="listen on port N (default: 8040; 0: a free one, printed)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="listen on this address (default: 127.0.0.1; any other prints a warning)",
    )
    p.add_argument("--open", action="store_true", help="open the URL in a web browser")
    p.add_argument(
        "--allow-actions",
        action="store_true",
        help="add apply, force-step and cancel-task buttons (recorded in the audit log)",
    )


def build_completion(sub: Subs, shared: Shared) -> None:
    p = _verb(
        sub,
        "completion",
        "print a shell completion script (needs the [completion] extra)",
        "completion:completion",
    )
    p.add_argument(
        "shell", choices=("bash", "zsh", "fish"), help="the shell to write the script for"
    )


# every top-level verb, in the order `orch --help` lists them, and its builder
VERBS: dict[str, Callable[[Subs, Shared], None]] = {
    "init": build_init,
    "validate": build_validate,
    "schema": build_schema,
    "graph": build_graph,
    "plan": build_plan,
    "apply": build_apply,
    "run": build_run,
    "explain": build_explain,
    "status": build_status,
    "logs": build_logs,
    "history": build_history,
    "watch": build_watch,
    "audit": build_audit,
    "workflow": build_workflow,
    "project": build_project,
    "template": build_template,
    "task": build_task,
    "state": build_state,
    "cache": build_cache,
    "system": build_system,
    "mcp": build_mcp,
    "ui": build_ui,
    "completion": build_completion,
}
