"""What each page shows, as plain data for its template; every read goes through
``runner.api`` (read-only), and every repository string is masked with ``api.mask``
before it reaches a page (the template escapes it)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO

from runner import api
from runner.errors import OrchError
from runner.fsutil import open_regular
from runner.status import FAILED, LIVE, NOT_OK
from runner.ui.dag import group_status, layout

LOG_PAGE = 256 * 1024  # bytes of a log on one page
HISTORY_LIMIT = 100  # runs on the history page (each read with its tasks)


def repo_at(root: Path) -> api.Repo:
    """A fresh Repo per request (the manifests may have changed), writing no cache."""
    repo = api.Repo(root=root, prefix="")
    repo.writes_cache = False
    return repo


def _plan(repo: api.Repo, workflows: list[str] | None = None) -> tuple[dict[str, Any], str | None]:
    try:
        return api.plan(repo, workflows, readonly=True), None
    except OrchError as e:
        return {"steps": [], "summary": {}}, "; ".join(e.lines())


def overview(repo: api.Repo) -> dict[str, Any]:
    """Every workflow: its steps' statuses, last run, failing steps and what the plan
    would run; the open breakers and the quotas in use. Manifests that do not load are
    shown as their one-line errors (``errors``), with what the state still tells."""
    try:
        wfs = api.workflows(repo)
        rows = api.status(repo)
    except OrchError as e:
        return _overview_of_broken(repo, e)
    plan, plan_error = _plan(repo)
    would = {}
    for s in plan["steps"]:
        if s["action"] in ("run", "may-run"):
            would.setdefault(s["workflow"], []).append(s["step"])
    out = []
    for wf in wfs:
        mine = [r for r in rows if r["workflow"] == wf["name"]]
        counts: dict[str, int] = {}
        for r in mine:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        last = next(iter(api.history(repo, [wf["name"]], 1)), None)  # one run's tasks
        out.append(
            {
                **wf,
                "rows": mine,
                "counts": dict(sorted(counts.items())),
                "failing": [r["step"] for r in mine if r["status"] in NOT_OK],
                "running": [r["step"] for r in mine if r["status"] in LIVE],
                "last_run": last,
                "would_run": would.get(wf["name"], []),
            }
        )
    system = api.system_status(repo)
    return api.mask(
        repo,
        {
            "workflows": out,
            "plan_error": plan_error,
            "warnings": list(repo.warnings),  # what the CLI prints on stderr (skipped files)
            "breakers": [b for b in api.breakers(repo) if b.get("state") != "closed"],
            "quotas": system["quotas"],
            "running": system["running"],
        },
    )


def _overview_of_broken(repo: api.Repo, e: OrchError) -> dict[str, Any]:
    """The overview while the manifests do not load: each error as the CLI prints it
    (file:line: what to do), and the running tasks, breakers and quotas of the state.
    A page, not a server error: a monitor polling ``/`` sees 200 for what a user wrote."""
    system = api.system_status(repo)
    return api.mask(
        repo,
        {
            "workflows": [],
            "errors": e.lines(),
            "plan_error": None,
            "warnings": list(repo.warnings),
            "breakers": [b for b in system["breakers"] if b.get("state") != "closed"],
            "quotas": system["quotas"],
            "running": system["running"],
        },
    )


def workflow(repo: api.Repo, name: str) -> dict[str, Any]:
    """The DAG laid out and each node's status (the plan comes apart: ``plan``, so the
    picture never waits for the fingerprints)."""
    graph = api.graph_data(repo, name)
    groups = api.step_groups(repo, name)
    rows = api.status(repo, [name])
    status = {r["step"]: r["status"] for r in rows}
    for g, names in groups.items():
        status[g] = group_status([status.get(n, "never-ran") for n in names])
    return api.mask(
        repo, {"name": name, "layout": layout(graph, groups), "statuses": status, "groups": groups}
    )


def plan(repo: api.Repo, name: str) -> dict[str, Any]:
    """What apply would do with each step of workflow ``name``, and why, beside each
    step's recorded status, outputs and last duration."""
    repo.manifests().workflow(name)  # an unknown workflow: OrchError
    rows = api.status(repo, [name])
    data, plan_error = _plan(repo, [name])
    return api.mask(
        repo,
        {
            "name": name,
            "rows": rows,
            "plan": data["steps"],
            "summary": data.get("summary", {}),
            "plan_error": plan_error,
        },
    )


def run(repo: api.Repo, run_id: int) -> dict[str, Any]:
    """The run's tasks as Gantt bars (offsets and widths in percent of the run's span)
    and the slowest path through the steps it ran."""
    r = api.run(repo, run_id)
    now = time.time()
    tasks = r["tasks"]
    t0 = min((t["started"] for t in tasks if t["started"]), default=r["started"])
    t1 = max([r["ended"] or now, *[(t["ended"] or now) for t in tasks if t["started"]]])
    span = max(t1 - t0, 1e-6)
    critical = slowest_path(repo, tasks, now)
    bars = []
    for t in tasks:
        start = t["started"] or t0
        end = t["ended"] or (now if t["status"] in LIVE else start)
        bars.append(
            {
                **t,
                "duration": end - start if t["started"] else None,
                "left": 100 * (start - t0) / span,
                "width": max(100 * (end - start) / span, 0.3),
                "critical": (t["workflow"], t["step"]) in critical,
            }
        )
    return api.mask(repo, {"run": r, "bars": bars, "span": span, "critical": len(critical)})


def slowest_path(repo: api.Repo, tasks: list[dict[str, Any]], now: float) -> set[tuple[str, str]]:
    """The (workflow, step) pairs on the run's slowest chain of dependent steps: the
    longest path through the DAG weighted by each step's time in the run (its attempts,
    first start to last end), as the critical-path method finds it. Steps of a workflow
    that no longer loads are drawn but chained to nothing."""
    first: dict[tuple[str, str], float] = {}
    spent: dict[tuple[str, str], float] = {}
    for t in tasks:
        if t["started"] is not None:
            key = (t["workflow"], t["step"])
            first.setdefault(key, t["started"])
            spent[key] = (t["ended"] or now) - first[key]
    total: dict[tuple[str, str], float] = {}  # the longest chain ending at a step
    prev: dict[tuple[str, str], tuple[str, str] | None] = {}
    for wf in sorted({w for w, _ in spent}):
        try:
            steps = api.graph_data(repo, wf)["steps"]  # in topological order
        except OrchError:
            steps = [{"name": s, "upstream": []} for w, s in spent if w == wf]
        for s in steps:
            key = (wf, s["name"])
            if key not in spent:
                continue
            ups = [(wf, u["step"]) for u in s["upstream"] if (wf, u["step"]) in total]
            best = max(ups, key=total.__getitem__, default=None)
            total[key] = spent[key] + (total[best] if best else 0.0)
            prev[key] = best
    end = max(total, key=total.__getitem__, default=None)
    path = set()
    while end is not None:
        path.add(end)
        end = prev[end]
    return path


def task(repo: api.Repo, task_id: int, page: int | None) -> dict[str, Any]:
    """The task's row and one page of its log (the last page by default), masked."""
    t = api.task(repo, task_id)
    live = t["status"] in LIVE
    text, size, pages, page, end = read_log(repo, t.get("log_path"), page, live)
    return {
        "task": api.mask(repo, t),
        "log": api.mask(repo, text),
        "size": size,
        "end": end,  # where the text shown ends: the live tail goes on from there
        "pages": pages,
        "page": page,
        "live": live,
        "failed": t["status"] in FAILED,
    }


def open_log(repo: api.Repo, rel: str | None) -> BinaryIO | None:
    """The task's log opened for reading, or None for no log: no path, a path outside
    ``.orch/`` (a row naming ``../x`` reads nothing), a file that is gone (opened first, so
    a log deleted since its row was read is no log, not an error), a FIFO or a folder.
    Non-blocking, so a FIFO in the log's place cannot hang the reader."""
    if not rel:
        return None
    base = (repo.root / ".orch").resolve()
    p = (repo.root / rel).resolve()
    if base not in p.parents:
        return None
    try:
        return open_regular(p)
    except OSError:  # gone, a FIFO or a folder, unreadable: no log to show
        return None


def read_part(
    repo: api.Repo, f: BinaryIO, start: int, end: int, size: int, whole_lines: bool = False
) -> tuple[bytes, int]:
    """Bytes ``start`` to ``end`` of the open log ``f`` (of ``size`` bytes), masked, and
    where they end: (masked bytes, end). Reads the secrets' ``overlap`` on each side, so
    a secret the part's edge cuts is masked whole, in the part where it starts
    (``Secrets.mask_span``); never past ``size``. ``whole_lines``: end after the part's
    last newline (a part of ``LOG_PAGE`` bytes with none is kept whole: no stall)."""
    secrets = api.secrets(repo)
    end = min(end, size)
    lo, hi = max(0, start - secrets.overlap), min(size, end + secrets.overlap)
    f.seek(lo)
    window = f.read(hi - lo)
    if whole_lines:
        part = window[start - lo : end - lo]
        cut = part.rfind(b"\n") + 1 or (len(part) if len(part) == LOG_PAGE else 0)
        end = start + cut
    data, stop = secrets.mask_span(window, start - lo, end - lo)
    return data, lo + stop


def read_log(
    repo: api.Repo, rel: str | None, page: int | None, live: bool = False
) -> tuple[str, int, int, int, int]:
    """(text, file size, pages, page shown, where the text ends): page ``page`` (0-based;
    default the last) of ``LOG_PAGE`` bytes, decoded with replacement, masked (a secret
    cut by the page's edge too: ``read_part``). Only the ``size`` bytes there were when
    asked are read; the last page of a ``live`` log ends after its last newline (a line
    still being written may hold half a secret), and a live tail goes on from its end."""
    f = open_log(repo, rel)
    if f is None:
        return "", 0, 1, 0, 0
    with f:
        size = os.fstat(f.fileno()).st_size
        pages = max(1, -(-size // LOG_PAGE))
        page = pages - 1 if page is None else min(max(page, 0), pages - 1)
        whole = live and page == pages - 1
        start = page * LOG_PAGE
        data, end = read_part(repo, f, start, start + LOG_PAGE, size, whole_lines=whole)
    return data.decode("utf-8", "replace"), size, pages, page, end


def history(repo: api.Repo, wf: str | None) -> dict[str, Any]:
    """Runs, newest first (of ``wf`` if given), with their durations for the chart."""
    runs = api.history(repo, [wf] if wf else None, HISTORY_LIMIT)
    now = time.time()
    for r in runs:
        r["duration"] = (r["ended"] or now) - r["started"] if r["started"] else None
    longest = max((r["duration"] or 0 for r in runs), default=0) or 1
    try:
        names = [w["name"] for w in api.workflows(repo)]
    except OrchError:
        names = []
    return api.mask(repo, {"runs": runs, "longest": longest, "workflows": names, "selected": wf})
