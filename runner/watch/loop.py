"""``orch watch``: re-plan and apply on every change that could matter, and on nothing else.

    watchdog thread (inotify)                     the caller's thread
    ───────────────────────────                   ──────────────────────────────────────────
    event ──> EventFilter.classify ──> Debouncer ──> take() ──> confirm ──> reload manifests
                │   (by path only: no stat,                      ──> api.apply ──> Cycle line
                │    no hashing, cached per path)                  (stop event: Ctrl-C, --restart)
                └── --restart: a change to a running step's inputs (or its upstream's, or a
                    manifest) sets that cycle's stop event

The filter decides from the path alone, so an idle watch on a big repository costs nothing
and a ``git checkout`` of 500 files costs 500 dictionary look-ups: ``.git/``, ``.orch/``,
editor swap and temp files and the selected workflows' declared outputs (the runner's own
work, so watch never loops on it) are dropped; manifests, the config, and paths some step's
``inputs`` could match are kept. The plan then decides what actually changed, by content.

A change that lands while a cycle runs stays pending and starts the next cycle, so nothing
is lost. An invalid manifest is printed and the watch goes on with what it last knew.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import globs, links, pathmatch
from runner.errors import OrchError
from runner.manifests.load import CONFIG_PATH, Config, _selected, read_config, select_files
from runner.render import shown
from runner.status import NOT_OK, TASK_ENDS, Status
from runner.workspace import NotARepository

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.model import Workflow
    from runner.workspace import Repo

Out = Callable[[str], None]
StepKey = tuple[str, str]

CONFIG = "config"
MANIFEST = "manifest"  # a file the last load read as a manifest
CANDIDATE = "candidate"  # a YAML file the config points at; git decides (at cycle time)
INPUT = "input"

# Folders whose content is never a manifest or an input: git's and orch's own at the root,
# and other version control's anywhere. (Deeper ``.git``, ``.orch`` and ``__pycache__``
# folders are an input's only when a pattern names them: ``runner.pathmatch``.)
ROOT_SKIP = frozenset({".git", pathmatch.STATE_DIR})
SKIP_SEGMENTS = frozenset({".hg", ".svn"})
# Editor swap, backup and temp files: they come and go while a person types.
_TEMP_NAME = re.compile(
    r"""(
        ~$ | \.sw[pox]$ | \.swpx$ | ^\..*\.sw[a-p]$ | ^4913$      # vim
      | ^\.\# | ^\#.*\#$                                          # emacs
      | \.kate-swp$ | ^\.goutputstream- | ___jb_(tmp|old)___$     # kate, gedit, JetBrains
      | ^\.~lock\..*\#$ | \.crdownload$ | \.part$ | \.tmp$ | \.temp$
      | ^\.nfs[0-9a-f]+ | ^\.DS_Store$
    )""",
    re.VERBOSE,
)
MAX_PATH_CACHE = 50_000
# a step that ran no task: its line is apply's "-" line, never the "!!" failure marker
_NOT_RUN = (Status.SKIPPED, Status.CIRCUIT_OPEN, Status.BLOCKED, Status.NOT_STARTED)


def is_temp_name(name: str) -> bool:
    return _TEMP_NAME.search(name) is not None


@dataclass(frozen=True)
class Hit:
    """Why a path matters: its kind, and for inputs the steps whose inputs it may be."""

    kind: str
    steps: frozenset[StepKey] = frozenset()


class EventFilter:
    """Which repo-relative paths can change what the selected workflows would do.

    Built from data only (config, manifests, the selection), so it is tested without a
    file system; ``classify`` is called on the watchdog thread and must stay cheap.
    """

    def __init__(
        self,
        config: Config,
        manifests: Manifests | None = None,
        workflows: Iterable[Workflow] = (),
        env: str | None = None,
        known: Iterable[str] = (),
        link_table: dict[str, str] | None = None,
    ):
        self.config = config
        # {link: target} for symlinks under input folders (runner.links.find): a change at
        # a link's target is a change at every path through the link
        self.links = dict(link_table or {})
        self.known = frozenset(manifests.files if manifests else known)
        self.dags: dict[str, Any] = dict(manifests.dags) if manifests else {}
        # (workflow, step) -> the steps of other workflows that read its output files
        self.readers: dict[StepKey, list[StepKey]] = {}
        if manifests is not None:
            for w in self.dags:
                for s, rs in manifests.across(w)[1].items():
                    self.readers[(w, s)] = rs
        # (pattern, the step's exclusions) -> steps: steps sharing a pattern share a test
        inputs: dict[tuple[str, tuple[str, ...]], set[StepKey]] = {}
        outputs: set[str] = set()
        for wf in workflows:
            params = _params(manifests, wf, env) if manifests else dict(wf.params)
            for step in wf.steps:
                pos, neg = globs.split(step.inputs)
                # an exclusion that cannot be rendered here leaves nothing out (watch more)
                ex = [_resolve(wf, step, x, params, widen=False) for x in neg]
                exclusions = tuple(sorted(x for x in ex if x is not None))
                for p in pos:
                    i = _resolve(wf, step, p, params, widen=True)
                    if i is not None:
                        inputs.setdefault((i, exclusions), set()).add((wf.name, step.name))
                for p in step.outputs:
                    if p.startswith("!"):
                        continue
                    o = _resolve(wf, step, p, params, widen=False)
                    if o is not None:
                        outputs.add(o)
        self.inputs = [
            (pathmatch.compile_pattern(p), ex, frozenset(s))
            for (p, ex), s in sorted(inputs.items())
        ]
        self.outputs = [_output(o) for o in sorted(outputs) if o.rstrip("/")]
        self.manifest_outputs = any(_under(f, o) for o in self.outputs for f in self.known)
        # a file a foreach glob matches, added or removed, adds or drops an instance
        self.fan_globs = [
            pathmatch.compile_pattern(g) for g in (manifests.fan_globs if manifests else ())
        ]
        self._cache: dict[tuple[str, bool], Hit | None] = {}

    def set_links(self, table: dict[str, str]) -> None:
        if table != self.links:
            self.links = dict(table)
            self._cache = {}

    def classify(self, rel: str, is_dir: bool = False) -> Hit | None:
        key = (rel, is_dir)
        if key in self._cache:
            return self._cache[key]
        hit = self._classify(rel, is_dir)
        if len(self._cache) >= MAX_PATH_CACHE:
            self._cache.clear()
        self._cache[key] = hit
        return hit

    def _classify(self, rel: str, is_dir: bool) -> Hit | None:
        if not rel or rel.startswith("../"):
            return None
        if rel == CONFIG_PATH:
            return Hit(CONFIG)
        parts = rel.split("/")
        if parts[0] in ROOT_SKIP or is_temp_name(parts[-1]):
            return None
        if any(s in SKIP_SEGMENTS for s in parts):
            return None
        hidden = any(s in links.SKIP_DIRS for s in parts[:-1])  # no manifest lives there
        if any(_under(rel, o) for o in self.outputs):
            return None  # the runner's own work (or a hand edit the next plan will notice)
        if not hidden and (
            any(f.startswith(rel + "/") for f in self.known) if is_dir else rel in self.known
        ):
            return Hit(MANIFEST)
        if any(pathmatch.matches(g, rel, is_dir) for g in self.fan_globs):
            return Hit(MANIFEST)
        steps: set[StepKey] = set()
        names = links.aliases(rel, self.links) if self.links else [rel]
        for pat, ex, keys in self.inputs:
            for name in names:
                if pathmatch.matches(pat, name, is_dir) and not pathmatch.excluded(name, ex):
                    steps |= keys
                    break
        if (
            not is_dir
            and not hidden
            and rel.endswith((".yaml", ".yml"))
            and _selected(rel, self.config.manifests)
            and not any(globs.match(x, rel) for x in self.config.exclude)
        ):
            return Hit(CANDIDATE, frozenset(steps))
        if steps:
            return Hit(INPUT, frozenset(steps))
        return None

    def affects(self, hit: Hit, running: Iterable[StepKey]) -> bool:
        """Whether a change can alter a running task: its own input, the input of a step
        upstream of it (through ``needs``, templates and files, across workflows too, as
        ``orch apply`` orders them), or any manifest (which may redefine anything)."""
        if hit.kind in (CONFIG, MANIFEST):
            return True
        running = set(running)
        if not running or not hit.steps:
            return False
        return not running.isdisjoint(self._downstream(hit.steps))

    def _downstream(self, steps: Iterable[StepKey]) -> set[StepKey]:
        """``steps`` and every step downstream of them."""
        seen = set(steps)
        todo = list(seen)
        while todo:
            w, s = todo.pop()
            dag = self.dags.get(w)
            nxt = [(w, d) for d in dag.downstream().get(s, ())] if dag is not None else []
            for k in nxt + self.readers.get((w, s), []):
                if k not in seen:
                    seen.add(k)
                    todo.append(k)
        return seen


def _output(o: str) -> str:
    """A declared output as the folder or file whose changes are the runner's own."""
    return globs.literal(o).rstrip("/")


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def _params(m: Manifests, wf: Workflow, env: str | None) -> dict[str, Any]:
    from runner.manifests.checks import base_params

    return base_params(m, wf, env)


def _resolve(wf: Workflow, step: Any, p: str, params: dict[str, Any], widen: bool) -> str | None:
    """A manifest path as a repo-relative pattern, rendered as the reconciler renders it.

    When it cannot be rendered here, an input widens to the folder before the template
    (watch more, the plan decides) and an output is not ignored (never hide a change)."""
    from runner.manifests import paths as pathmod

    if pathmod.templated(p):
        try:
            p = pathmod.render(wf, step, p, params)
        except Exception:
            if not widen:
                return None
            head = p[: min(i for i in (p.find("{{"), p.find("{%")) if i >= 0)]
            p = head.rsplit("/", 1)[0] + "/" if "/" in head else "./"
    try:
        return pathmod.join(wf.base, p)
    except ValueError:
        return None


# -- debouncing ---------------------------------------------------------------------------


@dataclass
class Change:
    path: str
    hit: Hit
    created: bool = False  # the batch's first event for it was a creation


class Debouncer:
    """Collects changes until none has arrived for ``delay`` seconds (or ``max_delay``
    passed since the first), so an editor's temp-file-and-rename save or a ``git
    checkout`` of 500 files is one batch; a burst that never pauses is cut at
    ``max_delay`` and its tail is the next batch."""

    def __init__(
        self,
        delay: float,
        max_delay: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.delay = max(0.0, delay)
        self._max_delay = max_delay
        self.clock = clock
        self._cond = threading.Condition()
        self._pending: dict[str, Change] = {}
        self._first = 0.0
        self._last = 0.0
        self._closed = False

    def add(self, change: Change) -> None:
        with self._cond:
            now = self.clock()
            old = self._pending.get(change.path)
            if old is None:
                self._pending[change.path] = change
                if len(self._pending) == 1:
                    self._first = now
            else:
                steps = old.hit.steps | change.hit.steps
                kind = (
                    old.hit.kind
                    if _RANK[old.hit.kind] >= _RANK[change.hit.kind]
                    else change.hit.kind
                )
                self._pending[change.path] = Change(change.path, Hit(kind, steps), old.created)
            self._last = now
            self._cond.notify_all()

    def due(self) -> float | None:
        """Seconds until the pending batch is due (0: now); None when nothing is pending."""
        with self._cond:
            if not self._pending:
                return None
            cap = self._max_delay if self._max_delay is not None else max(2.0, 20 * self.delay)
            at = min(self._last + self.delay, self._first + cap)
            return max(0.0, at - self.clock())

    def take(self) -> dict[str, Change] | None:
        """Block until a batch is due and return it; None once closed."""
        with self._cond:
            while not self._closed:
                wait = self.due()
                if wait == 0.0:
                    batch, self._pending = self._pending, {}
                    return batch
                self._cond.wait(wait)
            return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


_RANK = {CANDIDATE: 0, INPUT: 1, MANIFEST: 2, CONFIG: 3}


# -- cycles -------------------------------------------------------------------------------


@dataclass
class WatchOptions:
    workflows: list[str] = field(default_factory=list)
    project: str | None = None
    env: str | None = None
    since: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # --param KEY=VALUE
    jobs: int = 0
    restart: bool = False
    debounce: float | None = None  # None: the config's (default 0.1 s)
    # -q: only failures and each cycle's summary line (no task output, no ``>`` start
    # lines, no ``ok`` lines), as ``orch apply -q``
    quiet: bool = False
    # where tasks run, as apply's --executor / --dask-address (None: the config's, else
    # local); each cycle connects to the cluster; with no address one LocalCluster serves
    # the session
    executor_kind: str | None = None
    dask_address: str | None = None
    # --events: every progress event of every cycle (``ApplyOptions.report``'s), then a
    # ``cycle-finished`` event per cycle with its result or errors
    events: Callable[[dict[str, Any]], None] | None = None
    # None: the kernel's notifications (inotify, FSEvents, kqueue...); seconds: watchdog's
    # PollingObserver, which stats the tree that often (network and container file
    # systems, where no notification comes)
    poll: float | None = None


@dataclass
class Cycle:
    """One reconcile: what set it off, and what it did. ``summary()`` is the parseable line."""

    number: int
    changed: list[str]  # repo-relative; empty for the start-up cycle
    result: Any = None  # runner.reconcile.results.ApplyResult, None when loading failed
    errors: list[str] = field(default_factory=list)  # an OrchError's lines
    restart_for: str | None = None  # the path that ended this cycle early (--restart)
    duration: float = 0.0

    def count(self, *statuses: str) -> int:
        if self.result is None:
            return 0
        return sum(1 for r in self.result.results if r.status in statuses)

    @property
    def ran(self) -> int:
        return self.count(*TASK_ENDS)

    @property
    def failed(self) -> int:
        return self.count(Status.FAILED, Status.TIMED_OUT, Status.CANCELLED)

    def summary(self) -> str:
        what = "start" if not self.changed else "changed " + _files(self.changed)
        line = f"watch: cycle {self.number}: {what} -> {self.ran} ran, {self.failed} failed"
        extra = []
        for status in (Status.INTERRUPTED, Status.BLOCKED):
            n = self.count(status)
            if n:
                extra.append(f"{n} {status}")
        if extra:
            line += ", " + ", ".join(extra)
        if self.errors:
            n = len(self.errors)
            line += f"; not applied: {n} error{'s' if n != 1 else ''} (fix and save to retry)"
        if self.restart_for:
            line += f"; restarting: {shown(self.restart_for)} changed"
        return line + f" ({self.duration:.2f}s)"


def _files(paths: list[str], limit: int = 3) -> str:
    """The first ``limit`` paths, shown() (a file name is repository text), and a count."""
    more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
    return ", ".join(shown(p) for p in paths[:limit]) + more


class Watcher:
    """The watch loop. ``run()`` blocks in the caller's thread until ``stop`` is set.

    ``out`` receives every line watch prints (cycle summaries, failures, errors, and
    unless ``quiet`` task output and the start and success lines), possibly from worker
    threads.
    """

    def __init__(
        self,
        repo: Repo,
        opts: WatchOptions,
        stop: threading.Event,
        out: Out,
        on_cycle: Callable[[Cycle], None] | None = None,
    ):
        self.repo = repo
        self.opts = opts
        self.stop = stop
        self.out = out
        self.on_cycle = on_cycle
        self.cycles = 0
        config, _ = read_config(repo.root)
        self.filter = EventFilter(config)
        self.debouncer = Debouncer(self._debounce(config))
        self._lock = threading.Lock()
        self._running: set[StepKey] = set()
        self._cycle_stop: threading.Event | None = None
        self._restart_for: str | None = None
        self._done = threading.Event()
        # with dask and no scheduler address: one LocalCluster for the session, started by
        # the first cycle that runs something, closed when watch ends (execute.dask)
        self._kept: Any = None
        self._loaded: Manifests | None = None  # what the filter was built from

    def _debounce(self, config: Config) -> float:
        return self.opts.debounce if self.opts.debounce is not None else config.debounce

    # -- the watchdog side (its own thread) ----------------------------------------------
    def on_path(self, abs_path: str, is_dir: bool, created: bool) -> None:
        try:
            rel = Path(abs_path).relative_to(self.repo.root).as_posix()
        except ValueError:
            return
        hit = self.filter.classify(rel, is_dir)
        if hit is None:
            return
        self.debouncer.add(Change(rel, hit, created))
        if self.opts.restart:
            with self._lock:
                stop, running = self._cycle_stop, set(self._running)
            if stop is not None and not stop.is_set() and self.filter.affects(hit, running):
                with self._lock:
                    self._restart_for = rel
                stop.set()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        """Reconcile once, then once per batch of changes; returns the number of cycles."""
        observer = self._start_observer()
        forwarder = threading.Thread(target=self._forward_stop, name="orch-watch-stop", daemon=True)
        forwarder.start()
        try:
            names = ", ".join(self.opts.workflows) or "all workflows"
            self.out(
                f"watch: watching {shown(str(self.repo.root))} ({shown(names)}; debounce "
                f"{self.debouncer.delay:g}s"
                + (f"; polling every {self.opts.poll:g}s" if self.opts.poll is not None else "")
                + "); Ctrl-C to stop"
            )
            self._cycle({}, first=True)
            while not self.stop.is_set():
                batch = self.debouncer.take()
                if batch is None:
                    break
                changes = self._confirm(batch)
                if changes and not self.stop.is_set():
                    self._cycle(changes)
        finally:
            self._done.set()
            self.debouncer.close()
            observer.stop()
            observer.join()
            if self._kept is not None:
                self._kept.shutdown()
        self.out(f"watch: stopped after {self.cycles} cycle{'s' if self.cycles != 1 else ''}")
        return self.cycles

    def _session_executor(self, m: Manifests, options: Any) -> Any:
        """The executor kept for the session: a Dask one with no scheduler address, so
        its LocalCluster serves every cycle instead of starting anew each time; None
        (each apply chooses its own) otherwise."""
        from runner.reconcile.flow import executor_choice

        kind, address = executor_choice(m, options)
        if kind != "dask" or address:
            return None
        conf = m.config.executor or {}
        if self._kept is None:
            from runner.execute.dask import DaskExecutor

            jobs = options.jobs or os.cpu_count() or 2
            self._kept = DaskExecutor(None, workers=jobs, keep_cluster=True)
        self._kept.path_map = dict(conf.get("path_map") or {})
        return self._kept

    def _forward_stop(self) -> None:
        """Turn the caller's stop event into a wake-up of the loop and of a running apply."""
        while not self.stop.wait(1.0):
            if self._done.is_set():
                return
        with self._lock:
            if self._cycle_stop is not None:
                self._cycle_stop.set()
        self.debouncer.close()

    def _start_observer(self) -> Any:
        from watchdog.events import (
            DirDeletedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        # watchdog warns when a new folder's watch is added twice (its own creation event
        # and its parent's walk both add it); harmless, and not the user's business
        warnings.filterwarnings(
            "ignore", r"Callback with id .* already exists", RuntimeWarning, r"watchdog\."
        )
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                src = os.fsdecode(event.src_path)
                dest = os.fsdecode(event.dest_path) if event.dest_path else ""
                created = event.event_type == "created"
                if src:
                    watcher.on_path(src, event.is_directory, created)
                if dest:
                    watcher.on_path(dest, event.is_directory, False)

        if self.opts.poll is not None:
            from watchdog.observers.polling import PollingObserver

            observer: Any = PollingObserver(timeout=self.opts.poll)
        else:
            observer = Observer()
        try:
            observer.schedule(
                Handler(),
                str(self.repo.root),
                recursive=True,
                # no opened/closed events: hashing inputs must not look like a change; no
                # folder creations: a new folder's files report themselves (watchdog walks
                # it), and an empty one changes no hash
                event_filter=[
                    FileCreatedEvent,
                    FileModifiedEvent,
                    FileDeletedEvent,
                    FileMovedEvent,
                    DirDeletedEvent,
                    DirMovedEvent,
                ],
            )
            observer.start()
        except OSError as e:
            raise OrchError(
                f"cannot watch {self.repo.root}: {e.strerror or e}"
                + (
                    " (the inotify limit is reached: raise fs.inotify.max_user_watches"
                    " or fs.inotify.max_user_instances with sysctl)"
                    if e.errno in (28, 24)  # ENOSPC, EMFILE
                    else ""
                )
            ) from None
        return observer

    def _confirm(self, batch: dict[str, Change]) -> dict[str, Change]:
        """The batch minus what only seemed to change: files created and gone again within
        it (temp files of a save), and YAML files git does not show (ignored) nor any
        step reads."""
        root = self.repo.root
        keep: dict[str, Change] = {}
        for path, c in batch.items():
            if c.created and not os.path.lexists(root / path):
                continue
            keep[path] = c
        candidates = [p for p, c in keep.items() if c.hit.kind == CANDIDATE]
        if candidates:
            from runner.manifests.sources import list_manifest_files

            try:
                listed = set(select_files(list_manifest_files(root), self.filter.config))
            except OSError:
                listed = set(candidates)
            for p in candidates:
                if p not in listed and not keep[p].hit.steps:
                    del keep[p]
        return dict(sorted(keep.items()))

    def _cycle(self, changes: dict[str, Change], first: bool = False) -> None:
        from runner import api
        from runner.reconcile.results import ApplyOptions
        from runner.reconcile.selection import select_workflows

        self.cycles += 1
        cycle = Cycle(self.cycles, list(changes))
        t0 = time.monotonic()
        config = self.filter.config
        # only inputs changed: the manifests cannot have, so skip re-listing them with git
        # (unless a step declares a manifest as its output: those events are not reported)
        reload = (
            first
            or self._loaded is None
            or self.filter.manifest_outputs
            or any(c.hit.kind != INPUT for c in changes.values())
        )
        if reload:
            self.repo.reload()
            config, _ = read_config(self.repo.root)
            self.debouncer.delay = self._debounce(config)
        try:
            m = self.repo.manifests()
        except OrchError as e:
            if first and isinstance(e, NotARepository):
                raise  # nothing here to watch: say so and stop, as plan does
            # keep watching the manifests (a fix starts the next cycle); input edits can
            # wait, as the plan after the fix sees them by content anyway
            self._loaded = None
            self.filter = EventFilter(config, known=self._manifest_files(config))
            self._failed(cycle, e, t0)
            return
        try:
            wfs = select_workflows(m, list(self.opts.workflows), self.opts.project)
        except OrchError as e:
            if first:
                raise  # a wrong workflow or project name on the command line
            self._loaded = None
            self.filter = EventFilter(config, known=m.files)
            self._failed(cycle, e, t0)
            return
        if m is not self._loaded:
            self._loaded = m
            self.filter = EventFilter(config, m, wfs, self.opts.env)
        self.filter.set_links(self._links(self.filter))
        stop = threading.Event()
        with self._lock:
            self._running.clear()
            self._cycle_stop = stop
            self._restart_for = None
        if self.stop.is_set():
            stop.set()
        options = ApplyOptions(
            jobs=self.opts.jobs or config.jobs or 0,
            echo=None if self.opts.quiet else self.out,
            report=self._report,
            argv=["watch", *self.opts.workflows],
            stop=stop,
            executor_kind=self.opts.executor_kind,
            dask_address=self.opts.dask_address,
        )
        options = options._replace(executor=self._session_executor(m, options))
        try:
            cycle.result = api.apply(
                self.repo,
                list(self.opts.workflows),
                project=self.opts.project,
                env=self.opts.env,
                since=self.opts.since,
                options=options,
                params=self.opts.params,
            )
        except OrchError as e:
            if first and not e.diagnostics:
                raise  # --env or --since that cannot work, a state file to repair
            self._failed(cycle, e, t0)
            return
        finally:
            with self._lock:
                self._cycle_stop = None
                self._running.clear()
        if stop.is_set() and not self.stop.is_set():
            cycle.restart_for = self._restart_for
        self._finish(cycle, t0)

    def _failed(self, cycle: Cycle, e: OrchError, t0: float) -> None:
        cycle.errors = e.lines()
        for line in cycle.errors:
            self.out(shown(line))
        self._finish(cycle, t0)

    def _links(self, f: EventFilter) -> dict[str, str]:
        """The symlinks under the input folders, found anew each cycle (a link made since
        is a change the cycle itself saw); one that leaves the repository is the plan's
        error to report, and adds nothing here."""
        try:
            return links.find(str(self.repo.root), {pat.root for pat, _, _ in f.inputs})
        except links.LinkEscape:
            return {}

    def _manifest_files(self, config: Config) -> tuple[str, ...]:
        from runner.manifests.sources import list_manifest_files

        try:
            return tuple(select_files(list_manifest_files(self.repo.root), config))
        except OSError:
            return self.filter.known

    def _finish(self, cycle: Cycle, t0: float) -> None:
        cycle.duration = time.monotonic() - t0
        self.out(cycle.summary())
        if self.on_cycle is not None:
            self.on_cycle(cycle)

    def _report(self, ev: dict[str, Any]) -> None:
        if ev["event"] == "warning":
            self.out(f"watch: warning: {ev['message']}")
            return
        if self.opts.events is not None:
            self.opts.events(ev)
        if ev["event"] not in ("started", "finished"):
            return  # run, plan and task events: for --events only
        key = (ev["workflow"], ev["step"])
        if ev["event"] == "started":
            with self._lock:
                self._running.add(key)
            if not self.opts.quiet:
                why = "; ".join(ev["reasons"]) or "upstream changed"
                self.out(shown(f"> {key[0]}/{key[1]} ({why})"))
            return
        with self._lock:
            self._running.discard(key)
        st = ev["status"]
        if st == "up-to-date":
            return
        name = f"{key[0]}/{key[1]}"
        if st == "succeeded":
            if not self.opts.quiet:
                self.out(f"ok {shown(name)} {ev['duration']:.2f}s")
            return
        if st == "restored":  # from the result cache, not run
            if not self.opts.quiet:
                self.out(f"restored {shown(name)} {ev['duration']:.2f}s (from the cache)")
            return
        if st in _NOT_RUN:  # apply's "-" line: a skip is not a failure; -q keeps blocked
            if not self.opts.quiet or st in NOT_OK:
                why = "; ".join(ev.get("reasons") or []) or ev.get("message") or ""
                self.out(shown(f"- {name}: {st.replace('_', ' ')} ({why})"))
            return
        bits = [st.replace("_", " ")]
        if ev.get("exit_code") is not None:
            bits.append(f"exit {ev['exit_code']}")
        msg = f"!! {name}: {', '.join(bits)}"
        detail = ev.get("message") or "; ".join(ev.get("reasons") or [])
        if detail:
            msg += f": {detail}"
        if ev.get("log"):
            msg += f" (log: {ev['log']})"
        self.out(shown(msg))


def watch(
    repo: Repo,
    opts: WatchOptions,
    stop: threading.Event,
    out: Out,
    on_cycle: Callable[[Cycle], None] | None = None,
) -> int:
    """Watch ``repo`` until ``stop`` is set (by a signal handler, the MCP server, a test);
    returns the number of cycles run."""
    return Watcher(repo, opts, stop, out, on_cycle).run()


__all__ = [
    "Change",
    "Cycle",
    "Debouncer",
    "EventFilter",
    "Hit",
    "WatchOptions",
    "Watcher",
    "is_temp_name",
    "watch",
]
