"""The ``on: {failure, success, always}`` commands a workflow runs after an apply.

They run through the same executor as steps (so the executor is the only thing that
starts processes), one at a time, each with a 300 s limit; their output is echoed as
``[workflow:on] line`` and kept in ``.orch/logs/<run>/<workflow>/on-<kind>.<n>.log``.
A hook's failure changes nothing of the apply's result, as in GitHub Actions' ``if:
always()`` steps after a job: it is reported, not recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.execute.api import Cancel, Executor, TaskSpec
from runner.reconcile.results import ApplyResult
from runner.status import NOT_OK, Status

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Workflow
    from runner.store.state import State

HOOK_TIMEOUT = 300.0  # seconds


def hook_kinds(
    wf: Workflow, result: ApplyResult, interrupted: bool = False, refused: bool = False
) -> tuple[list[str], str]:
    """Which of ``wf``'s hook kinds fire for ``result``, and the workflow's status as
    ``{{ workflow.status }}`` reads it: ``interrupted`` (Ctrl-C, SIGTERM, SIGHUP, watch
    --restart: only ``always`` fires, as GitHub Actions runs only ``if: always()`` steps
    of a cancelled job), else ``failed`` or ``succeeded``. ``refused``: a ``--no-wait``
    apply met a step another orch runs; the run failed, and so did each workflow of it
    that had a step to do (its ``failure`` handlers fire, as for a failed job)."""
    mine = [r for r in result.results if r.workflow == wf.name]
    if interrupted or any(r.status == Status.INTERRUPTED for r in mine):
        return ["always"], Status.INTERRUPTED
    if refused or any(r.status in NOT_OK for r in mine):
        return ["failure", "always"], Status.FAILED
    return ["success", "always"], Status.SUCCEEDED


def run(
    wfs: list[Workflow],
    result: ApplyResult,
    *,
    catalog: Manifests,
    state: State,
    root: Path,
    env_name: str,
    executor: Executor,
    echo: Callable[[str], None] | None,
    overrides: dict[str, dict[str, Any]] | None = None,
    interrupted: bool = False,
    refused: bool = False,
) -> list[str]:
    """Run the hooks of every workflow in ``wfs`` that had a step run in ``result``.

    Returns one line per hook that failed, timed out or could not start (masked), for the
    caller to report: a failing hook does not change the apply's result, but it is never
    silent. ``interrupted``: the run was stopped (a signal, Ctrl-C), whatever its steps'
    results say (a signal between two steps interrupts none of them)."""
    failures: list[str] = []
    ran = {r.workflow for r in result.results if r.status not in (Status.UP_TO_DATE,)}
    for wf in wfs:
        if wf.name not in ran or not wf.handlers:
            continue
        kinds, status = hook_kinds(wf, result, interrupted, refused)
        for kind in kinds:
            for n, h in enumerate(wf.handlers.get(kind, ()), 1):
                ctx = _context(catalog, state, wf, env_name, status)
                ctx["params"].update((overrides or {}).get(wf.name, {}))  # --param
                log = root / ".orch" / "logs" / str(result.run_id) / wf.name / f"on-{kind}.{n}.log"
                why = _run_one(
                    wf, h, ctx, root=root, log_path=log, executor=executor, echo=echo,
                    mask=state.secrets.values,
                )  # fmt: skip
                if why:
                    rel = log.relative_to(root)
                    line = f"workflow {wf.name}: on: {kind} handler {n} {why} (log: {rel})"
                    failures.append(state.secrets.mask(line))
    return failures


def _context(
    m: Manifests, state: State, wf: Workflow, env_name: str, status: str
) -> dict[str, Any]:
    from runner.manifests.checks import base_params

    return {
        "params": base_params(m, wf, env_name or None),
        "workflow": {
            "name": wf.name,
            "project": wf.project or "",
            "status": status,
        },
        "env": dict(os.environ),
        "steps": {
            n: {"outputs": r.outputs, "status": r.status}
            for n, r in state.step_records(wf.name, env_name).items()
        },
    }


def _run_one(
    wf: Workflow,
    h: Any,
    ctx: dict[str, Any],
    *,
    root: Path,
    log_path: Path,
    executor: Executor,
    echo: Callable[[str], None] | None,
    mask: tuple[str, ...] = (),
) -> str | None:
    """Run one hook; None when it succeeded, else how it failed."""
    from runner.manifests.sources import clean_git_env
    from runner.templating import render_argv, render_command

    try:
        cmd = (
            render_command(h.run, ctx) if isinstance(h.run, str) else render_argv(list(h.run), ctx)
        )
    except Exception as e:
        return f"has a template error: {e}"
    env = clean_git_env()
    env.update(h.env)
    spec = TaskSpec(
        key=f"{wf.name}:on",
        command=cmd,
        cwd=root / wf.base if wf.base else root,
        env=env,
        log_path=log_path,
        timeout=HOOK_TIMEOUT,
        echo=(lambda line: echo(f"[{wf.name}:on] {line}")) if echo else None,
        mask=mask,
    )
    res = executor.run(spec, Cancel())
    if res.status == Status.SUCCEEDED:
        return None
    if res.exit_code is not None:
        return f"failed (exit {res.exit_code})"
    last = f": {res.log_tail[-1].removeprefix('# orch: ')}" if res.log_tail else ""
    return f"{res.status.replace('_', ' ')}{last}"
