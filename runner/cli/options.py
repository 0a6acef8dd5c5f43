"""The options more than one verb takes, declared once, and the argparse types they use.

Each ``add_*`` adds one option (or one block of options that always travel together) to a
parser; where two verbs word an option's help differently, the words are a parameter, so a
verb's ``--help`` reads as it always has. ``parent`` turns adders into an argparse parent
parser, for option groups shared whole (``--project/--env/--since/--param``, ``-j``,
apply's options, the executor's).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Adder = Callable[[argparse.ArgumentParser], None]


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


def port_number(text: str) -> int:
    """argparse ``type``: a TCP port, 0 (any free one) to 65535."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {n}")
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


def size(text: str) -> int:
    """argparse ``type``: a size in bytes, ``5GiB``, ``500MB``, ``1024`` (``units.parse_size``)."""
    from runner.units import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def age(text: str) -> float:
    """argparse ``type``: a duration, ``30d``, ``12h``, ``90`` seconds (``units.parse_duration``).
    Its hint names days, the usual unit of an age (the shared one stops at hours)."""
    from runner.units import parse_duration

    try:
        return parse_duration(text, examples="30d, 12h, 1h30m, 90")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parent(*adders: Adder) -> argparse.ArgumentParser:
    """A parent parser: options declared once, shared by every verb that takes them."""
    p = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(p)
    return p


# -C is accepted after the verb too (`orch apply -C DIR`), without overriding a global one
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument(
    "-C",
    dest="directory",
    metavar="DIR",
    default=argparse.SUPPRESS,
    help="run as if started in DIR",
)


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def add_jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-j", "--jobs", type=positive_int, metavar="N", help="tasks at once (default: CPU count)"
    )


def add_project(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", help="only the workflows of this project")


def add_env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", help="the project environment whose params to use (e.g. dev, prod)")


def add_params(p: argparse.ArgumentParser, text: str) -> None:
    """``--param KEY=VALUE`` (repeatable) into ``args.params``; ``text`` is its help."""
    p.add_argument(
        "--param", dest="params", action="append", default=[], metavar="KEY=VALUE", help=text
    )


def add_filters(p: argparse.ArgumentParser) -> None:
    add_project(p)
    add_env(p)
    p.add_argument(
        "--since", metavar="REV", help="only workflows whose manifests or inputs changed since REV"
    )
    add_params(
        p, "set a workflow param for this run (repeatable; typed as its value in the manifest)"
    )


def add_force(p: argparse.ArgumentParser, step_text: str, all_text: str) -> None:
    """``--force STEP`` (repeatable) and ``--force-all``, with each one's help."""
    p.add_argument("--force", action="append", default=[], metavar="STEP", help=step_text)
    p.add_argument("--force-all", action="store_true", help=all_text)


def add_no_cache(p: argparse.ArgumentParser, why: str) -> None:
    p.add_argument("--no-cache", action="store_true", help=why)


def add_apply_options(p: argparse.ArgumentParser) -> None:
    add_force(p, "run STEP (WORKFLOW/STEP or STEP) even if up to date", "run every step")
    add_no_cache(p, "run steps even where the result cache holds their result; store nothing")
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
    add_events(p)
    add_quiet(p, "print only failures and the summary (no task output, no step lines)")
    add_verbose(p)
    add_json(p)


def add_events(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--events",
        metavar="FILE",
        help="append progress events as JSON lines to FILE (- for stdout, which then "
        "carries nothing else); schema in docs/events.md",
    )


def add_executor(p: argparse.ArgumentParser) -> None:
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


def add_quiet(p: argparse.ArgumentParser, text: str = "do not stream task output") -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=text)


def add_verbose(
    p: argparse.ArgumentParser,
    text: str = "also print each step's command as rendered, each attempt's end (status, "
    "exit code, time), retries, and up-to-date steps with no reason given",
) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help=text)


def add_workflows(
    p: argparse.ArgumentParser, text: str = "workflows to act on (default: all)", **kw: Any
) -> None:
    """The ``WORKFLOW`` positionals into ``args.workflows`` (any number unless ``nargs``)."""
    p.add_argument("workflows", **{"nargs": "*", **kw}, metavar="WORKFLOW", help=text)


def add_step_address(p: argparse.ArgumentParser, step_text: str) -> None:
    """``WORKFLOW STEP``: the two positionals that name one step."""
    p.add_argument("workflow", metavar="WORKFLOW", help="the step's workflow")
    p.add_argument("step", metavar="STEP", help=step_text)


def add_ref(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument(
        "--ref", metavar="REV", help=f"{verb} the manifests as they are at git revision REV"
    )


def add_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n",
        "--limit",
        type=positive_int,
        default=20,
        metavar="N",
        help="show the N latest (default: 20)",
    )


def add_task_id(p: argparse.ArgumentParser, **kw: Any) -> None:
    p.add_argument(
        "id", **kw, type=positive_int, metavar="ID", help="the task's id (see orch task list)"
    )


def add_created(p: argparse.ArgumentParser, kind: str, path_text: str) -> None:
    """What ``workflow create`` and ``project create`` take: the new one's NAME, the
    template and its params, ``--path`` (``path_text`` its help), ``--json``."""
    p.add_argument("name", metavar="NAME", help=f"the new {kind}'s name")
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
    p.add_argument("--path", help=path_text)
    add_json(p)
