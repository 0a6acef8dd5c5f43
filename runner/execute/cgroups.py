"""Each task in a cgroup of its own, where Linux lets orch make one: no process escapes it.

The sweep in ``proctree`` finds a task's processes by parentage, session, an environment
token and an inherited descriptor; a process that leaves its session, clears its
environment, double-forks and closes every inherited descriptor defeats all four. A
cgroup does not: every process a task's process forks is born in the task's cgroup, and
only writing to a ``cgroup.procs`` file (which needs write access to the cgroup tree)
moves it out. So where orch may create cgroups, each task's root enters a child cgroup of
orch's own before it runs the command, its members count as the task's processes, and
the task ends with ``cgroup.kill`` (Linux 5.14+), which SIGKILLs every member at once,
descendant cgroups included, with no pid to race against.

"Where it may" (``base()``), all of: Linux; orch's own cgroup in the unified (v2)
hierarchy, found through ``/proc/self/cgroup`` (the ``0::`` line) and the ``cgroup2``
mount in ``/proc/self/mountinfo``; that folder writable by orch (root, a container that
delegates its cgroup, a systemd unit with ``Delegate=yes``, a user session's delegated
``user@UID.service``); ``cgroup.kill`` offered; ``$ORCH_CGROUPS`` not ``off``. Elsewhere
(most CI runners, macOS) orch relies on the sweep alone.

The task's cgroup is made with no controllers enabled, so the cgroup v2 rule that a
cgroup with controllers for its children holds no processes of its own never applies.
The root enters it itself, before it runs anything else, rather than through Python's
``preexec_fn``, which may deadlock in a process with threads: a shell script's first
command writes ``$$`` to ``cgroup.procs``; any other argv is started by ``/bin/sh``
(``echo $$ > cgroup.procs; exec "$@"``).

Sources: the kernel's cgroup v2 documentation (Documentation/admin-guide/cgroup-v2.rst:
"Delegation", "No Internal Process Constraint", ``cgroup.kill``, ``cgroup.events``);
systemd's "Control Group APIs and Delegation".
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

PREFIX = "orch-task-"
_SHIM = 'echo $$ > "$0/cgroup.procs" 2>/dev/null; exec "$@"'
_base: Path | None | bool = False  # False: not looked for yet


def base() -> Path | None:
    """The folder of orch's own cgroup v2, if orch may create task cgroups in it (see the
    module docstring); None elsewhere. Looked for once per process."""
    global _base
    if _base is False:
        _base = _find() if os.environ.get("ORCH_CGROUPS", "").lower() != "off" else None
        if _base is not None:
            _remove_stale(_base)
    return _base  # type: ignore[return-value]


def _find() -> Path | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None or own.endswith(" (deleted)"):
        return None
    for m in mounts:
        fields = m.split()
        if " - cgroup2 " not in m or len(fields) < 5:
            continue
        root, point = fields[3], fields[4]
        rel = os.path.relpath(own, root) if root != "/" else own.lstrip("/")
        if rel.startswith(".."):
            continue  # our cgroup is not under this mount's root
        folder = Path(point) / rel
        if (
            (folder / "cgroup.procs").is_file()
            and os.access(folder, os.W_OK)
            and os.access(folder / "cgroup.procs", os.W_OK)
            and _offers_kill(folder)
        ):
            return folder
    return None


def _offers_kill(folder: Path) -> bool:
    """Whether a child cgroup here gets ``cgroup.kill`` (Linux 5.14+): make one, look."""
    probe = folder / f"{PREFIX}{os.getpid()}-probe"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        return (probe / "cgroup.kill").exists()
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


def create(token: str) -> Path | None:
    """A new, empty cgroup for the task ``token``; None where there is none to make."""
    folder = base()
    if folder is None:
        return None
    path = folder / f"{PREFIX}{os.getpid()}-{token}"
    try:
        os.mkdir(path)
    except OSError:
        return None
    return path


def entering(path: Path, argv: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """``argv`` run so that its process first moves itself into ``path``.

    A POSIX shell's script (``sh -e -c SCRIPT``, the form of every ``run`` string) gets
    the move as its first command, on the script's first line so line numbers stay as
    written: one process, no extra ``exec`` (about a millisecond of CPU per task). Any
    other argv goes through ``/bin/sh``, which moves itself and ``exec``s it (same pid);
    a program that cannot be found or run raises ``OSError`` here, as
    ``subprocess.Popen`` would, not an exit status of 126 or 127 from the shell."""
    if _posix_script(argv):
        procs = shlex.quote(os.path.join(path, "cgroup.procs"))
        return [*argv[:-1], f"{{ echo $$ >{procs}; }} 2>/dev/null || :; {argv[-1]}"]
    prog = argv[0]
    if "/" in prog:
        full = prog if os.path.isabs(prog) else os.path.join(cwd, prog)
        if not os.path.isfile(full):
            raise FileNotFoundError(2, "No such file or directory", prog)
        if not os.access(full, os.X_OK):
            raise PermissionError(13, "Permission denied", prog)
    elif shutil.which(prog, path=os.pathsep.join(os.get_exec_path(env))) is None:
        raise FileNotFoundError(2, "No such file or directory", prog)
    return ["/bin/sh", "-c", _SHIM, str(path), *argv]


# shells that read ``{ list; } 2>/dev/null || :;`` as POSIX says (not fish, not a Python)
_POSIX_SHELLS = frozenset({"sh", "dash", "bash", "ksh", "mksh", "zsh", "ash"})


def _posix_script(argv: list[str]) -> bool:
    """``[SHELL, OPTIONS..., "-c", SCRIPT]`` with a POSIX shell and no operands after the
    script (``$0``, ``$1``... stay unset, as without the move), not tracing (``-x``,
    ``-v``, ``-o xtrace``/``verbose``: the move would show in the log)."""
    options = argv[1:-2]
    return (
        len(argv) >= 3
        and argv[-2] == "-c"
        and os.path.basename(argv[0]) in _POSIX_SHELLS
        and not any(c in o for o in options for c in "cxv")
    )


def members(path: Path) -> list[int]:
    """The pids in ``path`` and in every cgroup below it (a nested orch makes some).
    One read when none is left (``populated 0``, the common case after a task's root
    exited: a zombie is no member), a walk otherwise."""
    if not populated(path):
        return []
    pids: list[int] = []
    for folder, _dirs, _files in os.walk(path):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(x) for x in Path(folder, "cgroup.procs").read_text().split()]
    return pids


def kill(path: Path, timeout: float = 5.0) -> bool:
    """SIGKILL every process in ``path`` and below (``cgroup.kill``), wait up to
    ``timeout`` seconds until none is left (``cgroup.events``: ``populated 0``).
    True when it is empty."""
    if not populated(path):
        return True
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        if not populated(path):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def populated(path: Path) -> bool:
    """Whether a live process is in ``path`` or below (``cgroup.events``); False when it
    is gone."""
    try:
        fd = os.open(os.path.join(path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return b"populated 1" in os.read(fd, 4096)
    except OSError:
        return False
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """End whatever is left in ``path`` and remove it (and the cgroups below it).

    ``rmdir`` first: the kernel refuses (EBUSY) a cgroup with a live process or a cgroup
    below it, so an empty one, the common case after a task, goes in one call without
    reading ``cgroup.events``; only a refused one is killed and removed the long way."""
    with contextlib.suppress(OSError):
        os.rmdir(path)
        return
    kill(path)
    with contextlib.suppress(OSError):
        os.rmdir(path)  # no cgroup below it
        return
    for folder, _dirs, _files in sorted(os.walk(path), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _remove_stale(folder: Path) -> None:
    """Remove the empty task cgroups of an orch that is gone (killed before it removed
    them). One with processes is left: they may be a killed runner's orphaned task, which
    holds its step's claim until it exits (``rmdir`` would refuse it anyway)."""
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            owner = entry.name[len(PREFIX) :].split("-", 1)[0]
            if not (entry.name.startswith(PREFIX) and owner.isdigit()):
                continue
            if _alive(int(owner)):
                continue
            with contextlib.suppress(OSError):
                os.rmdir(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
