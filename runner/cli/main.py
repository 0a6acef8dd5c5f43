"""``orch``: argparse wired to ``runner.api``, one error handler, exit codes.

Exit codes: 0 ok, 1 a step or validation failed, 2 usage error (one line naming the verb's
``--help``), 3 internal error, 130 interrupted (Ctrl-C, or the executor's
cluster lost mid-run: ``errors.Interrupted``), 143 ended by SIGTERM, 129 ended by
SIGHUP (128 + the signal's number, as shells report it), 141 when apply's reader went away
(``orch apply | head``: stopped as for Ctrl-C, silently). With ``--json`` every error is also
``{"error": MESSAGE, "exit": CODE}`` on stdout (docs/cli.md).
SIGTERM and SIGHUP (a CI cancel, ``docker stop``, a closed terminal) end a command exactly
as Ctrl-C does: running tasks' process trees are ended, their rows closed, ``on:``
handlers told; a second one while that happens is ignored (SIGKILL still ends us).
Commands live in ``runner/cli/``, a few lines each; heavy imports happen there, inside
the function that needs them, so ``orch --version`` stays near bare-Python start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from runner import __version__
from runner.cli import ending

if TYPE_CHECKING:
    from runner.errors import OrchError

Handler = Callable[[argparse.Namespace], int]


_JSON_ERRORS: list[bool] = [False]  # --json on the command line: errors go out as JSON too
_DETAILED: list[bool] = [False]
_LAST_ERROR: list[str | None] = [None]  # the error line said last, for the audit log
_ARGV: list[list[str]] = [
    []
]  # the command line main() was given, for the audit log  # plan --detailed-exitcode: 2 means "changes", so errors are 1


def usage_code() -> int:
    """2 for a usage error, as argparse; 1 under ``plan --detailed-exitcode``, where 2 means
    "something would run" and every error is 1 (Terraform's rule), so a mistyped flag in CI
    never reads as a plan with changes."""
    return 1 if _DETAILED[0] else 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """A usage error is one line naming what is wrong and where to read more, exit 2
        (argparse's own usage block is many lines, and hides the one that matters)."""
        code = usage_code()
        say_error(f"{message} (see {self.prog} --help)", code, _JSON_ERRORS[0], label="error: ")
        self.exit(code)


def say_error(line: str, code: int, json_out: bool, label: str = "", **extra: object) -> None:
    """One error line on stderr as ``orch: LABEL LINE``; with ``--json``, also
    ``{"error": LINE, "exit": CODE, ...extra}`` on stdout, so a script reading stdout gets
    JSON whatever happened (the exit code is the same either way)."""
    from runner.render import shown

    _LAST_ERROR[0] = line
    print(shown(f"orch: {label}{line}"), file=sys.stderr)
    if json_out:
        import json

        sys.stdout.write(json.dumps({"error": shown(line), "exit": code, **extra}) + "\n")
        sys.stdout.flush()


class _Skipped:
    """Stands in for a verb's parser that this command line does not name: every call on
    it (``add_argument``, ``add_subparsers``, ``set_defaults``...) does nothing and gives
    another one back, so ``build_parser`` reads the same whether or not a verb is built."""

    def __getattr__(self, name: str) -> Callable[..., _Skipped]:
        return lambda *a, **k: self


_SKIPPED = _Skipped()
_ONLY: list[str] = []  # the one top-level verb to build (see ``build_parser``)


def _cmd(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    target: str,
    parents: Sequence[argparse.ArgumentParser] = (),
    **kw: object,
) -> argparse.ArgumentParser:
    if isinstance(sub, _Skipped) or (
        _ONLY and getattr(sub, "top_level", False) and name != _ONLY[0]
    ):
        return _SKIPPED  # type: ignore[return-value]
    from runner.cli.examples import epilog

    p = sub.add_parser(
        name,
        help=help,
        description=help,
        parents=[_COMMON, *parents],
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the examples' lines
        **kw,  # type: ignore[arg-type]
    )
    p.epilog = epilog(p.prog.removeprefix("orch").strip())
    p.set_defaults(target=target)
    return p


def positive_int(text: str) -> int:
    """argparse ``type``: a whole number, 1 or more. ``-j 0`` is refused, not read as
    "the default": a value the user typed never silently means something else."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def seconds(text: str) -> float:
    """argparse ``type``: a number of seconds, 0 or more, finite (``inf`` would wait for
    ever: never what anyone means)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= x < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, and finite, not {text}")
    return x


def _group(*adders: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """A parent parser: options declared once, shared by every verb that takes them."""
    p = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(p)
    return p


def _jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-j", "--jobs", type=positive_int, metavar="N", help="tasks at once (default: CPU count)"
    )


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="only the workflows of this project")
    p.add_argument("--env", help="the project environment whose params to use (e.g. dev, prod)")
    p.add_argument(
        "--since", metavar="REV", help="only workflows whose manifests or inputs changed since REV"
    )
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a workflow param for this run (repeatable; typed as its value in the manifest)",
    )


def _apply_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STEP",
        help="run STEP (WORKFLOW/STEP or STEP) even if up to date",
    )
    p.add_argument("--force-all", action="store_true", help="run every step")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run nothing: print the plan and each command it would run (plan --show-commands)",
    )
    p.add_argument(
        "--fail-fast", action="store_true", help="stop starting tasks after the first failure"
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="exit 1 instead of waiting for steps another orch holds",
    )
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    _events(p)
    _quiet(p, "print only failures and the summary (no task output, no step lines)")
    _verbose(p)
    _json(p)


def _events(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--events",
        metavar="FILE",
        help="append progress events as JSON lines to FILE (- for stdout, which then "
        "carries nothing else); schema in docs/events.md",
    )


def _executor(p: argparse.ArgumentParser) -> None:
    """Where tasks run: one option group for every verb that runs tasks (apply, run,
    workflow run, watch)."""
    p.add_argument(
        "--executor",
        choices=("local", "dask"),
        help="where tasks run: this machine (default) or a Dask cluster (docs/distributed.md)",
    )
    p.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="the Dask scheduler, tcp://HOST:PORT (default: $ORCH_DASK_ADDRESS, the "
        "config's executor.address, else a local cluster of -j workers)",
    )


def _quiet(p: argparse.ArgumentParser, text: str = "do not stream task output") -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=text)


def _verbose(
    p: argparse.ArgumentParser,
    text: str = "also print each step's command as rendered, each attempt's end (status, "
    "exit code, time), retries, and up-to-date steps with no reason given",
) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help=text)


# -C is accepted after the verb too (`orch apply -C DIR`), without overriding a global one
_COMMON = argparse.ArgumentParser(add_help=False)
_COMMON.add_argument(
    "-C",
    dest="directory",
    metavar="DIR",
    default=argparse.SUPPRESS,
    help="run as if started in DIR",
)


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _template_options(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument(
        "--template", required=True, help=f"the {kind} template to use (see orch template list)"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a template parameter (repeatable)",
    )


def _workflows(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "workflows", nargs="*", metavar="WORKFLOW", help="workflows to act on (default: all)"
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``) just the verb ``only`` with its options: each
    command runs one verb, and building the other thirty costs about as much as the rest of
    a no-op ``orch plan``'s start-up. ``only`` that names no verb builds nothing but the
    top level (``main`` then builds everything, so the error lists every verb)."""
    _ONLY[:] = [only] if only else []
    try:
        return _build_parser()
    finally:
        _ONLY.clear()


def _build_parser() -> argparse.ArgumentParser:
    from runner.cli.examples import epilog

    parser = _Parser(
        prog="orch",
        description="A declarative, GitOps-style workflow runner.",
        epilog=epilog(""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"orch {__version__}")
    parser.add_argument("-C", dest="directory", metavar="DIR", help="run as if started in DIR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.top_level = True  # type: ignore[attr-defined]  # (see _cmd)
    filters, jobs, applying = _group(_filters), _group(_jobs), _group(_apply_options)
    executing = _group(_executor)

    p = _cmd(sub, "init", "create .orch/config.yaml and .orch/.gitignore here", "basic:init")
    _json(p)

    p = _cmd(
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
    p.add_argument(
        "--ref", metavar="REV", help="validate the manifests as they are at git revision REV"
    )
    _json(p)

    p = _cmd(
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
    _json(p)

    p = _cmd(sub, "graph", "show a workflow's DAG", "basic:graph")
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
    _json(p)

    p = _cmd(sub, "plan", "show what apply would run, and why", "run:plan", [filters])
    _workflows(p)
    p.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STEP",
        help="plan STEP (WORKFLOW/STEP or STEP) as forced",
    )
    p.add_argument("--force-all", action="store_true", help="plan every step as forced")
    p.add_argument(
        "--ref", metavar="REV", help="plan the manifests as they are at git revision REV"
    )
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
    _json(p)

    for name in ("apply", "run"):
        p = _cmd(
            sub,
            name,
            "run what changed or failed" + (" (alias of apply)" if name == "run" else ""),
            "run:apply",
            [filters, jobs, applying, executing],
        )
        _workflows(p)
        p.add_argument(
            "--plan",
            metavar="FILE",
            help="apply exactly the plan saved by `orch plan --out FILE`, or refuse if it "
            "is stale (also: a single WORKFLOW argument that is a .json file)",
        )

    p = _cmd(
        sub,
        "explain",
        "every part of a step's fingerprint, recorded -> now: why it would (not) run",
        "run:explain",
    )
    p.add_argument("workflow", metavar="WORKFLOW", help="the step's workflow")
    p.add_argument("step", metavar="STEP", help="the step to explain")
    p.add_argument("--env", help="the project environment whose params to use (e.g. dev, prod)")
    p.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="explain as if this param were set (repeatable), as plan --param does",
    )
    _json(p)

    p = _cmd(sub, "status", "recorded state of each step", "run:status")
    p.add_argument(
        "workflows", nargs="*", metavar="WORKFLOW", help="workflows to show (default: all)"
    )
    p.add_argument("--project", help="only the workflows of this project")
    _json(p)

    p = _cmd(sub, "logs", "print a task's log", "run:logs")
    p.add_argument("workflow", metavar="WORKFLOW", help="the step's workflow")
    p.add_argument("step", metavar="STEP", help="the step whose log to print")
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
    _json(p)

    p = _cmd(sub, "history", "past runs", "run:history")
    p.add_argument("workflows", nargs="*", metavar="WORKFLOW", help="only runs of these workflows")
    p.add_argument(
        "-n",
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show the N latest (default: 20)",
    )
    p.add_argument(
        "--tasks", action="store_true", help="each run's tasks with wall, CPU and peak RSS"
    )
    _json(p)

    p = _cmd(
        sub,
        "watch",
        "apply, then re-apply on every change",
        "watch:watch",
        [filters, jobs, executing],
    )
    _workflows(p)
    p.add_argument(
        "--restart", action="store_true", help="end affected running tasks and start over on change"
    )
    p.add_argument(
        "--debounce",
        type=seconds,
        metavar="SECONDS",
        help="wait this long after the last change before applying (default: the config's)",
    )
    _events(p)
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
    _quiet(p)
    _verbose(p, "also print each attempt's end (status, exit code, time) and retries")

    p = _cmd(sub, "audit", "who changed state, when, with which command", "run:audit")
    p.add_argument(
        "--since",
        metavar="DATE",
        help="only records from DATE on: YYYY-MM-DD, an ISO 8601 time (UTC unless it "
        "gives an offset), or an age such as 7d or 12h",
    )
    _json(p)

    wf = _cmd(sub, "workflow", "list, run or create workflows", "")
    wsub = wf.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    p = _cmd(wsub, "list", "list workflows", "basic:workflow_list")
    _json(p)
    p = _cmd(wsub, "run", "apply one workflow", "run:apply", [filters, jobs, applying, executing])
    p.add_argument("workflows", nargs=1, metavar="WORKFLOW", help="the workflow to apply")
    p = _cmd(
        wsub, "create", "write a workflow manifest from a template", "projects:workflow_create"
    )
    p.add_argument("name", metavar="NAME", help="the new workflow's name")
    _template_options(p, "workflow")
    p.add_argument("--path", help="folder to write it in (default: the current folder)")
    _json(p)

    pr = _cmd(sub, "project", "create and manage projects", "")
    psub = pr.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    p = _cmd(psub, "create", "lay out a new project from a template", "projects:project_create")
    p.add_argument("name", metavar="NAME", help="the new project's name")
    _template_options(p, "project")
    p.add_argument("--path", help="its folder (default: NAME)")
    _json(p)
    p = _cmd(psub, "list", "list projects", "projects:project_list")
    _json(p)
    p = _cmd(
        psub,
        "status",
        "a project's workflows, failing steps and milestones",
        "projects:project_status",
    )
    p.add_argument("name", metavar="NAME", help="the project")
    p.add_argument("--env", help="the project environment whose params to use (e.g. dev, prod)")
    _json(p)
    p = _cmd(
        psub,
        "archive",
        "pack a project into .orch/archive/ and stop reconciling it",
        "projects:project_archive",
    )
    p.add_argument("name", metavar="NAME", help="the project to archive")
    _json(p)
    p = _cmd(psub, "restore", "unpack an archived project", "projects:project_restore")
    p.add_argument("name", metavar="NAME", help="the archived project (see .orch/archive/)")
    _json(p)

    tp = _cmd(sub, "template", "templates for projects and workflows", "")
    tsub = tp.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    p = _cmd(tsub, "list", "list templates and their parameters", "projects:template_list")
    _json(p)

    tk = _cmd(sub, "task", "inspect and cancel tasks", "")
    ksub = tk.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    p = _cmd(ksub, "list", "queued, running and recent tasks", "run:task_list")
    p.add_argument(
        "-n",
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show the N latest (default: 20)",
    )
    _json(p)
    p = _cmd(ksub, "status", "one task", "run:task_status")
    p.add_argument("id", type=positive_int, metavar="ID", help="the task's id (see orch task list)")
    _json(p)
    p = _cmd(
        ksub,
        "cancel",
        "end a running task's process tree (or every task of a run)",
        "run:task_cancel",
    )
    p.add_argument(
        "id", nargs="?", type=positive_int, metavar="ID", help="the task's id (see orch task list)"
    )
    p.add_argument(
        "--run",
        type=positive_int,
        metavar="RUN_ID",
        help="cancel the whole run: each of its tasks, and no more start (see orch history)",
    )
    _json(p)

    st = _cmd(sub, "state", "manage .orch/state.db", "")
    ssub = st.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    p = _cmd(
        ssub, "reset", "move state.db aside (kept as a backup) and start afresh", "run:state_reset"
    )
    _json(p)

    sy = _cmd(sub, "system", "the host and the runner", "")
    ysub = sy.add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True
    )
    for name, helptext in (
        ("status", "host resources and quota use"),
        ("metrics", "task metrics"),
        ("health", "can orch run here?"),
    ):
        p = _cmd(ysub, name, helptext, f"run:system_{name}")
        _json(p)

    _cmd(sub, "mcp", "serve orch to AI agents over MCP (stdio)", "mcp:serve")

    p = _cmd(
        sub,
        "completion",
        "print a shell completion script (needs the [completion] extra)",
        "completion:completion",
    )
    p.add_argument(
        "shell", choices=("bash", "zsh", "fish"), help="the shell to write the script for"
    )
    return parser


def verb_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the verb ``args`` were parsed for (``orch task list`` -> its own)."""
    for name in ("command", "subcommand"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, name, None)
        if not subs or chosen not in subs[0].choices:
            break
        parser = subs[0].choices[chosen]
    return parser


def _verb(argv: list[str]) -> str | None:
    """The top-level verb ``argv`` names (its first word that is not an option or the value
    of ``-C``), or None: ``--help`` before it, or none at all, needs the whole parser."""
    it = iter(argv)
    for word in it:
        if word == "-C":
            next(it, None)
        elif word in ("-h", "--help", "--version") or word == "--":
            return None
        elif not word.startswith("-"):
            return word
    return None


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices  # type: ignore[return-value]
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    opts = argv[: argv.index("--")] if "--" in argv else argv
    json_out = "--json" in opts or _events_to_stdout(opts)
    _JSON_ERRORS[0] = json_out
    _DETAILED[0] = "--detailed-exitcode" in argv
    if argv == ["--version"]:  # the one call scripts make in a loop: no parser at all
        print(f"orch {__version__}")
        return 0
    verb = _verb(argv)
    parser = build_parser(verb)
    if verb is None or verb not in _choices(parser):
        parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the verb's parser, so the line names the verb's --help
        verb_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "target", None):
        if args.command is None:
            parser.print_help()
            return 2
        parser.parse_args([*argv, "--help"])
        return 2
    module, _, func = args.target.partition(":")
    _ARGV[0] = argv
    _handle_termination()
    from runner.cli.common import mask_streams

    mask_streams()  # every line printed from here on is masked (runner.cli.common.masked)
    code = _dispatch(args, module, func, json_out)
    if args.target in _audited():
        _audit(argv, code)
    return code


def _audited() -> frozenset[str]:
    from runner.audit import AUDITED

    return AUDITED


def _audit(argv: list[str], code: int | None) -> None:
    """Append the command to the audit log (``runner.audit``) unless the verb said it
    changed nothing (``common.AUDIT_SKIP``: a no-op apply, a dry run) or no repository
    was opened. A row that cannot be written is a warning after a command that succeeded
    (after one that failed, its own error line said what is wrong), never a failure."""
    from runner.cli import common

    if common.AUDIT_SKIP[0] or not common.OPENED:
        return
    from runner.audit import record

    try:
        root, error = common.OPENED[0].root, _LAST_ERROR[0] if code else None
        record(root, argv, code, error, common.masked, into=common.AUDIT_INTO[0])
    except Exception as e:  # StateError, OSError, sqlite3: the command's result stands
        if code not in (0, None):
            return  # its own error line said what is wrong (a read-only or full .orch/)
        from runner.render import shown

        print(shown(f"orch: warning: audit log not written: {e}"), file=sys.stderr)


def audit_start() -> None:
    """A row for a command that starts something long-lived (``watch``), before it runs
    (exit code null); its end is recorded as every command's is."""
    _audit(_ARGV[0], None)


def _dispatch(args: argparse.Namespace, module: str, func: str, json_out: bool) -> int:
    """Run the verb's handler; every error becomes its one line and exit code."""
    from runner.errors import OrchError  # after parsing: --version and --help never need it

    try:
        if args.directory and not os.path.isdir(args.directory):
            raise OrchError(f"-C {args.directory}: no such directory")
        import importlib

        mod = importlib.import_module(f"runner.cli.{module}")
        handler: Handler = getattr(mod, func)
        try:
            return handler(args)
        finally:
            _print_warnings()
    except OrchError as e:
        if e.exit_code == 2:
            e.exit_code = usage_code()
        _LAST_ERROR[0] = "; ".join(e.lines())
        if json_out:
            return _json_error(e)
        from runner.render import shown

        for line in e.lines():
            print(shown(f"orch: {line}" if not e.diagnostics else line), file=sys.stderr)
        if e.diagnostics and len(e.diagnostics) > 1:
            print(f"orch: {len(e.diagnostics)} errors", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        if ending.by_closed_pipe():
            return 128 + signal.SIGPIPE  # quietly: whoever reads our output has gone
        if str(e):  # errors.Interrupted: not a signal, something to say (a cluster lost)
            say_error(f"interrupted: {e}", 130, json_out)
            return 130
        if ending.ENDED_BY:
            name = signal.Signals(ending.ENDED_BY[0]).name
            say_error(f"interrupted by {name}", 128 + ending.ENDED_BY[0], json_out)
            return 128 + ending.ENDED_BY[0]
        say_error("interrupted", 130, json_out)
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        return 0
    except OSError as e:
        line = environment_error(e)
        if line is None:
            return _crash(args, e)
        say_error(line, 1, json_out)
        return 1
    except Exception as e:  # the one place an unexpected error becomes one line
        return _crash(args, e)


def _events_to_stdout(opts: list[str]) -> bool:
    """``--events -``: stdout carries JSON lines only, so errors go there as JSON too."""
    return "--events=-" in opts or any(
        a == "--events" and b == "-" for a, b in zip(opts, opts[1:], strict=False)
    )


def _json_error(e: OrchError) -> int:
    """An OrchError with ``--json``: its lines on stderr as always, and one JSON object on
    stdout: ``{"error": MESSAGE, "exit": CODE}``, with ``"diagnostics": [{path, line, col,
    where, message, hint}]`` when the error has them."""
    if not e.diagnostics:  # one line, or a few (one per problem): the JSON joins them
        say_error("; ".join(e.lines()), e.exit_code, True)
        return e.exit_code
    from runner.render import shown

    for line in e.lines():
        print(shown(line), file=sys.stderr)
    say_error(str(e), e.exit_code, True, diagnostics=[d.to_json() for d in e.diagnostics])
    return e.exit_code


# what the machine, not orch or the manifests, failed at, and what to do about it
_ENVIRONMENT = {
    "ENOSPC": "the disk is full; free space on it, then run the command again",
    "EDQUOT": "the disk quota is used up; free space, then run the command again",
    "EFBIG": "over the file size limit (ulimit -f); raise it, then run the command again",
    "EROFS": "run this where it is writable (status, plan, history and logs read a "
    "read-only .orch/ as it is)",
    "EACCES": "permission denied; check the permissions, or run as the owner",
    "EPERM": "not permitted; check the permissions, or run as the owner",
    "EIO": "an I/O error; check the disk, then run the command again",
    "EMFILE": "too many open files; raise the limit (ulimit -n), then run the command again",
    "ENFILE": "too many open files on this machine; close some, then run the command again",
    "ENOMEM": "out of memory; free some, then run the command again",
}


def environment_error(e: OSError) -> str | None:
    """One line for an error of the machine (disk full, read-only, permissions...): what
    failed and what to do; None for any other OSError (a bug: the crash report)."""
    import errno

    hint = _ENVIRONMENT.get(errno.errorcode.get(e.errno or 0, ""))
    if hint is None:
        return None
    what = f"{os.fsdecode(e.filename)}: " if e.filename is not None else ""
    return f"{what}{e.strerror or e}: {hint}"


TERMINATING = ("SIGTERM", "SIGHUP")


def _handle_termination() -> None:
    """Turn SIGTERM and SIGHUP into the KeyboardInterrupt that Ctrl-C raises, so every
    command cleans up the one way; a signal someone set to be ignored (``nohup``) stays
    ignored. Commands with their own stop logic (watch, mcp) replace these handlers."""
    for name in TERMINATING:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, ending.terminate)


def _print_warnings() -> None:
    from runner.cli.common import OPENED

    said: set[str] = set()
    for repo in OPENED:
        for line in repo.warnings:
            if line not in said:
                said.add(line)
                from runner.render import shown

                print(f"orch: warning: {shown(line)}", file=sys.stderr)


def _damaged_state(where: os.PathLike[str]) -> str | None:
    """The state-reset line if ``.orch/state.db`` is damaged: a damaged page can hold values
    of any type, and whatever error that caused, the way out is the same as for any other
    damage. Read-only, on the error path only."""
    try:
        from pathlib import Path

        from runner.manifests.sources import find_root
        from runner.store.state import State

        orch_dir = find_root(Path(where)) / ".orch"
        if not (orch_dir / "state.db").exists():
            return None
        state = State(orch_dir, readonly=True)
        try:
            damage = state.damage()
        finally:
            state.close()
    except Exception:  # noqa: BLE001 - only a better message for an error already raised
        return None
    return str(damage) if damage is not None else None


def _crash(args: argparse.Namespace, e: BaseException) -> int:
    import traceback
    from pathlib import Path

    where = Path(args.directory or ".").resolve()
    damaged = _damaged_state(where)
    if damaged:
        say_error(damaged, 1, _JSON_ERRORS[0])
        return 1
    log = None
    try:
        from runner.manifests.sources import find_root

        log = find_root(where) / ".orch" / "logs" / "crash.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"orch {__version__}: {' '.join(sys.argv)}\n")
            traceback.print_exc(file=f)
    except OSError:
        log = None

    msg = f"internal error: {type(e).__name__}: {e}"
    if log:
        msg += f" (traceback in {log}; please report it)"
    say_error(msg, 3, _JSON_ERRORS[0])
    return 3
