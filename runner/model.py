"""Frozen, validated manifests: what the rest of orch reasons about.

Built only from documents that passed their schema, so construction never has to guess;
defaults from ``spec.defaults`` are merged into each step here, once.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from runner.units import parse_duration, parse_quantity


@dataclass(frozen=True)
class Loc:
    path: str
    line: int
    col: int


@dataclass(frozen=True)
class Retry:
    limit: int = 0
    backoff: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: float = 0.1
    on: tuple[int, ...] | None = None

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based), before jitter."""
        return min(self.max, self.backoff * (self.factor ** (attempt - 1)))


@dataclass(frozen=True)
class Breaker:
    name: str
    threshold: int = 3
    cooldown: float = 60.0


@dataclass(frozen=True)
class Step:
    name: str
    index: int
    run: str | tuple[str, ...]
    needs: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "."
    when: str | bool | None = None
    params: dict[str, Any] = field(default_factory=dict)
    retry: Retry = Retry()
    timeout: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    priority: int = 0
    breaker: Breaker | None = None
    secrets: tuple[str, ...] = ()
    description: str = ""
    shell: tuple[str, ...] | None = None  # how a `run` string is run; None: DEFAULT_SHELL
    cache: bool = True  # its result kept in the result cache (step's cache:, else workflow's)
    spec: dict[str, Any] = field(default_factory=dict)  # as written, for fingerprints
    # an instance of a fan-out step (runner.manifests.fanout): the step's name as written,
    # and the values its templates read ({"matrix": {...}} or {"item": ...})
    group: str = ""
    fan: dict[str, Any] = field(default_factory=dict)
    # what an output edited by hand since it was recorded means (decide.py): "heal" (run
    # again, or restore from the result cache), "warn" (say so, run nothing) or "ignore"
    drift: str = "heal"


@dataclass(frozen=True)
class Handler:
    run: str | tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Workflow:
    name: str
    path: str  # the manifest file, repo-relative posix
    base: str  # the manifest's directory, repo-relative posix ("" at the root)
    doc_index: int
    loc: Loc
    steps: tuple[Step, ...]
    project: str | None = None
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    quota: str | None = None
    check: bool = False
    handlers: dict[str, tuple[Handler, ...]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    by_name: dict[str, Step] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # fan-out -> instances

    def step(self, name: str) -> Step:
        return self.by_name[name]

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]


@dataclass(frozen=True)
class Quota:
    name: str
    path: str
    loc: Loc
    limits: dict[str, float] = field(default_factory=dict)
    rate_runs: int | None = None
    rate_per: float | None = None
    workflows: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Milestone:
    name: str
    due: str | None = None
    workflows: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Project:
    name: str
    path: str  # manifest file
    loc: Loc
    dir: str  # the project's directory, repo-relative posix
    template: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    milestones: tuple[Milestone, ...] = ()
    lifecycle: str = "active"
    description: str = ""


def as_text(value: Any) -> str:
    """A scalar as the text a step sees it (an ``env`` value): yes/no as ``true``/``false``,
    anything else as Python's ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _env(d: dict[str, Any] | None) -> dict[str, str]:
    return {k: as_text(v) for k, v in (d or {}).items()}


def _retry(d: dict[str, Any] | None) -> Retry:
    if not d:
        return Retry()
    return Retry(
        limit=int(d.get("limit", 0)),
        backoff=parse_duration(d.get("backoff", 1)),
        factor=float(d.get("factor", 2)),
        max=parse_duration(d.get("max", 300)),
        jitter=float(d.get("jitter", 0.1)),
        on=tuple(d["on"]) if "on" in d else None,
    )


def _resources(d: dict[str, Any] | None) -> dict[str, float]:
    return {k: parse_quantity(v) for k, v in (d or {}).items()}


def _breaker(v: Any) -> Breaker | None:
    if v is None:
        return None
    if isinstance(v, str):
        return Breaker(v)
    return Breaker(v["name"], int(v.get("threshold", 3)), parse_duration(v.get("cooldown", 60)))


DEFAULT_SHELL = ("/bin/sh", "-e")  # fail fast, as CI runners run scripts (sh -e {0})


def shell_argv(text: str | None) -> tuple[str, ...] | None:
    """``shell:`` split as a shell would (``bash -eo pipefail``); None for the default.
    Text that does not split (an open quote) is kept whole for validation to report."""
    if text is None:
        return None
    import shlex

    try:
        return tuple(shlex.split(text)) or (text,)
    except ValueError:
        return (text,)


def build_workflow(path: str, doc_index: int, line: int, data: dict[str, Any]) -> Workflow:
    meta = data["metadata"]
    spec = data["spec"]
    defaults = spec.get("defaults") or {}
    wf_env = {**_env(spec.get("env")), **_env(defaults.get("env"))}
    d_timeout = defaults.get("timeout")
    d_retry = defaults.get("retry")
    d_res = _resources(defaults.get("resources"))
    d_shell = defaults.get("shell")
    steps = []
    for i, s in enumerate(spec["steps"]):
        run = s["run"]
        timeout = s.get("timeout", d_timeout)
        steps.append(
            Step(
                name=s["name"],
                index=i,
                run=tuple(run) if isinstance(run, list) else run,
                needs=tuple(s.get("needs", ())),
                inputs=tuple(s.get("inputs", ())),
                outputs=tuple(s.get("outputs", ())),
                env={**wf_env, **_env(s.get("env"))},
                workdir=s.get("workdir", "."),
                when=s.get("when"),
                params=s.get("params") or {},
                retry=_retry(s.get("retry", d_retry)),
                timeout=parse_duration(timeout) if timeout is not None else None,
                resources={**d_res, **_resources(s.get("resources"))},
                priority=int(s.get("priority", 0)),
                breaker=_breaker(s.get("breaker")),
                secrets=tuple(s.get("secrets", ())),
                description=s.get("description", ""),
                shell=shell_argv(s.get("shell", d_shell)),
                cache=bool(s.get("cache", spec.get("cache", True))),
                spec=s,
                drift=s.get("drift", spec.get("drift", "heal")),
            )
        )
    handlers = {
        k: tuple(
            Handler(tuple(h["run"]) if isinstance(h["run"], list) else h["run"], _env(h.get("env")))
            for h in v
        )
        for k, v in (spec.get("on") or {}).items()
    }
    base = posixpath.dirname(path)
    return Workflow(
        name=meta["name"],
        path=path,
        base=base,
        doc_index=doc_index,
        loc=Loc(path, line, 1),
        steps=tuple(steps),
        project=meta.get("project"),
        description=spec.get("description", meta.get("description", "")),
        params=spec.get("params") or {},
        env=wf_env,
        quota=spec.get("quota"),
        check=bool(spec.get("check", False)),
        handlers=handlers,
        labels=meta.get("labels") or {},
        by_name={s.name: s for s in reversed(steps)},  # first of duplicates wins
    )


def build_quota(path: str, line: int, data: dict[str, Any]) -> Quota:
    spec = data["spec"]
    rate = spec.get("rate") or {}
    sel = spec.get("selector") or {}
    return Quota(
        name=data["metadata"]["name"],
        path=path,
        loc=Loc(path, line, 1),
        limits=_resources(spec.get("limits")),
        rate_runs=rate.get("runs"),
        rate_per=parse_duration(rate["per"]) if "per" in rate else None,
        workflows=tuple(sel.get("workflows", ())),
        projects=tuple(sel.get("projects", ())),
        description=spec.get("description", ""),
    )


def build_project(path: str, line: int, data: dict[str, Any]) -> Project:
    spec = data["spec"]
    return Project(
        name=data["metadata"]["name"],
        path=path,
        loc=Loc(path, line, 1),
        dir=posixpath.normpath(spec.get("path") or posixpath.dirname(path) or "."),
        template=spec.get("template"),
        params=spec.get("params") or {},
        environments={
            k: dict((v or {}).get("params") or {})
            for k, v in (spec.get("environments") or {}).items()
        },
        milestones=tuple(
            Milestone(
                m["name"],
                m.get("due"),
                tuple(m.get("workflows", ())),
                tuple(m.get("steps", ())),
                m.get("description", ""),
            )
            for m in spec.get("milestones", ())
        ),
        lifecycle=spec.get("lifecycle", "active"),
        description=spec.get("description", ""),
    )
