"""Run one task as a subprocess and keep its whole process tree under control.

The scheduler calls ``run_task`` from a worker thread, many at once; it blocks until the
task has ended and everything it started is gone::

    spawn (own session, ORCH_OUTPUT + ORCH_TASK_TOKEN in env)
      │
      ├─ wait: poll() on a pidfd (exit), a self-pipe (cancel) and, when streaming, the
      │        output pipe; wakes only for those, the timeout and the next sample
      ├─ exit ──────────────> sweep leftovers (a step must not leave background processes)
      └─ timeout / cancel ──> proctree.kill_tree: SIGTERM, grace, SIGKILL, whole tree
      │
    reap (os.wait4: exit status + rusage) ─> drain output ─> parse $ORCH_OUTPUT ─> footer

Output goes straight from the child to the log file unless someone needs to see it on
the way (``echo``) or it must be masked; then it passes through a pipe we read. Secrets
(every secret of the run, in every encoded form ``runner.masking`` knows) are masked in
the stream, so they never touch the disk, not even for a moment; so are the outputs the
task reports and the reason its ``$ORCH_OUTPUT`` was rejected.

Metrics are best effort. ``cpu_time`` is the rusage of the root from ``os.wait4``, which
includes every descendant that was waited for by its parent, plus the last cpu times of
the descendants still alive when the task ended (the leftovers we killed). A descendant
that was orphaned and exited between two samples is missed; one reaped by its parent
while we were ending the tree may be counted twice. ``peak_rss`` is the larger of the
peak summed RSS of the tree seen by sampling and the ``ru_maxrss`` of the root (which
covers tasks shorter than one sampling interval).
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import stat
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from runner.execute import cgroups, proctree
from runner.execute.api import (  # noqa: F401 - re-exported for callers of run_task
    CANCEL_STATUSES,
    STATUSES,
    Cancel,
    TaskResult,
    TaskSpec,
)
from runner.execute.outputs import OutputError, read_outputs
from runner.masking import StreamMasker as Masker  # noqa: F401 - the tests' name for it

if TYPE_CHECKING:
    import resource

    import psutil

TAIL_LINES = 20
_CHUNK = 65536
_ECHO_LINE_MAX = 65536
_DRAIN_TIMEOUT = 1.0
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes there, KiB here


def run_task(spec: TaskSpec, cancel: Cancel | None = None) -> TaskResult:
    """Run ``spec`` to the end (or to its timeout or cancel) and report what happened.

    Never leaves a process of the task running, whatever happens: if ``echo`` raises (or
    anything else does), the tree is killed and reaped before the exception propagates.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
    try:
        log_fd = os.open(spec.log_path, flags, 0o644)
    except FileNotFoundError:  # the run's first log in this folder
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(spec.log_path, flags, 0o644)
    try:
        return _Run(spec, cancel or Cancel(), log_fd).run()
    finally:
        os.close(log_fd)


class LocalExecutor:
    """The ``Executor`` that runs each task as a process tree on this machine.

    On Linux the first task makes orch the child subreaper of everything it starts, so a
    task's daemon (double fork, ``setsid``, ``env -i``) is re-parented to orch, found by
    the task's marker and ended with the task, and its zombie reaped by orch."""

    def run(self, spec: TaskSpec, cancel: Cancel) -> TaskResult:
        proctree.become_subreaper()
        return run_task(spec, cancel)


def command_argv(command: str | list[str], shell: tuple[str, ...] | None = None) -> list[str]:
    """A ``run`` string goes to the shell (default ``/bin/sh -e``: the first failing
    command ends the script) as ``-c SCRIPT``; a list is the argv itself."""
    if isinstance(command, str):
        from runner.model import DEFAULT_SHELL

        return [*(shell or DEFAULT_SHELL), "-c", command]
    if not command:
        raise ValueError("empty command")
    return list(command)


class _Run:
    """One execution of one spec; the state of run_task, split into steps."""

    def __init__(self, spec: TaskSpec, cancel: Cancel, log_fd: int):
        self.spec = spec
        self.cancel = cancel
        self.log_fd = log_fd
        self.masker = Masker(spec.mask)  # every form of every secret of the run
        self.argv = command_argv(spec.command, spec.shell)
        self.notes: list[str] = []
        self.echo_line = b""
        self.echo = spec.echo
        self.cgroup: Path | None = None  # the task's own cgroup, where orch may make one

    def run(self) -> TaskResult:
        started = time.time()
        self.t0 = time.monotonic()
        self.header_end = self._write_header(started)
        requested = self.cancel.requested
        if requested:
            self.notes.append(f"{requested} before it started")
            return self._finish(requested, None, started, pid=None)
        # The output file doubles as the task's marker: every process of the task inherits
        # a descriptor of it, by which an orphan that cleared its environment and left
        # the session is still known as the task's (see proctree.tree_processes). Named
        # after the task's token (random, 128 bits), created exclusively, as mkstemp does.
        token = proctree.new_token()
        out_path = os.path.join(_temp_dir(), f"orch-output-{token}.txt")
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        self.marker_fd = os.open(out_path, flags, 0o600)
        self.marker = out_path
        try:
            return self._spawn_and_wait(started, out_path, token)
        finally:
            os.close(self.marker_fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out_path)

    def _spawn_and_wait(self, started: float, out_path: str, token: str) -> TaskResult:
        """Start the root, see the tree to its end, and say how it went."""
        env = {**self.spec.env, self.spec.output_var: out_path, proctree.TOKEN_VAR: token}
        streaming = bool(self.spec.echo) or bool(self.masker)
        pipe_r, pipe_w = os.pipe() if streaming else (None, None)
        if pipe_r is not None:
            os.set_blocking(pipe_r, False)
        try:
            proc = self._spawn(env, pipe_w)
        except (OSError, ValueError) as e:  # no such program or cwd; a NUL in argv or env
            if pipe_r is not None:
                os.close(pipe_r)
            self.notes.append(f"could not start: {e}")
            return self._finish("failed", None, started, pid=None)
        finally:
            if pipe_w is not None:
                os.close(pipe_w)
        own_peak = _own_peak_rss()
        reason, sampler, extra_cpu, swept, code, rusage = self._supervise(proc, pipe_r, token)
        if streaming:
            self._emit(self.masker.flush())
            if self.echo and self.echo_line:
                self._echo_lines([self.echo_line])
        cpu = extra_cpu
        peak = sampler.peak
        if rusage is not None:
            cpu += rusage.ru_utime + rusage.ru_stime
            child_peak = rusage.ru_maxrss * _MAXRSS_UNIT
            if child_peak > own_peak:  # else it may be only ours, inherited (see _own_peak_rss)
                peak = max(peak, child_peak)
        if reason is not None:
            status, code = reason, None
        else:
            status = "succeeded" if code == 0 else "failed"
        outputs, output_error = {}, None
        if status == "succeeded":
            outputs, output_error = self._outputs(out_path)
            if output_error is not None:
                status = "failed"
        return self._finish(
            status,
            code,
            started,
            pid=proc.pid,
            cpu=cpu,
            peak=peak,
            outputs=outputs,
            output_error=output_error,
            swept=swept,
        )

    def _spawn(self, env: dict[str, str], pipe_w: int | None) -> subprocess.Popen[bytes]:
        """Start the root in a session (and, where orch may make one, a cgroup) of its
        own, listed in ``proctree.ROOTS`` before any sweep or reaper may see it. Raises
        what ``Popen`` raises, having removed the cgroup."""
        spec = self.spec
        self.cgroup = cgroups.create(env[proctree.TOKEN_VAR])  # None where orch may not
        try:
            with proctree.ROOTS_LOCK:
                argv = self.argv
                if self.cgroup is not None:
                    argv = cgroups.entering(self.cgroup, argv, env, spec.cwd)
                proc = subprocess.Popen(
                    argv,
                    cwd=spec.cwd,
                    env=env,
                    stdin=_devnull(),
                    stdout=pipe_w if pipe_w is not None else self.log_fd,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(*spec.inherit_fds, self.marker_fd),
                )
                proctree.ROOTS.add(proc.pid)
        except BaseException:
            if self.cgroup is not None:
                cgroups.remove(self.cgroup)
                self.cgroup = None
            raise
        return proc

    def _supervise(
        self, proc: subprocess.Popen[bytes], pipe_r: int | None, token: str
    ) -> tuple[str | None, _Sampler, float, list[int], int | None, resource.struct_rusage | None]:
        """Wait for the root (or stop the tree), sweep, reap and drain the output. Never
        leaves a process of the task behind, whatever raises. Returns the stop reason
        (None: it exited), the sampler, the extra CPU seconds and swept pids of
        ``_end_tree``, and the exit code and rusage of ``_reap``."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.cancel._attach(wake_w)
        reaped = False
        try:
            reason, sampler = self._wait(proc.pid, pipe_r, wake_r)
            extra_cpu, swept = self._end_tree(proc.pid, token, reason, sampler)
            code, rusage = _reap(proc)
            reaped = True
            if pipe_r is not None:
                self._drain(pipe_r)
        finally:
            self.cancel._detach(wake_w)
            os.close(wake_r)
            os.close(wake_w)
            if pipe_r is not None:
                os.close(pipe_r)
            if not reaped:  # something above raised: leave nothing behind
                proctree.kill_tree(
                    proc.pid, token, 0.0, started=self.t0, marker=self.marker, cgroup=self.cgroup
                )
                _reap(proc)
            if self.cgroup is not None:
                cgroups.remove(self.cgroup)
            with proctree.ROOTS_LOCK:
                proctree.ROOTS.discard(proc.pid)
                proctree.reap_orphans()
        return reason, sampler, extra_cpu, swept, code, rusage

    def _outputs(self, out_path: str) -> tuple[dict[str, str], str | None]:
        """The outputs a succeeded task wrote to ``$ORCH_OUTPUT``, masked, or the reason
        they were rejected (the step then fails)."""
        try:
            outputs = {} if _left_empty(out_path) else read_outputs(Path(out_path))
        except OutputError as e:
            why = self.masker.mask_text(str(e))  # it may quote the secret
            self.notes.append(f"$ORCH_OUTPUT rejected, the step fails: {why}")
            return {}, f"$ORCH_OUTPUT {why}"  # the step's message: name the file
        # an output holding a secret is stored, and shown to later steps, masked
        mask = self.masker.mask_text
        return {mask(k): mask(v) for k, v in outputs.items()}, None

    def _wait(self, pid: int, pipe_r: int | None, wake_r: int) -> tuple[str | None, _Sampler]:
        """Block until the root exits (None) or must be stopped (the status to record)."""
        spec = self.spec
        sampler = _Sampler(pid)
        pidfd = _pidfd(pid)
        poller = select.poll()
        for fd in (pidfd, pipe_r, wake_r):
            if fd is not None:
                poller.register(fd, select.POLLIN)
        interval = max(spec.sample_interval, 0.01)
        deadline = None if spec.timeout is None else self.t0 + spec.timeout
        next_sample = self.t0 + interval
        try:
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    seconds = spec.timeout or 0.0
                    self.notes.append(f"timed out after {_secs(seconds)}; ended the process tree")
                    return "timed_out", sampler
                wait = next_sample - now
                if deadline is not None:
                    wait = min(wait, deadline - now)
                if pidfd is None:
                    wait = min(wait, 0.02)  # no pidfd: we have to look
                exited = False
                for fd, _ in poller.poll(max(wait, 0.0) * 1000 + 0.5):
                    if fd == pidfd:
                        exited = True
                    elif fd == wake_r:
                        _drain_fd(wake_r)
                    elif fd == pipe_r and not self._read(pipe_r):
                        poller.unregister(pipe_r)  # EOF; the root may still run
                if exited or (pidfd is None and _has_exited(pid)):
                    return None, sampler
                requested = self.cancel.requested
                if requested:
                    self.notes.append(f"{requested}; ended the process tree")
                    return requested, sampler
                if time.monotonic() >= next_sample:
                    sampler.sample()
                    next_sample = time.monotonic() + interval
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def _end_tree(
        self, pid: int, token: str, reason: str | None, sampler: _Sampler
    ) -> tuple[float, list[int]]:
        """Stop the tree (timeout/cancel) or sweep what the exited root left behind.

        Returns the cpu seconds of the processes found (not in the root's rusage) and,
        after a normal exit, the leftover pids that had to be killed.
        """
        procs = proctree.tree_processes(
            pid,
            token,
            sampler.known.values(),
            started=self.t0,
            marker=self.marker,
            cgroup=self.cgroup,
        )
        others = [p for p in procs if p.pid != pid]
        extra = _cpu_seconds(others)
        if reason is not None:
            proctree.kill_tree(
                pid,
                token,
                self.spec.grace,
                procs,
                started=self.t0,
                marker=self.marker,
                cgroup=self.cgroup,
            )
            return extra, []
        if not others:
            return extra, []
        names = {p.pid: _name(p) for p in others}
        swept = proctree.kill_tree(
            pid,
            token,
            self.spec.grace,
            others,
            started=self.t0,
            marker=self.marker,
            cgroup=self.cgroup,
        )
        listed = ", ".join(f"{p} ({names[p]})" if p in names else str(p) for p in swept)
        self.notes.append(
            f"the step left {len(swept)} background process(es) running; killed: {listed}"
        )
        return extra, swept

    def _read(self, fd: int) -> bool:
        """Move one chunk from the output pipe to the log; False at end of file."""
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        if chunk:
            self._emit(self.masker.feed(chunk))
        return bool(chunk)

    def _drain(self, fd: int) -> None:
        """Read the output pipe to its end; give up if something outside the tree holds it."""
        os.set_blocking(fd, False)
        deadline = time.monotonic() + _DRAIN_TIMEOUT
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.notes.append(
                    "stopped reading output: a process outside the task's tree keeps it open"
                )
                return
            if poller.poll(remaining * 1000) and not self._read(fd):
                return

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        _write_all(self.log_fd, data)
        if self.echo:
            lines = (self.echo_line + data).split(b"\n")
            self.echo_line = lines.pop()
            if len(self.echo_line) > _ECHO_LINE_MAX:
                lines.append(self.echo_line)
                self.echo_line = b""
            self._echo_lines(lines)

    def _echo_lines(self, lines: list[bytes]) -> None:
        assert self.echo is not None
        for line in lines:
            self.echo(line.removesuffix(b"\r").decode("utf-8", "replace"))

    def _write_header(self, started: float) -> int:
        command = self.spec.command
        shown = command if isinstance(command, str) else shlex.join(command)
        shown = self.masker.mask_text(shown).replace("\n", "\n#   ")
        when = datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds")
        env = self.spec.env
        # on a cluster worker (execute.dask sets both): say which, as the docs promise
        where = f" on {env['ORCH_WORKER']}" if env.get("ORCH_EXECUTOR") == "dask" else ""
        text = f"# orch: {self.spec.key} started {when}{where}: {shown}\n"
        header = text.encode("utf-8", "surrogateescape")  # env values keep their bytes
        _write_all(self.log_fd, header)
        return len(header)

    def _finish(
        self,
        status: str,
        code: int | None,
        started: float,
        *,
        pid: int | None,
        cpu: float = 0.0,
        peak: int = 0,
        outputs: dict[str, str] | None = None,
        output_error: str | None = None,
        swept: list[int] | None = None,
    ) -> TaskResult:
        """Write orch's notes and the footer; build the result."""
        _ensure_newline(self.log_fd)
        for note in self.notes:
            _write_all(self.log_fd, f"# orch: {self.masker.mask_text(note)}\n".encode())
        tail = _tail(self.log_fd, self.header_end)
        seconds = time.monotonic() - self.t0
        ended = time.time()
        outcome = f"exit {code}" if code is not None else status
        _write_all(self.log_fd, f"# orch: {outcome} after {_secs(seconds)}\n".encode())
        return TaskResult(
            status=status,
            exit_code=code,
            started=started,
            ended=ended,
            cpu_time=cpu,
            peak_rss=peak,
            outputs=outputs or {},
            output_error=output_error,
            log_tail=tail,
            pid=pid,
            swept=swept or [],
        )


class _Sampler:
    """Samples the tree for the peak summed RSS and remembers every descendant it saw,
    so the final sweep still finds them after their parent has gone."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self.known: dict[int, psutil.Process] = {}
        self._root: psutil.Process | None = None

    def sample(self) -> None:
        import psutil

        try:
            if self._root is None:
                self._root = psutil.Process(self.pid)
            procs = {self.pid: self._root}
            for child in self._root.children(recursive=True):
                procs.setdefault(child.pid, child)
        except psutil.Error:
            return
        for pid, p in list(self.known.items()):
            procs.setdefault(pid, p)
        total = 0
        for pid, p in procs.items():
            try:
                total += p.memory_info().rss
            except psutil.Error:
                self.known.pop(pid, None)
                continue
            if pid != self.pid:
                self.known[pid] = p
        self.peak = max(self.peak, total)


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    if not procs:  # the common case (a task that left nothing): psutil is never imported
        return 0.0
    import psutil

    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _name(p: psutil.Process) -> str:
    import psutil

    try:
        return p.name()
    except psutil.Error:
        return "?"


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int | None, resource.struct_rusage | None]:
    """Exit code and rusage of the root; tells Popen, so it never waits on the pid again
    (it might belong to another task's child by then)."""
    try:
        _, status, rusage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.returncode = proc.returncode if proc.returncode is not None else -1
        return None, None
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    return code, rusage


def _own_peak_rss() -> int:
    """Our own peak RSS, read just after spawning.

    The kernel carries the high-water RSS of the address space a child was forked from
    across ``exec`` into the child's ``ru_maxrss``, so a ``true`` started by a 200 MB
    orch reports 200 MB. A child's ``ru_maxrss`` above our own peak at spawn time is its
    own; one at or below it cannot be told apart, and sampling has to speak instead.
    """
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


_null: int | None = None


def _devnull() -> int:
    """A descriptor of ``/dev/null`` for every task's stdin, opened once per process
    (``subprocess.DEVNULL`` opens and closes one per ``Popen``). Close-on-exec: only the
    child's ``dup2`` onto its stdin keeps it. Two threads racing here open two, and one
    stays open until exit: harmless."""
    global _null
    if _null is None:
        _null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _null


_temp: str | None = None


def _temp_dir() -> str:
    """The temporary folder (``tempfile.gettempdir``: ``$TMPDIR``, then /tmp...) with
    its symlinks resolved, so the marker's name is what ``/proc/PID/fd`` links show."""
    global _temp
    if _temp is None:
        _temp = os.path.realpath(tempfile.gettempdir())
    return _temp


def _left_empty(path: str) -> bool:
    """Whether the step left its output file as orch made it: a plain file (not replaced
    by a link, FIFO or device), empty. Most steps write no outputs; one ``lstat`` then
    spares the open, ``fstat``, read and close of ``read_outputs`` (it still judges
    every other case). A regular file in the temporary folder is never a ``/proc`` file
    that claims size 0 while it has content: those cannot be hard-linked there."""
    try:
        st = os.lstat(path)
    except OSError:
        return False  # read_outputs says what it means (missing: no outputs)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits, without reaping it (Linux)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _has_exited(pid: int) -> bool:
    """Whether the child has exited, leaving it unreaped (where there is no pidfd)."""
    if hasattr(os, "waitid"):
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            return os.waitid(os.P_PID, pid, flags) is not None
        except ChildProcessError:
            return True
    return proctree._state(pid) in (None, "Z")


def _drain_fd(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ensure_newline(fd: int) -> None:
    """Start orch's notes on a line of their own even if the output did not end one."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        _write_all(fd, b"\n")


def _tail(fd: int, start: int, lines: int = TAIL_LINES) -> list[str]:
    size = os.fstat(fd).st_size
    begin = max(start, size - 64 * 1024)
    text = os.pread(fd, size - begin, begin).decode("utf-8", "replace")
    found = text.splitlines()
    if begin > start and found:
        found = found[1:]  # the read began mid-line
    return found[-lines:]


def _secs(seconds: float) -> str:
    return f"{seconds:.2f}s"
