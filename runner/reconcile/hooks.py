"""The ``on: {failure, success, always}`` commands a workflow runs after an apply."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

from runner.manifests.checks import base_params
from runner.model import Workflow
from runner.reconcile.results import FAILED, ApplyResult

if TYPE_CHECKING:
    from runner.reconcile.flow import ApplyOptions, Reconciler, Selection


def run_handlers(
    rec: Reconciler, wfs: list[Workflow], result: ApplyResult, sel: Selection, opts: ApplyOptions
) -> None:
    ran = {r.workflow for r in result.results if r.status not in ("up-to-date",)}
    for wf in wfs:
        if wf.name not in ran or not wf.handlers:
            continue
        mine = [r for r in result.results if r.workflow == wf.name]
        if any(r.status == "interrupted" for r in mine):
            kinds = ["always"]  # stopped (Ctrl-C, watch --restart): neither failed nor done
            failed = False
        else:
            failed = any(r.status in (*FAILED, "blocked", "circuit_open") for r in mine)
            kinds = ["failure" if failed else "success", "always"]
        for kind in kinds:
            for h in wf.handlers.get(kind, ()):
                run_handler(rec, wf, h, sel, failed, opts)


def run_handler(
    rec: Reconciler, wf: Workflow, h: Any, sel: Selection, failed: bool, opts: ApplyOptions
) -> None:

    from runner.manifests.sources import clean_git_env
    from runner.templating import render_argv, render_command

    ctx = {
        "params": base_params(rec.m, wf, sel.env or None),
        "workflow": {
            "name": wf.name,
            "project": wf.project or "",
            "status": "failed" if failed else "succeeded",
        },
        "env": dict(os.environ),
        "steps": {
            n: {"outputs": r.outputs, "status": r.status}
            for n, r in rec.state.step_records(wf.name, sel.env).items()
        },
    }
    try:
        cmd = (
            render_command(h.run, ctx) if isinstance(h.run, str) else render_argv(list(h.run), ctx)
        )
    except Exception as e:
        if opts.echo:
            opts.echo(f"[{wf.name}] on-handler template error: {e}")
        return
    env = clean_git_env()
    env.update(h.env)
    cwd = rec.root / wf.base if wf.base else rec.root
    p = subprocess.run(
        cmd if isinstance(cmd, list) else ["/bin/sh", "-c", cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if opts.echo:
        for line in (p.stdout + p.stderr).splitlines():
            opts.echo(f"[{wf.name}:on] {line}")
