"""Find, and end, every process a task started, including the ones that tried to get away.

::

    orch ──> root                 session and group leader (start_new_session=True)
              ├── child           same group: killpg reaches it
              │    └── grandchild ignores SIGTERM: SIGKILL after the grace period
              └── (exited) ──> daemon
                                 called setsid, parent gone, now a child of orch (the
                                 subreaper; of init without one): not in the group,
                                 not in root.children(); the token in its environment
                                 and the task's marker descriptor still tie it to it

A process belongs to the tree if any of these holds:

- it descends from the root by parentage (psutil ``children(recursive=True)``, only
  while the root is alive: when a process exits its children are re-parented);
- its session id is the root's pid (a session survives ``env -i`` and re-parenting;
  only ``setsid`` leaves it);
- its environment carries ``ORCH_TASK_TOKEN=<token>`` (survives ``setsid`` and
  re-parenting; only a process that rebuilds its environment drops it);
- it was seen in an earlier snapshot (``known``) and is still the same process;
- it is a child of ours that is not a task's root (on Linux orch is a child subreaper,
  ``prctl(PR_SET_CHILD_SUBREAPER)``, so an orphan comes back to us instead of init) and it
  holds the task's ``marker``: a descriptor of a file unique to the task that every
  process of the task inherits (survives ``env -i``, ``setsid`` and double forks);
- it is in the task's ``cgroup`` (``runner.execute.cgroups``, where orch may make one),
  which no fork, ``setsid``, ``env -i`` or closed descriptor leaves.

Without a cgroup, a process that does ``setsid`` and ``env -i``, double-forks before it
is sampled and closes every inherited descriptor still escapes; so does one whose
environment we may not read (a set-uid binary). With one, ``kill_tree`` ends with
``cgroup.kill``, which nothing in the cgroup survives.

Every signal goes out while the root is still unreaped, so its pid (which is also the
group and session id) cannot be reused by a stranger; psutil checks the create time of
every other process before signalling it, so a reused pid is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

TOKEN_VAR = "ORCH_TASK_TOKEN"

# A bound on how fast the whole machine can create processes, used to prove that pids
# have not wrapped around since the root started (see _pid_floor).
_MAX_FORKS_PER_SECOND = 1_000_000
_RESERVED_PIDS = 300  # Linux restarts at 300 after wrapping past pid_max
_HAS_PROC = sys.platform.startswith("linux") and os.path.isdir("/proc/self")
_pid_max: int | None = None
_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
_subreaper: bool | None = None
_has_children_file: bool | None = None  # /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)
# The roots of the tasks running now (the executor adds each one under the lock while it
# spawns it, and removes it once reaped): neither swept as an orphan nor reaped by
# reap_orphans, since their runner needs their exit status and rusage.
ROOTS: set[int] = set()
ROOTS_LOCK = threading.Lock()


def new_token() -> str:
    return uuid.uuid4().hex


def tree_processes(
    root_pid: int,
    token: str | None = None,
    known: Iterable[psutil.Process] = (),
    *,
    started: float | None = None,
    marker: str | None = None,
    cgroup: Path | None = None,
) -> list[psutil.Process]:
    """Every live (not zombie) process of the tree, the root included while it runs.

    ``started`` is the ``time.monotonic()`` at which the root was spawned; given, and when
    pids provably have not wrapped since, only pids above the root's are examined, which
    makes the sweep after a short task cost a handful of reads instead of one per process
    on the machine.
    """
    if cgroup is not None and _left_empty(root_pid, cgroup):
        return []
    known = list(known)
    elapsed = None if started is None else time.monotonic() - started
    found = _scan(root_pid, token, _pid_floor(root_pid, elapsed), marker)
    if cgroup is not None:
        from runner.execute.cgroups import members

        found += [p for p in members(cgroup) if p != root_pid and p not in found]
    root_alive = _state(root_pid) not in (None, "Z", "X")
    if not found and not known and not root_alive:
        return []  # the common case after a clean exit: no psutil needed

    import psutil

    procs: dict[int, psutil.Process] = {}
    for p in known:
        if _running(p):
            procs[p.pid] = p
    if root_alive:
        try:
            root = psutil.Process(root_pid)
            procs.setdefault(root_pid, root)
            for child in root.children(recursive=True):
                procs.setdefault(child.pid, child)
        except psutil.Error:
            pass
    for pid in found:
        if pid not in procs:
            with contextlib.suppress(psutil.Error):
                procs[pid] = psutil.Process(pid)
    procs.pop(os.getpid(), None)
    return [p for p in procs.values() if _running(p)]


def _left_empty(root_pid: int, cgroup: Path) -> bool:
    """Whether the root has exited (a zombie) from inside the task's ``cgroup`` and no
    process is left in it: every process the root forked was born in the cgroup and only
    a write to ``cgroup.procs`` takes one out, so nothing of the tree is left. Three
    small reads, the common case after a clean exit; a root that never entered the
    cgroup (the move failed) is swept the long way."""
    if not _HAS_PROC or _state(root_pid) != "Z":
        return False
    lines = _read(f"/proc/{root_pid}/cgroup").splitlines()
    own = next((ln[3:] for ln in lines if ln.startswith(b"0::")), b"")
    if not own.endswith(b"/" + os.fsencode(cgroup.name)):
        return False
    from runner.execute.cgroups import populated

    return not populated(cgroup)


def kill_tree(
    root_pid: int,
    token: str | None,
    grace: float,
    known: Iterable[psutil.Process] = (),
    *,
    started: float | None = None,
    marker: str | None = None,
    cgroup: Path | None = None,
) -> list[int]:
    """End the whole tree; return the pids found in it, the root excepted.

    SIGTERM (then SIGCONT, so a stopped process can act on it) to the group and to every
    process found; rescan while waiting, because a process may fork while it shuts down;
    after ``grace`` seconds SIGKILL to the group and to whatever is left, until nothing
    is. Call it before reaping ``root_pid`` (see the module docstring). A process stuck in
    uninterruptible sleep is given up on after a few seconds of SIGKILL. With a
    ``cgroup``, its members are the tree's too, and ``cgroup.kill`` ends whatever of it
    is left at the end (the root, a zombie until reaped, does not count).
    """
    seen: dict[int, psutil.Process] = {}

    def signal_new(procs: Iterable[psutil.Process], sigs: tuple[int, ...]) -> list[psutil.Process]:
        fresh = [p for p in procs if p.pid not in seen]
        for p in fresh:
            seen[p.pid] = p
            for sig in sigs:
                _signal(p, sig)
        return fresh

    term = (signal.SIGTERM, signal.SIGCONT)

    # Find before signalling the group: what dies of it at once is still reported.
    def find(known: Iterable[psutil.Process] = ()) -> list[psutil.Process]:
        return tree_processes(root_pid, token, known, started=started, marker=marker, cgroup=cgroup)

    signal_new(find(known), term)
    _killpg(root_pid, signal.SIGTERM)
    _killpg(root_pid, signal.SIGCONT)

    deadline = time.monotonic() + max(grace, 0.0)
    next_scan = time.monotonic() + 0.05
    pause = 0.002
    while True:
        alive = [p for p in seen.values() if _running(p)]
        now = time.monotonic()
        if not alive or now >= next_scan:
            found = find()
            alive += signal_new(found, term)
            next_scan = now + 0.1
        if not alive or now >= deadline:
            break
        time.sleep(min(pause, max(deadline - now, 0.0)))
        pause = min(pause * 2, 0.05)

    give_up = time.monotonic() + 3.0
    while True:
        _killpg(root_pid, signal.SIGKILL)
        live = find(list(seen.values()))
        for p in live:
            seen.setdefault(p.pid, p)
            _signal(p, signal.SIGKILL)
        if not live or time.monotonic() >= give_up:
            break
        _wait_gone(live, min(0.2, max(give_up - time.monotonic(), 0.0)))
    if cgroup is not None:
        from runner.execute.cgroups import kill

        kill(cgroup)  # what forked faster than we could signal it
    return sorted(pid for pid in seen if pid != root_pid)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until none of ``procs`` runs. Never psutil's wait(): on our own child it would
    reap it, and the caller still needs the root's exit status and rusage."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while any(_running(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _running(p: psutil.Process) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(p: psutil.Process, sig: int) -> None:
    import psutil

    with contextlib.suppress(psutil.Error):
        p.send_signal(sig)  # psutil refuses if the pid now names another process


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _pid_floor(root_pid: int, elapsed: float | None) -> int:
    """``root_pid`` if every process created since the root has a larger pid, else 0.

    Linux hands out pids in increasing order and wraps at pid_max. No wrap happened if the
    last pid handed out is still >= root_pid and too little time has passed for the whole
    range to have been used up (at an absurd million forks a second).
    """
    global _pid_max
    if elapsed is None or not _HAS_PROC:
        return 0
    try:
        if _pid_max is None:
            with open("/proc/sys/kernel/pid_max", "rb") as f:
                _pid_max = int(f.read())
        with open("/proc/loadavg", "rb") as f:
            last_pid = int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0
    if last_pid >= root_pid and elapsed * _MAX_FORKS_PER_SECOND < _pid_max - _RESERVED_PIDS:
        return root_pid
    return 0


def _scan(root_pid: int, token: str | None, floor: int, marker: str | None = None) -> list[int]:
    """Pids above ``floor`` (other than the root and us) in the root's session, carrying
    the token, or (children of ours) holding the marker file open."""
    if not _HAS_PROC:
        return _scan_psutil(root_pid, token)
    needle = f"\0{TOKEN_VAR}={token}\0".encode() if token else None
    me = os.getpid()
    mine = str(me).encode()
    hits = []
    for pid in _candidates(me):
        if pid <= floor or pid in (root_pid, me):
            continue
        name = str(pid)
        if needle is not None and needle in b"\0" + _read(f"/proc/{name}/environ"):
            hits.append(pid)
            continue
        stat = _read(f"/proc/{name}/stat")
        fields = stat[stat.rfind(b")") + 2 :].split()
        in_session = len(fields) > 3 and fields[3] == str(root_pid).encode()
        if in_session or (marker and len(fields) > 3 and _orphan_of(pid, fields, mine, marker)):
            hits.append(pid)
    return hits


def _candidates(me: int) -> list[int]:
    """The pids a task's process may have: our descendants when we are the subreaper, else
    every pid on the machine.

    As the child subreaper, every process a task forks stays below us: while its parent
    lives it is that parent's child, and when the parent exits it is re-parented to the
    nearest living subreaper above it, which is us or one of our descendants (a nested
    orch). So the sweep reads a few ``children`` files instead of the stat and environment
    of every process on the machine (most of a busy machine's processes are not ours).
    Without ``/proc/PID/task/TID/children`` (a kernel without ``CONFIG_PROC_CHILDREN``),
    every pid."""
    if _subreaper:
        found = _descendants(me)
        if found is not None:
            return found
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _descendants(pid: int) -> list[int] | None:
    """Every descendant of ``pid`` (breadth first, by the ``children`` file of each of
    their threads); None when the kernel does not offer that file."""
    global _has_children_file
    if _has_children_file is None:
        _has_children_file = os.path.exists(f"/proc/{pid}/task/{pid}/children")
    if not _has_children_file:
        return None
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _orphan_of(pid: int, fields: list[bytes], mine: bytes, marker: str) -> bool:
    """Whether ``pid`` is an orphan of the task whose marker file is ``marker``: a child of
    ours, outside our session (so neither a ``subprocess.run`` of ours nor a root being
    forked, which briefly hold every descriptor of ours until they exec), not a task's
    root (``ROOTS``; asked under the lock that spawning holds), holding the marker."""
    if fields[1] != mine or int(fields[3]) == os.getsid(0):
        return False
    with ROOTS_LOCK:
        if pid in ROOTS:
            return False
    return _holds(pid, marker)


def _holds(pid: int, path: str) -> bool:
    """Whether ``pid`` has ``path`` open (it may have been deleted since)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == path or target == f"{path} (deleted)":
            return True
    return False


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux 3.4+): an orphan
    is re-parented to us, not to init, so a task's daemon is still ours to find (see
    ``tree_processes``) and to reap. True if it took effect."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _subreaper = False
    return _subreaper


def reap_orphans() -> list[int]:
    """Reap the children of ours that are zombies, are not a task's root (``ROOTS``: their
    runner reaps them for the exit status) and are not in our own session (so never a
    process that other code of ours, such as ``subprocess.run``, waits for): the orphans
    a subreaper inherits. Call it holding ``ROOTS_LOCK``. Returns their pids."""
    if not _HAS_PROC or not _subreaper or not _zombie_child():
        return []
    keep = set(ROOTS)
    mine = os.getsid(0)
    reaped = []
    for pid in _children(os.getpid()):
        if pid in keep or _state(pid) != "Z":
            continue
        try:
            if os.getsid(pid) == mine:
                continue
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
        except (ChildProcessError, ProcessLookupError, PermissionError):
            continue
    return reaped


def _zombie_child() -> bool:
    """Whether any child of ours is a zombie: one ``waitid`` that reaps nothing
    (``WNOWAIT``), so the scan of every thread's ``children`` file runs only when there
    is something to reap (after most tasks, nothing is: the root is reaped by its runner)."""
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # no child at all
        return False
    except OSError:
        return True  # cannot tell: look


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        out += [int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split()]
    return out


def _scan_psutil(root_pid: int, token: str | None) -> list[int]:
    """The same sweep where there is no /proc (macOS): slower, and only our own user's."""
    import psutil

    me = os.getpid()
    hits = []
    for p in psutil.process_iter():
        if p.pid in (me, root_pid):
            continue
        try:
            if (token and p.environ().get(TOKEN_VAR) == token) or os.getsid(p.pid) == root_pid:
                hits.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return hits


def _state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``Z`` for a zombie), None if there is no such pid."""
    if not _HAS_PROC:
        import psutil

        try:
            return "Z" if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE else "R"
        except psutil.Error:
            return None
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    return stat[stat.rfind(b")") + 2 :][:1].decode()


def _read(path: str) -> bytes:
    """The whole of a /proc file, or b"" when it is gone or not ours to read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            chunks.append(chunk)
            if len(chunk) < 65536:  # procfs fills a read unless it reached the end
                return b"".join(chunks)
    except OSError:
        return b"".join(chunks)
    finally:
        os.close(fd)


def kill_marked(markers: dict[str, str], grace: float = 2.0) -> list[int]:
    """End every process whose environment carries all of ``markers`` (``K=V``).

    For the processes of a runner that was killed outright: they live in sessions of their
    own, so nothing ended them, and a step re-run beside its own orphan would run twice at
    once. SIGTERM, up to ``grace`` seconds, then SIGKILL.
    """
    needles = [f"\0{k}={v}\0".encode() for k, v in markers.items()]
    me = os.getpid()

    def find() -> list[int]:
        hits = []
        if _HAS_PROC:
            for name in os.listdir("/proc"):
                if name.isdigit() and int(name) != me:
                    env = b"\0" + _read(f"/proc/{name}/environ")
                    if all(n in env for n in needles):
                        hits.append(int(name))
            return hits
        import psutil

        for p in psutil.process_iter():
            try:
                env = p.environ()
            except (psutil.Error, OSError):
                continue
            if p.pid != me and all(env.get(k) == v for k, v in markers.items()):
                hits.append(p.pid)
        return hits

    found = [p for p in find() if _state(p) not in (None, "Z")]
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_state(p) not in (None, "Z") for p in found):
        time.sleep(0.02)
    for pid in find():
        if _state(pid) not in (None, "Z"):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return found
