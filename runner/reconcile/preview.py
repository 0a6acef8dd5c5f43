"""What a plan's steps would run: each command rendered as apply would render it, for
``plan --show-commands`` and ``apply --dry-run`` (as ``make -n`` prints the recipes).

An upstream step that will itself run has no outputs yet: they, and its status, render
as ``(known after apply)``, Terraform's words for a value only the apply can know. The
caller masks the result with the run's secrets before showing it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runner.manifests.catalog import Manifests
from runner.reconcile.planner import Plans
from runner.reconcile.start import template_context
from runner.status import Action

UNKNOWN = "(known after apply)"


class _Unknown(Mapping[str, str]):
    """The outputs of a step that has not run yet: every name is there, as UNKNOWN (a
    Mapping, not a dict, so the template's text-truth copy keeps it as it is)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return UNKNOWN

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def commands(
    m: Manifests,
    plans: Plans,
    environ: dict[str, str],
    only: set[tuple[str, str]] | None = None,
) -> dict[tuple[str, str], Any]:
    """``{(workflow, step): {"command": str | list[str] | None, "note": str}}`` for every
    step the plan would run (``only``: for these steps, whatever their action, as ``orch
    explain`` shows them); ``note`` says why there is no command (a template that
    cannot render yet, ``when:`` false)."""
    from runner.templating import evaluate_when, render_argv, render_command

    actions = {(w, s): a for w, s, a, _ in plans.rows()}
    out: dict[tuple[str, str], Any] = {}
    for key, action in actions.items():
        if (action == Action.UP_TO_DATE) if only is None else key not in only:
            continue
        view = plans.views[key]
        records = plans.records.get(key[0], {})
        pending = {
            n
            for n in view.upstream
            if actions.get((key[0], n), Action.UP_TO_DATE) != Action.UP_TO_DATE
        }
        ctx = template_context(view, m, records, environ)
        for n in pending:
            ctx["steps"][n] = {"outputs": _Unknown(), "status": UNKNOWN}
        step = view.step
        try:
            if step.when is not None and not evaluate_when(step.when, ctx):
                out[key] = {"command": None, "note": "skipped: when: false"}
                continue
            cmd = (
                render_command(step.run, ctx)
                if isinstance(step.run, str)
                else render_argv(list(step.run), ctx)
            )
            out[key] = {"command": cmd, "note": ""}
        except Exception as e:  # noqa: BLE001 - TemplateError, or a value the quoting refuses
            out[key] = {"command": None, "note": f"cannot render before apply: {e}"}
    return out
