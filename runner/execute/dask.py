"""The Dask executor: each task runs on a worker of a Dask distributed cluster.

    orch process                         scheduler            worker process
    ────────────                         ─────────            ──────────────
    open(): connect (or start a LocalCluster), check resources and the shared repository
    run(spec) ── client.submit(_run_on_worker, payload, resources=...) ──► run_task(spec')
       ◄── log_event(topic, start) ── the worker's address ─────────────────────────┤
       ◄── log_event(topic, line) ── output lines, masked, streamed as they come ──┤
       ◄── log_event(topic, end) ── the TaskResult, after the last line ───────────┘
    cancel ── client.run(_cancel_on_worker, id) ──► that task's Cancel: tree ended
    close(): close the client (and the LocalCluster orch started)

Only task execution moves: planning, quotas, state and recording stay in the orch
process. On the worker the task runs through ``execute.local.run_task``, so it gets the
same discipline as on this machine (own session, tree sweep on timeout and cancel,
masking, ``$ORCH_OUTPUT``, CPU/RSS sampling). Workers read and write the repository (and
the log under ``.orch/logs``) through a shared file system, as in Snakemake's cluster
execution; ``open`` checks that every worker sees it at the same commit.

``distributed`` is imported only here and only when a task is about to run (``open``),
never on the no-op path: it is an optional extra (``pip install 'orch-gitops[dask]'``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from runner.errors import OrchError
from runner.execute.api import Cancel, TaskResult, TaskSpec

# Resources every machine has: orch's quotas count them; they restrict placement only
# when some worker declares them (``dask worker --resources cpu=8``).
HOST_RESOURCES = ("cpu", "memory")
CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler
END_WAIT = 2.0  # seconds to wait for the last streamed lines of a finished task
INSTALL_HINT = "install the extra: pip install 'orch-gitops[dask]'"
WHERE = "--dask-address / ORCH_DASK_ADDRESS / executor.address in .orch/config.yaml"


class DaskExecutor:
    """Runs each task on a worker of a Dask cluster; ``address=None`` starts a local one.

    ``open(root, needs)`` must be called before ``run`` and ``close()`` after the run;
    ``needs`` maps each task key ("workflow/step") that may run to its ``resources``.
    ``path_map`` maps a path prefix here to the same folder's path on the workers.
    ``workers`` is the size of a LocalCluster orch starts (one thread per worker).
    ``keep_cluster``: ``close()`` keeps that LocalCluster for the next ``open()`` (``orch
    watch``: one cluster for the session); ``shutdown()`` closes it.
    """

    # tasks run on the workers: the orch machine is not the ceiling of cpu/memory requests
    runs_here = False

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int = 2,
        path_map: Mapping[str, str] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        keep_cluster: bool = False,
    ) -> None:
        self.address = address
        self.keep_cluster = keep_cluster
        self.n_workers = max(1, workers)
        self.path_map = dict(path_map or {})
        self.connect_timeout = connect_timeout
        self._client: Any = None
        self._cluster: Any = None
        self._topic = f"orch-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._echoes: dict[str, Callable[[str], None]] = {}
        self._started: dict[str, str] = {}  # task id -> worker address
        self._began: dict[str, float] = {}  # task id -> when it was submitted, then started
        self._ended: dict[str, threading.Event] = {}  # set by the task's "end" event
        self._results: dict[str, dict[str, Any]] = {}  # the TaskResult the "end" event carried
        self._wakes: dict[str, threading.Event] = {}  # set by the end event or the future
        self._inflight: set[Any] = set()  # futures held until done (a release cancels)
        # set once the scheduler is gone mid-run: the run ends interrupted (api.Executor)
        self.lost: str | None = None
        # said once at the start of the run (flow.apply): a scheduler set up against orch
        self.warnings: list[str] = []

    # -- session -----------------------------------------------------------------------

    def open(self, root: Path, needs: Mapping[str, Mapping[str, float]]) -> None:
        """Connect, then refuse (``OrchError``, one line per problem) a cluster that cannot
        run these tasks: a resource no worker offers, a worker that does not see the
        repository at the same path (after ``path_map``) and commit."""
        if self.lost:  # a kept cluster whose scheduler went away: start afresh
            self.shutdown()
            self.lost = None
        if self.address:
            self._client = _connect(self.address, self.connect_timeout, WHERE)
        elif self._cluster is not None:  # kept from the last apply (keep_cluster)
            self._client = _import_distributed().Client(self._cluster, set_as_default=False)
        else:
            distributed = _import_distributed()
            _quiet_client_logs()
            self._start_local_cluster(distributed)
        try:
            self._client.subscribe_topic(self._topic, self._on_event)
            self.warnings = self._check_scheduler()
            without, problems = self._check_orch()
            problems = self._check_resources(needs) + problems + self._check_workers(root, without)
            if problems:
                raise ClusterError(problems)
        except BaseException:
            self.close()
            raise

    def _start_local_cluster(self, distributed: Any) -> None:
        import dask

        # A task lost with its worker is one failed attempt for orch's retry policy, not
        # something Dask re-runs behind orch's back (distributed.scheduler.allowed-failures).
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            self._cluster = distributed.LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # its HTTP server (metrics) on a free loopback port: no warning when 8787 is taken
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                memory_limit=0,  # the worker only waits on the task's processes
                silence_logs=40,  # logging.ERROR
            )
        self._client = distributed.Client(self._cluster, set_as_default=False)

    def close(self) -> None:
        """Close the client and the LocalCluster orch started (unless ``keep_cluster``);
        safe to call twice."""
        client, cluster = self._client, self._cluster
        self._client = None
        if self.keep_cluster and not self.lost:
            cluster = None  # for the next open(); shutdown() closes it
        else:
            self._cluster = None
        if client is not None and cluster is None and not self.lost:
            # a standing scheduler keeps every topic's last events (up to its
            # admin.low-level-log-length): drop this run's, its lines and results
            with contextlib.suppress(Exception):
                client.run_on_scheduler(_forget_topic, self._topic)
        if client is not None:
            with contextlib.suppress(Exception):  # closing a half-dead connection
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()

    def shutdown(self) -> None:
        """Close the client and the LocalCluster orch started, kept or not."""
        self.keep_cluster = False
        self.close()

    def workers(self) -> dict[str, dict[str, Any]]:
        """address -> {"resources": {...}, "nthreads": N, "host": ...} of connected workers."""
        info = self._client.scheduler_info(n_workers=-1) if self._client else {}
        return {
            addr: {
                "resources": dict(w.get("resources") or {}),
                "nthreads": w.get("nthreads"),
                "host": w.get("host"),
            }
            for addr, w in (info.get("workers") or {}).items()
        }

    def _check_resources(self, needs: Mapping[str, Mapping[str, float]]) -> list[str]:
        workers = self.workers()
        offered: dict[str, float] = {}
        for w in workers.values():
            for name, amount in w["resources"].items():
                offered[name] = max(offered.get(name, 0.0), float(amount))
        problems = []
        for key, resources in needs.items():
            for name, amount in sorted(self._restrictions(resources).items()):
                if offered.get(name, 0.0) < amount:
                    have = f"at most {offered[name]:g}" if name in offered else "none"
                    how = f"start a worker with --resources {name}={amount:g}"
                    if self.address is None:  # orch's own LocalCluster declares none
                        how = (
                            "the LocalCluster orch starts offers no resources: "
                            f"{how} and pass its scheduler with --dask-address"
                        )
                    problems.append(
                        f"step '{key}' requests {name}={amount:g} but no Dask worker offers it "
                        f"({have}); {how}"
                    )
        return problems

    def _restrictions(self, resources: Mapping[str, float]) -> dict[str, float]:
        """The Dask resource restrictions of a step: all but host resources no worker has."""
        declared = self._declared
        return {
            k: float(v)
            for k, v in resources.items()
            if v and (k not in HOST_RESOURCES or k in declared)
        }

    @property
    def _declared(self) -> set[str]:
        with self._lock:
            cached = getattr(self, "_declared_cache", None)
        if cached is None:
            cached = {n for w in self.workers().values() for n in w["resources"]}
            with self._lock:
                self._declared_cache = cached
        return cached

    def _check_scheduler(self) -> list[str]:
        """A standing scheduler whose ``allowed-failures`` is not 0 re-runs a task lost
        with its worker by itself (Dask's default: 3 times) before orch hears of it: the
        first attempt's log is overwritten and orch's retry policy is bypassed. Said, not
        refused: the run still works. The LocalCluster orch starts is set up with 0."""
        if self.address is None:
            return []
        try:
            allowed = self._client.run_on_scheduler(_by_value(_ALLOWED_FAILURES, "allowed"))
        except Exception:  # noqa: BLE001 - only a warning: a scheduler that cannot say
            return []
        if not isinstance(allowed, int) or allowed == 0:
            return []
        return [
            f"the Dask scheduler at {self.address} re-runs a task lost with its worker "
            f"{allowed} time(s) by itself (distributed.scheduler.allowed-failures: {allowed}): "
            "the lost attempt's log is overwritten and the step's retry: policy is bypassed; "
            "start the scheduler with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0"
        ]

    def _check_orch(self) -> tuple[set[str], list[str]]:
        """The workers without orch (they cannot unpickle a task) or with another version
        of it, and one line for each. Asked with a function sent by value (``_ORCH_PROBE``),
        so a worker without orch can answer."""
        from runner import __version__

        answers = self._client.run(_by_value(_ORCH_PROBE, "orch_version"), on_error="return")
        without, problems = set(), []
        for addr, theirs in sorted(answers.items()):
            if theirs == __version__:
                continue
            without.add(addr)
            if not isinstance(theirs, str):
                problems.append(
                    f"worker {addr} does not have orch installed (install orch-gitops=="
                    f"{__version__} in the environment the worker runs in)"
                )
            else:
                problems.append(
                    f"worker {addr} has orch {theirs}, this is orch {__version__} (install "
                    f"orch-gitops=={__version__} in the environment the worker runs in)"
                )
        return without, problems

    def _check_workers(self, root: Path, skip: Collection[str] = ()) -> list[str]:
        """The shared-file-system rule: every worker sees ``root`` (mapped) at our commit
        (but those in ``skip``, which cannot run orch's code)."""
        here = _git_head(root)
        there_root = self._map(root)
        ask = [a for a in self.workers() if a not in skip]
        if not ask:
            return []
        answers = self._client.run(_worker_view, str(there_root), workers=ask)
        problems = []
        for addr, (exists, commit) in sorted(answers.items()):
            if not exists:
                problems.append(
                    f"worker {addr} does not see the repository at {there_root} "
                    "(share it at the same path, or map it with executor.path_map in "
                    ".orch/config.yaml)"
                )
            elif here and commit is None:
                problems.append(
                    f"worker {addr} sees {there_root} but it is not a git checkout (share "
                    "this checkout there, or fix executor.path_map in .orch/config.yaml)"
                )
            elif here and commit != here:
                problems.append(
                    f"worker {addr} sees the repository at commit {commit[:12]}, "
                    f"this checkout is at {here[:12]} (the workers must share this checkout)"
                )
        return problems

    def _map(self, path: Path) -> Path:
        text = str(path)
        for src, dst in sorted(self.path_map.items(), key=lambda kv: -len(kv[0])):
            src = src.rstrip("/")
            if text == src or text.startswith(src + "/"):
                return Path(dst.rstrip("/") + text[len(src) :])
        return path

    # -- one task ----------------------------------------------------------------------

    def run(self, spec: TaskSpec, cancel: Cancel) -> TaskResult:
        """Submit ``spec`` to a worker and wait for its ``TaskResult``."""
        if self._client is None:
            raise RuntimeError("DaskExecutor.run before open()")
        if self.lost:  # nowhere to run it: recorded interrupted, started nowhere
            return self._not_started(spec, self.lost)
        if cancel.requested:  # nothing to place: the local executor writes the same log
            from runner.execute.local import run_task

            return run_task(spec, cancel)
        tid = uuid.uuid4().hex
        ended, wake = threading.Event(), threading.Event()
        with self._lock:
            self._ended[tid] = ended
            self._wakes[tid] = wake
            if spec.echo is not None:
                self._echoes[tid] = spec.echo
        try:
            return self._run(spec, cancel, tid, ended, wake)
        finally:
            with self._lock:
                self._echoes.pop(tid, None)
                self._ended.pop(tid, None)
                self._wakes.pop(tid, None)
                self._results.pop(tid, None)
                self._started.pop(tid, None)
                self._began.pop(tid, None)

    def _run(
        self,
        spec: TaskSpec,
        cancel: Cancel,
        tid: str,
        ended: threading.Event,
        wake: threading.Event,
    ) -> TaskResult:
        """Submit, then wait for the task's "end" event (it carries the result: no gather
        round trip through the scheduler) or for its future to end (an error, a lost
        worker or scheduler), polling for a cancel and for where it started."""
        payload = {
            "id": tid,
            "topic": self._topic,
            "echo": spec.echo is not None,
            # the step's claim stays with this orch process: descriptors do not travel
            "spec": dataclasses.replace(
                spec,
                cwd=self._map(spec.cwd),
                log_path=self._map(spec.log_path),
                echo=None,
                placed=None,
                inherit_fds=(),
            ),
        }
        import time

        with self._lock:
            self._began[tid] = time.time()
        fut = self._client.submit(
            _run_on_worker,
            payload,
            key=f"orch-{spec.key}-{tid}",
            pure=False,
            resources=self._restrictions(spec.resources) or None,
        )
        done = threading.Event()
        with self._lock:
            self._inflight.add(fut)

        def on_done(f: Any) -> None:
            done.set()
            wake.set()
            with self._lock:
                self._inflight.discard(f)

        fut.add_done_callback(on_done)
        placed = spec.placed
        while not wake.wait(0.05):
            if cancel.requested:
                return self._cancel(spec, cancel, tid, fut, done)
            if placed is not None:
                with self._lock:
                    worker = self._started.get(tid)
                if worker is not None:
                    placed(worker)  # here, not in Dask's event loop: it writes the state
                    placed = None
        return self._outcome(spec, tid, fut, ended)

    def _cancel(
        self, spec: TaskSpec, cancel: Cancel, tid: str, fut: Any, done: threading.Event
    ) -> TaskResult:
        """End the remote tree (or keep the task from starting) and report the request."""
        status = cancel.requested or "cancelled"
        with contextlib.suppress(Exception):  # a worker gone: its tree went with it
            self._client.run(_cancel_on_worker, tid, status)
        with self._lock:
            started = tid in self._started
        if started and done.wait(spec.grace + 10.0):
            return self._outcome(spec, tid, fut, None)
        fut.cancel()
        from runner.execute.local import run_task

        return run_task(spec, cancel)  # not started: writes the log, starts nothing

    def _outcome(
        self, spec: TaskSpec, tid: str, fut: Any, ended: threading.Event | None
    ) -> TaskResult:
        with self._lock:
            carried = self._results.pop(tid, None)
        if carried is not None:
            return TaskResult(**carried)
        try:
            res: TaskResult = fut.result()
        except Exception as e:  # noqa: BLE001 - the worker died, or orch failed on it
            if self._scheduler_gone(e):
                return self._interrupted(spec, tid)
            return self._lost(spec, tid, e)
        if ended is not None:
            ended.wait(END_WAIT)  # the last streamed lines come before the task returns
        return res

    def _scheduler_gone(self, error: BaseException) -> bool:
        """Whether ``error`` means the connection to the scheduler is gone (Dask cancels
        every future of a client that lost it, reason "scheduler-connection-lost"), not
        only this task's worker."""
        if getattr(error, "reason", None) == "scheduler-connection-lost":
            return True
        client = self._client
        return client is not None and client.status in ("connecting", "closing", "closed")

    def _interrupted(self, spec: TaskSpec, tid: str) -> TaskResult:
        """A task in flight when the scheduler went away: interrupted, not failed (it is
        not retried; the next apply runs it again). Its worker, left without a scheduler,
        closes and ends the task's tree (``_EndTasksOnClose``)."""
        with self._lock:
            worker = self._started.get(tid)
            if self.lost is None:
                self.lost = (
                    f"lost the Dask scheduler at {self.address or 'the local cluster'} "
                    "mid-run; the tasks in flight are recorded interrupted and the next "
                    "apply runs them again"
                )
        message = f"scheduler lost: {self.address or 'local cluster'}"
        return self._ended_here(spec, tid, "interrupted", message, worker)

    def _ended_here(
        self, spec: TaskSpec, tid: str, status: str, message: str, worker: str | None
    ) -> TaskResult:
        """A task that ended without a result from its worker (the worker or the scheduler
        was lost): the note in its log, and its real start time kept."""
        import time

        now = time.time()
        _append_note(spec.log_path, message)
        return TaskResult(
            status=status,
            exit_code=None,
            started=self._began.get(tid, now),
            ended=now,
            cpu_time=0.0,
            peak_rss=0,
            outputs={},
            output_error=message,
            log_tail=[f"# orch: {message}"],
            pid=None,
            worker=worker,
        )

    def _not_started(self, spec: TaskSpec, why: str) -> TaskResult:
        from runner.execute.local import run_task

        cancel = Cancel()
        cancel.cancel("interrupted")
        res = run_task(spec, cancel)  # writes the log, starts nothing
        res.output_error = why
        return res

    def _lost(self, spec: TaskSpec, tid: str, error: BaseException) -> TaskResult:
        from distributed import KilledWorker

        with self._lock:
            worker = self._started.get(tid)
        if isinstance(error, KilledWorker):
            worker = worker or getattr(getattr(error, "last_worker", None), "address", None)
            message = f"worker lost: {worker or 'unknown'}"
        else:
            message = f"failed on the worker: {type(error).__name__}: {error}"
        return self._ended_here(spec, tid, "failed", message, worker)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Events from workers (runs in the client's event loop thread)."""
        msg = event[1]
        tid = msg.get("id")
        with self._lock:
            if msg.get("kind") == "start":
                self._started[tid] = msg["worker"]
                if tid in self._began:
                    self._began[tid] = event[0]
                return
            if msg.get("kind") == "end":
                if msg.get("result") is not None and tid in self._wakes:
                    self._results[tid] = msg["result"]
                for events in (self._ended, self._wakes):
                    ev = events.get(tid)
                    if ev is not None:
                        ev.set()
                return
            echo = self._echoes.get(tid)
        if echo is not None:
            echo(msg["line"])


def cluster_workers(address: str, timeout: float = CONNECT_TIMEOUT) -> list[dict[str, Any]]:
    """The workers connected to the scheduler at ``address``, sorted by address: each
    {"address", "name", "host", "nthreads", "memory_limit" (bytes, 0 = none),
    "resources" (name -> amount)}. Raises ``OrchError`` (one line) when the scheduler
    cannot be reached or ``distributed`` is not installed. For ``orch system status``."""
    client = _connect(address, timeout)
    try:
        info = client.scheduler_info(n_workers=-1)
    finally:
        with contextlib.suppress(Exception):
            client.close()
    return [
        {
            "address": addr,
            "name": str(w.get("name", "")),
            "host": w.get("host"),
            "nthreads": w.get("nthreads"),
            "memory_limit": w.get("memory_limit") or 0,
            "resources": dict(w.get("resources") or {}),
        }
        for addr, w in sorted((info.get("workers") or {}).items())
    ]


def _forget_topic(topic: str, dask_scheduler: Any = None) -> None:
    """On the scheduler: drop an ended run's events (Dask has no public call for it; a
    missing attribute in another Dask version leaves them, as before)."""
    broker = getattr(dask_scheduler, "_broker", None)
    topics = getattr(broker, "_topics", None)
    if isinstance(topics, dict):
        topics.pop(topic, None)


def _quiet_client_logs() -> None:
    """Dask's client logs its reconnection attempts (tracebacks) when the scheduler goes
    away; orch says that itself, in one line."""
    import logging

    # Dask's logging config gives some of its loggers levels of their own
    names = [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


# -- on the worker ---------------------------------------------------------------------

_REMOTE_LOCK = threading.Lock()
_REMOTE_CANCELS: dict[str, Cancel] = {}
_REMOTE_CANCELLED: dict[str, str] = {}  # requests that came before their task started
_REMOTE_DONE: dict[str, threading.Event] = {}
CLOSE_WAIT = 30.0  # seconds a closing worker waits for the trees it ends


class _EndTasksOnClose:
    """A worker plugin (Dask calls ``teardown`` when the worker closes): a worker that
    closes -- its scheduler lost, or told to -- ends the trees of the tasks it still runs
    (status interrupted) before its process goes, so no task outlives its worker. A worker
    killed outright (SIGKILL, the node lost) cannot; its tasks' trees are then orphans on
    that machine."""

    name = "orch-end-tasks-on-close"

    def teardown(self, worker: Any) -> None:
        with _REMOTE_LOCK:
            running = [(c, _REMOTE_DONE[t]) for t, c in _REMOTE_CANCELS.items()]
        for cancel, _ in running:
            cancel.cancel("interrupted")
        import time

        deadline = time.monotonic() + CLOSE_WAIT
        for _, done in running:
            done.wait(max(0.0, deadline - time.monotonic()))


def _run_on_worker(payload: dict[str, Any]) -> TaskResult:
    """Run one task on this worker with the local executor's discipline."""
    from distributed import get_worker

    from runner.execute.local import run_task

    worker = get_worker()
    tid, topic = payload["id"], payload["topic"]
    spec: TaskSpec = payload["spec"]
    spec.env = {**spec.env, "ORCH_EXECUTOR": "dask", "ORCH_WORKER": worker.address}
    if payload["echo"]:
        spec.echo = lambda line: worker.log_event(topic, {"id": tid, "line": line})
    cancel = Cancel()
    with _REMOTE_LOCK:
        worker.plugins.setdefault(_EndTasksOnClose.name, _EndTasksOnClose())
        _REMOTE_CANCELS[tid] = cancel
        _REMOTE_DONE[tid] = threading.Event()
        early = _REMOTE_CANCELLED.pop(tid, None)
    if early:
        cancel.cancel(early)
    worker.log_event(topic, {"id": tid, "kind": "start", "worker": worker.address})
    carried = None
    try:
        res = run_task(spec, cancel)
        res.worker = worker.address
        carried = dataclasses.asdict(res)  # plain data: it travels as an event
    finally:
        with _REMOTE_LOCK:
            _REMOTE_CANCELS.pop(tid, None)
            _REMOTE_DONE.pop(tid).set()
        worker.log_event(topic, {"id": tid, "kind": "end", "result": carried})
    return res


# Sent by value (``_by_value``), so a worker without orch answers None instead of failing
# to unpickle a reference to runner.
_ORCH_PROBE = """
def orch_version():
    try:
        import runner
    except ImportError:
        return None
    return getattr(runner, "__version__", "unknown")
"""


# On the scheduler (which need not have orch): its allowed-failures, None if unknown.
_ALLOWED_FAILURES = """
def allowed(dask_scheduler=None):
    return getattr(dask_scheduler, "allowed_failures", None)
"""


def _by_value(source: str, name: str) -> Callable[..., Any]:
    """The function ``name`` defined by ``source`` in a module of its own that is not
    importable, so that cloudpickle sends its code, not a reference to orch."""
    ns: dict[str, Any] = {"__name__": "orch_probe"}
    exec(source, ns)  # noqa: S102 - our own constant text
    fn: Callable[..., Any] = ns[name]
    return fn


def _cancel_on_worker(tid: str, status: str) -> None:
    with _REMOTE_LOCK:
        cancel = _REMOTE_CANCELS.get(tid)
        if cancel is None:
            _REMOTE_CANCELLED[tid] = status
    if cancel is not None:
        cancel.cancel(status)


def _worker_view(root: str) -> tuple[bool, str | None]:
    """Whether this worker sees ``root`` and at which commit."""
    path = Path(root)
    return path.is_dir(), (_git_head(path) if path.is_dir() else None)


# The address schemes Dask's comms speak (``distributed.comm.registry``), less ``inproc``
# (one process only: another process cannot reach it). A bare HOST:PORT is tcp.
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot be a Dask scheduler's address (None: it can be). Checked
    before anything connects, so a typo (``http://...``) is one line, not a Dask error."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in SCHEMES:
        return (
            f"'{address}' is not a Dask scheduler address: Dask speaks "
            + ", ".join(f"{x}://" for x in SCHEMES)
            + " (e.g. tcp://HOST:8786)"
        )
    if not rest or "/" in rest.rstrip("/") or any(c.isspace() for c in rest):
        return f"'{address}' is not a Dask scheduler address (e.g. tcp://HOST:8786)"
    return None


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise OrchError(
            f"the dask executor needs the 'distributed' package ({INSTALL_HINT})"
        ) from e
    return distributed


def _connect(address: str, timeout: float, where: str = "") -> Any:
    """A ``distributed.Client`` on the scheduler at ``address``, or ``OrchError`` (one
    line, naming ``where`` the address came from) within about ``timeout`` seconds: a refused port at once, a
    listener that never answers or answers another protocol (an HTTP port, say) once
    the handshake has had ``timeout`` seconds. Dask's own connect waits for the
    handshake without a time limit, and a ``Client`` that fails half-built waits 20 s more
    in its ``__del__`` and prints a traceback: so the handshake is tried here first."""
    fix = f"; start it, or fix {where}" if where else ""
    bad = address_problem(address)
    if bad:
        raise OrchError(bad + (f"; fix {where}" if where else ""))
    refused = _probe(address, timeout)  # at once, before importing distributed (seconds)
    if refused:
        raise OrchError(f"cannot reach the Dask scheduler at {address} ({refused}){fix}")
    distributed = _import_distributed()
    _quiet_client_logs()
    why = _handshake(address, timeout)
    if why:
        raise OrchError(f"cannot reach the Dask scheduler at {address} ({why}){fix}")
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError):
        raise OrchError(f"cannot reach the Dask scheduler at {address} (no answer){fix}") from None


def _handshake(address: str, timeout: float) -> str | None:
    """Why the scheduler at ``address`` does not answer Dask's handshake and ``identity``
    call within ``timeout`` seconds (None: it does, as a scheduler). Runs in a thread of
    its own with its own event loop, so it never touches the loop a Client uses."""
    import asyncio

    from distributed.comm import connect
    from distributed.security import Security

    async def identity() -> Any:
        args = Security().get_connection_args("client")
        comm = await connect(address, timeout=timeout, **args)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    answer: list[Any] = []

    def ask() -> None:
        try:
            answer.append(asyncio.run(asyncio.wait_for(identity(), timeout)))
        except (asyncio.TimeoutError, TimeoutError):
            answer.append(f"no answer after {timeout:g} s")
        except Exception:  # noqa: BLE001 - garbage from another protocol: MemoryError...
            answer.append("it does not answer as a Dask scheduler; is this its port?")

    t = threading.Thread(target=ask, name="orch-dask-handshake", daemon=True)
    t.start()
    t.join(timeout + 5.0)
    if not answer:
        return f"no answer after {timeout:g} s"
    reply = answer[0]
    if isinstance(reply, str):
        return reply
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        return "it does not answer as a Dask scheduler; is this its port?"
    return None


def _probe(address: str, timeout: float) -> str | None:
    """Why a TCP/TLS scheduler address cannot be reached (None: it can, or it is another
    protocol). One connect, so a refused port is an error at once, not after Dask's
    retries until its connect timeout."""
    import socket

    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp", "tls"):
        return None
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return "not an address of the form tcp://HOST:PORT"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        return e.strerror or "no answer"
    return None


def _git_head(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _append_note(log_path: Path, note: str) -> None:
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(f"# orch: {note}\n")
    except OSError:
        pass


class ClusterError(OrchError):
    """The cluster cannot run this apply: one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = problems

    def lines(self) -> list[str]:
        return list(self.problems)
