"""Checks of how a step runs: its ``shell:`` can be found and quotes as run's values
are quoted, its resource requests fit the quotas and the host, and steps sharing a circuit
breaker agree on its settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import Diagnostic
from runner.manifests.checkctx import Ctx, is_templated
from runner.model import Step, Workflow

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests


def check_shell(ctx: Ctx, s: Step, sp: tuple[Any, ...]) -> None:
    """``shell:`` must split into a command line whose program can be found now."""
    if s.shell is None:
        return
    import shlex
    import shutil

    where = sp + ("shell",) if "shell" in s.spec else ("spec", "defaults", "shell")
    text = s.spec.get("shell") or " ".join(s.shell)
    try:
        argv = shlex.split(text)
    except ValueError as e:
        ctx.add(where, f"shell {text!r} does not split into words: {e}", "close the quote")
        return
    if not shutil.which(argv[0]):
        ctx.add(
            where,
            f"shell program '{argv[0]}' is not on PATH",
            "install it, or leave shell: out for sh -e",
        )
    program = argv[0].rsplit("/", 1)[-1] if argv else ""
    if isinstance(s.run, str) and is_templated(s.run) and program not in POSIX_SHELLS:
        # values are quoted for sh; python, node, pwsh or fish read that quoting differently
        ctx.add(
            sp + ("run",),
            f"values in run are quoted for a POSIX shell, and shell: '{program}' is not one,"
            " so a value could become code",
            "pass values in env: and read them from the environment there, or use sh or bash",
        )


POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "posh", "yash"})


def check_resources(ctx: Ctx, s: Step, sp: tuple[Any, ...]) -> None:
    """A request no quota governing the step could ever grant is an error now, not a hang."""
    from runner.manifests.quotas import governing

    for q in governing(ctx.m, ctx.wf):
        if q.limits.get("concurrency", 1) < 1:  # every task holds one unit of concurrency
            ctx.add(
                sp + ("name",),
                f"step '{s.name}' can never start: quota '{q.name}' allows concurrency {_fmt(q.limits['concurrency'])}",
                "raise the quota's concurrency to at least 1",
            )
        for res, amount in s.resources.items():
            if res in q.limits and amount > q.limits[res]:
                ctx.add(
                    sp + ("resources", res),
                    f"step '{s.name}' requests {res}={_qty(res, amount)} but quota '{q.name}' allows at most {_qty(res, q.limits[res])}",
                    "lower the request or raise the quota's limit",
                )
    if s.resources.get("cpu") or s.resources.get("memory"):
        from runner.execute.host import host_limits  # psutil: only when a step asks for cpu/memory

        # Kept apart (Manifests.host_diags): the host is the ceiling only where tasks run
        # here, the local executor; on a Dask cluster the workers are (execute.dask).
        kept = len(ctx.out)
        for res, limit in host_limits().items():
            amount = s.resources.get(res, 0.0)
            if amount > limit:
                ctx.add(
                    sp + ("resources", res),
                    f"step '{s.name}' requests {res}={_qty(res, amount)} but this host has {_qty(res, limit)}",
                    "the host is the ceiling of every quota with the local executor; lower the "
                    "request, or run it on a Dask cluster: docs/distributed.md",
                )
        ctx.m.host_diags.extend(ctx.out[kept:])
        del ctx.out[kept:]


def _qty(res: str, x: float) -> str:
    if res == "memory":
        from runner.units import format_bytes

        return format_bytes(x)
    return _fmt(x)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def check_breakers(m: Manifests, prefix: str = "") -> list[Diagnostic]:
    """One breaker name, one set of settings: the steps that share a breaker count failures
    together, so two steps that disagree on its threshold or cooldown would each trip it by
    their own rule. ``breaker: NAME`` alone means the defaults (threshold 3, cooldown 1m)."""
    first: dict[str, tuple[Any, Workflow, Step]] = {}
    out: list[Diagnostic] = []
    for wf in sorted(m.workflows.values(), key=lambda w: (w.path, w.loc.line)):
        for s in wf.steps:
            b = s.breaker
            if b is None:
                continue
            seen = first.get(b.name)
            if seen is None:
                first[b.name] = (b, wf, s)
                continue
            b0, wf0, s0 = seen
            if (b0.threshold, b0.cooldown) != (b.threshold, b.cooldown):
                doc = m.documents[(wf.path, wf.doc_index)]
                line, col = doc.where(("spec", "steps", s.index, "breaker"))
                line0, _ = m.documents[(wf0.path, wf0.doc_index)].where(
                    ("spec", "steps", s0.index, "breaker")
                )
                out.append(
                    Diagnostic(
                        prefix + wf.path,
                        line,
                        col,
                        f"spec.steps[{s.index}].breaker",
                        f"breaker '{b.name}' has threshold {b.threshold}, cooldown "
                        f"{_fmt(b.cooldown)}s here but threshold {b0.threshold}, cooldown "
                        f"{_fmt(b0.cooldown)}s in step '{wf0.name}/{s0.name}' "
                        f"({prefix}{wf0.path}:{line0})",
                        "give every step that shares a breaker the same settings",
                    )
                )
    return out
