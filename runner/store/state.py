"""The recorded state: ``.orch/state.db`` (SQLite, WAL) and the kernel locks beside it.

What is stored (schema version in ``PRAGMA user_version``; ``MIGRATIONS`` upgrades it)::

    steps       current state per (workflow, step, env): fingerprint and its parts,
                output values and output-file hashes, status, last task
    runs        one row per orch apply: when, commit, dirty tree, owner pid
    tasks       one row per attempt: status, reason, exit code, log, metrics, the
                cluster worker it ran on (NULL: this machine)
    file_hashes the stat-keyed content-hash cache (as git's index)
    breakers    circuit-breaker state shared by all runners
    allocations resources held by running tasks, per runner, for quotas across processes
    events      internal happenings (breaker trials, reaped runs)
    audit       one row per state-changing command: who, where, what, how it ended
                (``runner.store.audit``; appended only, pruned by age and count)

Writes use ``BEGIN IMMEDIATE`` and one transaction per finished task (or per group of tasks
that finished together, ``State.batch``), committed before their dependants start, so a
killed runner loses only the tasks in flight. Step claims and runner liveness are POSIX byte-range locks
on ``.orch/locks`` (one byte per step key / per run id): the kernel drops them when their
holder dies, so there is never a stale PID file to clean up.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from runner.errors import LockBusy, StateError
from runner.masking import Secrets

SCHEMA_VERSION = 5
# the oldest version a read-only open accepts: 5 only added ``audit``, which a read verb
# other than ``orch audit`` never touches (and that one reads a missing table as empty)
READABLE_FROM = 4
APP_ID = 0x6F726368  # "orch": marks the file as ours

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE steps (
        workflow TEXT NOT NULL, step TEXT NOT NULL, env TEXT NOT NULL DEFAULT '',
        fingerprint TEXT, fields TEXT, inputs TEXT, upstream TEXT,
        outputs TEXT, output_files TEXT,
        status TEXT NOT NULL, reason TEXT, task_id INTEGER, run_id INTEGER,
        started REAL, ended REAL, updated REAL NOT NULL,
        PRIMARY KEY (workflow, step, env)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, ended REAL,
        status TEXT NOT NULL, pid INTEGER, host TEXT, argv TEXT, env TEXT,
        git_commit TEXT, dirty INTEGER, workflows TEXT, summary TEXT
    );
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL,
        workflow TEXT NOT NULL, step TEXT NOT NULL, env TEXT NOT NULL DEFAULT '',
        attempt INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL, reason TEXT,
        queued REAL, started REAL, ended REAL, exit_code INTEGER, delay REAL,
        log_path TEXT, cpu_time REAL, peak_rss INTEGER, pid INTEGER,
        fingerprint TEXT, message TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_by_step ON tasks (workflow, step, id);
    CREATE INDEX tasks_by_run ON tasks (run_id);
    CREATE INDEX tasks_by_status ON tasks (status);
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER,
        hash TEXT NOT NULL, hashed_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE breakers (
        name TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0,
        opened_until REAL, state TEXT NOT NULL DEFAULT 'closed', updated REAL
    ) WITHOUT ROWID;
    CREATE TABLE allocations (
        run_id INTEGER NOT NULL, task_key TEXT NOT NULL, quota TEXT NOT NULL,
        resource TEXT NOT NULL, amount REAL NOT NULL, since REAL NOT NULL
    );
    CREATE TABLE rate_events (quota TEXT NOT NULL, at REAL NOT NULL);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, run_id INTEGER,
        kind TEXT NOT NULL, subject TEXT, detail TEXT
    );
    """,
    # 2: what downstream steps fingerprint of a step, stored so a plan need not parse JSON
    2: "ALTER TABLE steps ADD COLUMN result_digest TEXT",
    # 3: the hash cache keys on ctime and the executable bit too (runner.statkey); the old
    # entries, keyed without them, are dropped (a cache: the files are hashed again)
    3: """
    DROP TABLE file_hashes;
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER,
        inode INTEGER, mode INTEGER, hash TEXT NOT NULL, hashed_ns INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    # 4: where each task ran: the Dask worker's address ("tcp://HOST:PORT"); NULL on this
    # machine (the local executor) and in rows written before version 4
    4: "ALTER TABLE tasks ADD COLUMN worker TEXT",
    # 5: the audit log of state-changing commands (runner.store.audit); argv is JSON,
    # masked; exit_code NULL while a watch runs (its start)
    5: """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user TEXT, host TEXT,
        pid INTEGER, git_commit TEXT, dirty INTEGER, argv TEXT NOT NULL,
        exit_code INTEGER, error TEXT
    );
    CREATE INDEX audit_by_time ON audit (at)
    """,
}


_OFD = hasattr(fcntl, "F_OFD_SETLK")


def byte_lock(fd: int, start: int, length: int, unlock: bool = False) -> None:
    """Take (without waiting) or drop an exclusive lock on bytes of ``fd``'s file.

    On Linux these are open-file-description locks: owned by the descriptor, not the
    process, so two threads with their own ``State`` exclude each other, and closing one
    descriptor does not drop the locks taken through another (both are true of plain
    POSIX ``lockf``, used where OFD locks do not exist). Raises OSError when held.
    """
    if _OFD:
        kind = fcntl.F_UNLCK if unlock else fcntl.F_WRLCK
        # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
        fcntl.fcntl(
            fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)
        )
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN if unlock else fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)


def _loads(s: str | None) -> Any:
    return json.loads(s) if s else {}


# json.dumps with any option builds a new encoder per call; one, made once, writes the
# same text (the same options) for every column of every record
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _dumps(v: Any) -> str:
    return _ENCODE(v)


_LAZY = ("fields", "inputs", "upstream", "outputs", "output_files")


class StepRecord:
    """A step's recorded state. The JSON columns are parsed only when read: a no-op plan
    compares fingerprints and never needs them."""

    __slots__ = (
        "workflow",
        "step",
        "env",
        "fingerprint",
        "status",
        "reason",
        "task_id",
        "run_id",
        "started",
        "ended",
        "updated",
        "_result_digest",
        "_fields",
        "_inputs",
        "_upstream",
        "_outputs",
        "_output_files",
    )

    def __init__(
        self,
        workflow: str,
        step: str,
        env: str,
        fingerprint: str | None,
        fields: dict[str, str] | str | None,
        inputs: dict[str, str] | str | None,
        upstream: dict[str, str] | str | None,
        outputs: dict[str, str] | str | None,
        output_files: dict[str, str] | str | None,
        status: str,
        reason: str | None,
        task_id: int | None,
        run_id: int | None,
        started: float | None,
        ended: float | None,
        updated: float,
        result_digest: str | None = None,
    ):
        self.workflow, self.step, self.env, self.fingerprint = workflow, step, env, fingerprint
        self._fields, self._inputs, self._upstream = fields, inputs, upstream
        self._outputs, self._output_files = outputs, output_files
        self.status, self.reason, self.task_id, self.run_id = status, reason, task_id, run_id
        self.started, self.ended, self.updated = started, ended, updated
        self._result_digest = result_digest

    def _get(self, name: str) -> dict[str, str]:
        v = getattr(self, "_" + name)
        if not isinstance(v, dict):
            v = json.loads(v) if v else {}
            setattr(self, "_" + name, v)
        return v

    fields = property(lambda self: self._get("fields"), lambda self, v: setattr(self, "_fields", v))
    inputs = property(lambda self: self._get("inputs"), lambda self, v: setattr(self, "_inputs", v))
    upstream = property(
        lambda self: self._get("upstream"), lambda self, v: setattr(self, "_upstream", v)
    )
    outputs = property(
        lambda self: self._get("outputs"), lambda self, v: setattr(self, "_outputs", v)
    )
    output_files = property(
        lambda self: self._get("output_files"), lambda self, v: setattr(self, "_output_files", v)
    )

    @property
    def result_digest(self) -> str:
        """What downstream steps fingerprint of this one: output values, files, status."""
        if self._result_digest is None:
            from runner.digests import upstream_digest

            self._result_digest = upstream_digest(self.outputs, self.output_files, self.status)
        return self._result_digest


# SQLite's primary result codes for a failing environment, and what to do about each
_SQLITE_ENV = {
    3: "permission denied; check the permissions of {dir}",  # SQLITE_PERM
    5: "another orch process held it too long; try again",  # SQLITE_BUSY
    6: "another orch process held it too long; try again",  # SQLITE_LOCKED
    8: "{dir} is read-only; run this where it is writable (status, plan, history and logs "
    "read a read-only state as it is)",  # SQLITE_READONLY
    10: "a disk I/O error; check the disk that holds {dir}, then run the command again",
    13: "the disk is full; free space on the disk that holds {dir}, then run the command again",
    14: "cannot open it; check that {dir} exists and is readable",  # SQLITE_CANTOPEN
}
_SQLITE_ENV_WORDS = {  # Python < 3.11 has no sqlite_errorcode: the same, by SQLite's words
    "readonly database": 8,
    "disk I/O error": 10,
    "database or disk is full": 13,
    "unable to open database file": 14,
    "database is locked": 5,
}


class StateUnusable(StateError):
    """The machine, not the file, failed (disk full, read-only, I/O, permissions, busy):
    ``orch state reset`` would not help. Writes that only save work (the hash cache,
    reaping dead runs for a plan) let it pass; the rest stop with its one line."""


def _sqlite_code(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF  # extended codes keep the primary one in the low byte
    for words, c in _SQLITE_ENV_WORDS.items():
        if words in str(e):
            return c
    return None


class State:
    """One connection to ``state.db``; safe to share between the scheduler's threads.

    ``readonly``: for the commands that only read (status, history, logs, task, system, and
    plan where ``.orch/`` is not writable). The database is opened with SQLite's
    ``mode=ro`` (or ``immutable=1`` where the WAL index cannot be created, as on a read-only
    mount), nothing is created, migrated, reaped or written, and a missing database reads
    as empty.
    """

    def __init__(self, orch_dir: Path, readonly: bool = False, path: Path | None = None):
        self.dir = orch_dir
        self.path = path or orch_dir / "state.db"  # path: a backup ``reset`` made
        self.readonly = readonly
        self.immutable = False  # read-only without the WAL index (a read-only mount)
        self._lock = threading.RLock()
        self._depth = 0  # open tx()/batch() levels (under _lock): nested ones are savepoints
        self._conn: sqlite3.Connection | None = None
        self._lockfd: int | None = None
        self._claims: dict[str, int] = {}  # step/run key -> the descriptor holding its lock
        # the run's secrets: every text and output written below is masked with them
        self.secrets = Secrets()

    # -- connection -------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        """Open (creating or upgrading) under a short exclusive flock: two runners starting
        on a fresh repository at once would otherwise race in ``journal_mode=WAL``, which
        does not wait on SQLite's busy timeout. (A BSD flock on its own file, so it never
        interferes with the POSIX step locks on ``locks``.)"""
        if self.readonly:
            return self._open_readonly()
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "state.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return self._open_locked()
        finally:
            os.close(fd)

    def _open_locked(self) -> sqlite3.Connection:
        new = not self.path.exists()
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise self.failed(e) from None
        return self._checked(conn, new, app, version)

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            return self._empty()
        error: sqlite3.Error | None = None
        for flags in ("mode=ro", "immutable=1"):
            conn: sqlite3.Connection | None = None
            try:
                conn = sqlite3.connect(
                    f"{self.path.as_uri()}?{flags}",
                    uri=True,
                    timeout=30.0,
                    isolation_level=None,
                    check_same_thread=False,
                )
                app = conn.execute("PRAGMA application_id").fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError as e:
                if conn is not None:  # its file stays open until collected otherwise
                    conn.close()
                error = e
                if _sqlite_code(e) not in (8, 14, 10):  # read-only WAL without its index
                    break
                continue
            self.immutable = flags == "immutable=1"
            if version == 0 and app == 0:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if not tables:  # created, never written: as empty as a missing file
                    conn.close()
                    return self._empty()
            if version and version < READABLE_FROM:
                conn.close()
                raise StateError(
                    f"{self.path}: written by an older orch (state version {version}) and "
                    "read-only here; run 'orch apply' where it is writable to upgrade it"
                )
            return self._checked(conn, False, app, version)
        assert error is not None
        raise self.failed(error) from None

    def _empty(self) -> sqlite3.Connection:
        """Nothing recorded yet: an empty state, in memory."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._migrate(conn, 0)
        return conn

    def _checked(
        self, conn: sqlite3.Connection, new: bool, app: int, version: int
    ) -> sqlite3.Connection:
        """Refuse a file that is not ours or is too new; upgrade an older one."""
        if version == 0 and app == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables and not new:
                conn.close()
                raise self._corrupt("it is not an orch state file")
        elif app != APP_ID:
            conn.close()
            raise self._corrupt("it is not an orch state file")
        if version > SCHEMA_VERSION:
            conn.close()
            raise StateError(
                f"{self.path}: written by a newer orch (state version {version}, this orch reads "
                f"up to {SCHEMA_VERSION}); upgrade orch, or run 'orch state reset' to start afresh"
            )
        if version < SCHEMA_VERSION and not self.readonly:
            try:
                self._migrate(conn, version)
            except sqlite3.DatabaseError as e:
                conn.close()
                raise self._corrupt(f"upgrading it from version {version} failed: {e}") from None
        return conn

    def damage(self) -> StateError | None:
        """The error to give if SQLite's ``quick_check`` finds the file damaged (a page
        that no query has touched yet reads as fine until one does)."""
        try:
            rows = self.query("PRAGMA quick_check")
        except StateError as e:
            return e
        found = [r[0] for r in rows]
        if found == ["ok"]:
            return None
        detail = " ".join(str(found[0]).replace("*** in database main ***", "").split())
        return self._corrupt(f"damaged: {detail[:200]}")

    def _corrupt(self, why: str) -> StateError:
        return StateError(
            f"{self.path}: cannot use the recorded state ({why}); "
            "run 'orch state reset' to move it aside as a backup and start afresh"
        )

    def failed(self, e: sqlite3.Error) -> StateError:
        """The one-line error for a failed SQLite call: the environment (disk full,
        read-only, I/O, permissions, busy) says what to do about it; anything else means
        the file itself is damaged, and ``orch state reset`` is the way out."""
        hint = _SQLITE_ENV.get(_sqlite_code(e) or 0)
        if hint is None:
            return self._corrupt(str(e))
        return StateUnusable(f"{self.path}: {hint.format(dir=self.dir)} (SQLite: {e})")

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            conn.execute(f"PRAGMA application_id={APP_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lockfd is not None:
                os.close(self._lockfd)
                self._lockfd = None
            for fd in self._claims.values():
                os.close(fd)
            self._claims.clear()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the writer lock is taken up front).

        Inside ``batch()`` (on the batch's thread; other threads wait for the batch) it is
        a savepoint instead: all or nothing on its own, durable with the batch."""
        if self.readonly:
            raise StateError(f"{self.path}: opened read-only; this command must not write")
        with self._lock:
            conn = self.conn
            if self._depth:
                yield from self._savepoint(conn)
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:
                raise self.failed(e) from None
            self._depth = 1
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as e:
                self._rollback(conn)
                raise self.failed(e) from None
            except BaseException:
                self._rollback(conn)
                raise
            finally:
                self._depth = 0

    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        name = f"orch_{self._depth}"
        try:
            conn.execute(f"SAVEPOINT {name}")
        except sqlite3.DatabaseError as e:
            raise self.failed(e) from None
        self._depth += 1
        try:
            yield conn
            conn.execute(f"RELEASE {name}")
        except BaseException as e:
            if conn.in_transaction:
                with suppress(sqlite3.DatabaseError):
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
            if isinstance(e, sqlite3.DatabaseError):
                raise self.failed(e) from None
            raise
        finally:
            self._depth -= 1

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around several ``tx()`` blocks of this thread: each stays all or
        nothing (a savepoint), and all are committed, and so durable, together at the end;
        nothing of them is if the batch raises. For the records of tasks that finished
        together: one commit instead of one per task."""
        with self.tx():
            yield

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        """Roll back if a transaction is open (SQLite may have ended it itself on a full
        disk or I/O error)."""
        if conn.in_transaction:
            with suppress(sqlite3.DatabaseError):
                conn.execute("ROLLBACK")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of ``sql`` with ``args`` bound; StateError on a damaged or unreadable file.
        For ``store/`` only: code outside it calls a named store function with data
        (``tests/test_layers.py`` fails on a ``.query`` call or SQL text outside ``store/``)."""
        with self._lock:
            conn = self.conn
            conn.row_factory = sqlite3.Row
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as e:
                raise self.failed(e) from None

    # -- kernel locks -----------------------------------------------------------------
    def _lockfile(self) -> int:
        if self._lockfd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lockfd = os.open(self.dir / "locks", os.O_RDWR | os.O_CREAT, 0o644)
        return self._lockfd

    @staticmethod
    def _offset(key: str) -> int:
        # 62 bits: distinct step keys practically never share a byte
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 2

    def try_claim(self, key: str) -> bool:
        """Take the kernel lock for ``key`` without waiting; False if another process has it.

        With OFD locks (Linux) each claim is taken through a descriptor of its own, which
        the step's task inherits (``claim_fd``): the claim then lasts as long as any process
        of the task lives, even after this runner is killed, so no second runner starts the
        step beside an orphaned task (an open file description's lock is dropped only when
        its last descriptor closes)."""
        if not _OFD:
            try:
                byte_lock(self._lockfile(), self._offset(key), 1)
                return True
            except OSError:
                return False
        with self._lock:
            if key in self._claims:
                return True
            path = os.path.join(self.dir, "locks")
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
            try:  # the folder is there but the first time: no mkdir per claim
                fd = os.open(path, flags, 0o644)
            except FileNotFoundError:
                self.dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, flags, 0o644)
            try:
                byte_lock(fd, self._offset(key), 1)
            except OSError:
                os.close(fd)
                return False
            self._claims[key] = fd
            return True

    def claim_fd(self, key: str) -> int | None:
        """The descriptor holding ``key``'s claim (OFD locks only), for the task to inherit."""
        return self._claims.get(key)

    def release(self, key: str) -> None:
        """Drop our hold on ``key``. Only our descriptor is closed, never the lock undone:
        a process of the task that inherited the claim keeps it until it exits."""
        with self._lock:
            fd = self._claims.pop(key, None)
            if fd is not None:
                os.close(fd)
            elif self._lockfd is not None and not _OFD:
                byte_lock(self._lockfd, self._offset(key), 1, unlock=True)

    def is_held_elsewhere(self, key: str) -> bool:
        """Whether another live process holds ``key`` (one we hold is not "elsewhere")."""
        if key in self._claims:
            return False
        if self.readonly:
            return self._held_readonly(key)
        if not self.try_claim(key):
            return True
        self.release(key)
        return False

    def _held_readonly(self, key: str) -> bool:
        """The same question without writing: ask the kernel who holds the byte (F_GETLK
        needs no write access). No ``locks`` file means no runner ever held anything."""
        try:
            fd = os.open(self.dir / "locks", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            cmd = fcntl.F_OFD_GETLK if _OFD else fcntl.F_GETLK
            probe = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, self._offset(key), 1, 0)
            kind = struct.unpack("hhqqi4x", fcntl.fcntl(fd, cmd, probe))[0]
            return kind != fcntl.F_UNLCK
        finally:
            os.close(fd)

    def run_key(self, run_id: int) -> str:
        return f"run:{run_id}"

    def run_alive(self, run_id: int, own: set[int] | None = None) -> bool:
        if own and run_id in own:
            return True
        return self.is_held_elsewhere(self.run_key(run_id))

    # -- runs -------------------------------------------------------------------------
    def begin_run(
        self,
        argv: list[str],
        env: str,
        commit: str | None,
        dirty: bool | None,
        workflows: list[str],
    ) -> int:
        import socket

        with self.tx() as c:
            cur = c.execute(
                "INSERT INTO runs (started, status, pid, host, argv, env, git_commit, dirty, workflows)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    time.time(),
                    "running",
                    os.getpid(),
                    socket.gethostname(),
                    _dumps(self.secrets.mask_any(list(argv))),
                    env,
                    commit,
                    None if dirty is None else int(dirty),
                    _dumps(workflows),
                ),
            )
            run_id = int(cur.lastrowid or 0)
        self.try_claim(self.run_key(run_id))
        return run_id

    def end_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        """Close run ``run_id``. A task or step of it still ``running`` (one whose result
        was never recorded: the run stopped between starting it and settling it, as a
        reader closing the pipe mid-submit can make it) is closed ``interrupted``, so an
        ended run never leaves anything running; the next apply re-runs it."""
        now = time.time()
        with self.tx() as c:
            c.execute(
                "UPDATE runs SET ended=?, status=?, summary=? WHERE id=?",
                (now, status, _dumps(summary), run_id),
            )
            c.execute(
                "UPDATE tasks SET status='interrupted', ended=coalesce(ended, ?), "
                "message='the run ended before its result was recorded' "
                "WHERE run_id=? AND status IN ('running','queued')",
                (now, run_id),
            )
            c.execute(
                "UPDATE steps SET status='interrupted', reason='the run ended before its "
                "result was recorded', ended=max(coalesce(started, ?), ?), updated=? "
                "WHERE run_id=? AND status='running'",
                (now, now, now, run_id),
            )
            c.execute("DELETE FROM allocations WHERE run_id=?", (run_id,))
        self.release(self.run_key(run_id))

    def dead_runs(self) -> list[int]:
        """Runs recorded as running whose runner is gone (kill -9): read-only."""
        rows = self.query("SELECT id FROM runs WHERE status='running'")
        return [r["id"] for r in rows if not self.run_alive(r["id"])]

    def reap_dead_runs(self) -> list[int]:
        """Mark runs whose runner died (kill -9) and their in-flight tasks interrupted,
        and free what they held. Read-only: nothing is written (readers show such runs as
        interrupted themselves, see ``runner.api``)."""
        dead = self.dead_runs()
        if not dead or self.readonly:
            return []
        try:
            self._reap(dead)
        except StateUnusable:
            return []  # a full or read-only disk: the next writer that can, reaps
        return dead

    def _reap(self, dead: list[int]) -> None:
        with self.tx() as c:
            for rid in dead:
                c.execute(
                    "UPDATE runs SET status='interrupted', ended=? WHERE id=?", (time.time(), rid)
                )
                c.execute(
                    "UPDATE tasks SET status='interrupted', ended=coalesce(ended, ?), "
                    "message='the runner was killed' WHERE run_id=? AND status IN ('running','queued')",
                    (time.time(), rid),
                )
                c.execute(
                    "UPDATE steps SET status='interrupted', reason='the runner was killed',"
                    " ended=max(coalesce(started, ?), ?), updated=? WHERE run_id=? AND status='running'",
                    (time.time(), time.time(), time.time(), rid),
                )
                c.execute("DELETE FROM allocations WHERE run_id=?", (rid,))
                c.execute(
                    "INSERT INTO events (at, run_id, kind, subject, detail) VALUES (?,?,?,?,?)",
                    (
                        time.time(),
                        rid,
                        "reaped",
                        f"run {rid}",
                        "runner died; in-flight tasks interrupted",
                    ),
                )

    # -- steps ------------------------------------------------------------------------
    def step_records(self, workflow: str, env: str = "") -> dict[str, StepRecord]:
        """Current records of a workflow's steps for ``env``.

        A step never run in ``env`` falls back to its latest record in any environment:
        the fingerprint then decides, so a step that reads no environment-specific param
        is up to date in a new environment, and one that does re-runs (params changed).
        """
        return self._records(
            "SELECT * FROM steps WHERE workflow=? ORDER BY (env = ?) DESC, updated DESC",
            (workflow, env),
        )

    def drop_step_records(self, workflow: str, steps: list[str]) -> None:
        """Forget ``steps`` of ``workflow`` in every environment: instances a fan-out no
        longer makes (a file removed, a value dropped), so they are not counted again."""
        with self.tx() as conn:
            conn.executemany(
                "DELETE FROM steps WHERE workflow=? AND step=?", [(workflow, s) for s in steps]
            )

    def step_record(self, workflow: str, step: str, env: str = "") -> StepRecord | None:
        return self._records(
            "SELECT * FROM steps WHERE workflow=? AND step=? ORDER BY (env = ?) DESC, updated DESC",
            (workflow, step, env),
        ).get(step)

    def _records(self, sql: str, args: tuple[Any, ...]) -> dict[str, StepRecord]:
        cols = (
            "workflow, step, env, fingerprint, fields, inputs, upstream, outputs, output_files,"
            " status, reason, task_id, run_id, started, ended, updated, result_digest"
        )
        with self._lock:
            conn = self.conn
            conn.row_factory = None
            try:
                rows = conn.execute(sql.replace("SELECT *", f"SELECT {cols}"), args).fetchall()
            except sqlite3.DatabaseError as e:
                raise self.failed(e) from None
        out: dict[str, StepRecord] = {}
        for r in rows:
            if r[1] not in out:  # the env's own row first, then the no-env fallback
                out[r[1]] = StepRecord(*r)
        return out

    def record_step(
        self,
        rec: StepRecord,
        task_update: dict[str, Any] | None = None,
        *,
        close_open_tasks: bool = False,
    ) -> None:
        """The result of a step, and its task row, in one transaction. ``close_open_tasks``:
        also end every task of this step in ``rec.run_id`` still queued or running, with the
        step's status and reason (the error paths: nothing may stay "running")."""
        with self.tx() as c:
            if close_open_tasks and rec.run_id is not None:
                c.execute(
                    "UPDATE tasks SET status=?, message=coalesce(message, ?), ended=?"
                    " WHERE run_id=? AND workflow=? AND step=? AND env=?"
                    " AND status IN ('running', 'queued')",
                    (
                        rec.status,
                        rec.reason,
                        rec.ended,
                        rec.run_id,
                        rec.workflow,
                        rec.step,
                        rec.env,
                    ),
                )
            c.execute(
                "INSERT OR REPLACE INTO steps (workflow, step, env, fingerprint, fields, inputs,"
                " upstream, outputs, output_files, status, reason, task_id, run_id, started, ended,"
                " updated, result_digest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.workflow,
                    rec.step,
                    rec.env,
                    rec.fingerprint,
                    _dumps(rec.fields),
                    _dumps(rec.inputs),
                    _dumps(rec.upstream),
                    _dumps(self.secrets.mask_any(rec.outputs)),
                    _dumps(rec.output_files),
                    rec.status,
                    self.secrets.mask(rec.reason) if rec.reason else rec.reason,
                    rec.task_id,
                    rec.run_id,
                    rec.started,
                    rec.ended,
                    time.time(),
                    rec.result_digest,
                ),
            )
            if task_update and rec.task_id:
                _update_task(c, rec.task_id, self._masked(task_update))

    # -- tasks ------------------------------------------------------------------------
    def start_task(
        self,
        run_id: int,
        workflow: str,
        step: str,
        env: str,
        attempt: int,
        reason: str,
        **extra: Any,
    ) -> int:
        """A new running task, and (first attempt) the step row marked running: one transaction."""
        now = time.time()
        cols = [
            "run_id",
            "workflow",
            "step",
            "env",
            "attempt",
            "status",
            "reason",
            "queued",
            *extra,
        ]
        reason = self.secrets.mask(reason)
        vals = [run_id, workflow, step, env, attempt, "running", reason, now, *extra.values()]
        with self.tx() as c:
            cur = c.execute(
                f"INSERT INTO tasks ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals
            )
            task_id = int(cur.lastrowid or 0)
            if attempt == 1:
                c.execute(
                    "INSERT INTO steps (workflow, step, env, status, task_id, run_id, started, updated)"
                    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(workflow, step, env) DO UPDATE SET"
                    " status='running', task_id=excluded.task_id, run_id=excluded.run_id,"
                    " started=excluded.started, updated=excluded.updated",
                    (workflow, step, env, "running", task_id, run_id, now, now),
                )
        return task_id

    def update_task(self, task_id: int, **fields: Any) -> None:
        with self.tx() as c:
            _update_task(c, task_id, self._masked(fields))

    def _masked(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {k: self.secrets.mask(v) if isinstance(v, str) else v for k, v in fields.items()}

    # -- file-hash cache --------------------------------------------------------------
    def hash_cache(self) -> dict[str, tuple[tuple[int, int, int, int, int], str, int]]:
        """{path: (stat key, hash, hashed_ns)}; see runner.statkey for the key."""
        rows = self.query(
            "SELECT path, size, mtime_ns, ctime_ns, inode, mode, hash, hashed_ns FROM file_hashes"
        )
        return {_path_in(r[0]): ((r[1], r[2], r[3], r[4], r[5]), r[6], r[7]) for r in rows}

    def save_hashes(
        self, entries: dict[str, tuple[tuple[int, int, int, int, int], str, int]]
    ) -> None:
        if not entries or self.readonly:  # only a cache
            return
        with suppress(StateUnusable), self.tx() as c:  # only a cache: a full disk skips it
            c.executemany(
                "INSERT OR REPLACE INTO file_hashes"
                " (path, size, mtime_ns, ctime_ns, inode, mode, hash, hashed_ns)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [(_path_out(p), *k, h, at) for p, (k, h, at) in entries.items()],
            )


def _path_out(path: str) -> str | bytes:
    """A file name for SQLite: text when it is UTF-8, else its bytes (a BLOB), so a name
    that is not UTF-8 round-trips exactly (``_path_in``) rather than failing to store."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def _path_in(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _update_task(c: sqlite3.Connection, task_id: int, fields: dict[str, Any]) -> None:
    if not fields:
        return
    sets = ",".join(f"{k}=?" for k in fields)
    c.execute(f"UPDATE tasks SET {sets} WHERE id=?", (*fields.values(), task_id))


def open_state(orch_dir: Path, readonly: bool = False, path: Path | None = None) -> State:
    return State(orch_dir, readonly, path)


def version(orch_dir: Path) -> tuple[int, ...]:
    """A value that changes whenever any process writes ``state.db``: the size and mtime
    (ns) of the file and of its WAL, where a committed write lands first. Never opens the
    database (no lock, no WAL index), so a reader may ask it every few milliseconds; a
    missing store reads as ``(0, 0, 0, 0)``."""
    out: list[int] = []
    for name in ("state.db", "state.db-wal"):
        try:
            st = os.stat(orch_dir / name)
        except OSError:
            out += [0, 0]
        else:
            out += [st.st_size, st.st_mtime_ns]
    return tuple(out)


def reset(orch_dir: Path) -> Path | None:
    """Move ``state.db`` (and its WAL files) aside as a timestamped backup."""
    src = orch_dir / "state.db"
    if not src.exists():
        return None
    fd = os.open(orch_dir / "locks", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        # refuse while any runner is alive: each live run holds a byte lock somewhere
        try:
            byte_lock(fd, 0, 0)
        except OSError:
            raise LockBusy("another orch process is using this repository; stop it first") from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dst = orch_dir / f"state.db.bak-{stamp}"
        # all or nothing: a state.db moved without its -wal (or a -wal left beside no
        # state.db, which the next new database would read as its own) loses or mixes runs
        moved: list[tuple[Path, Path]] = []
        try:
            for suffix in ("", "-wal", "-shm"):
                extra = orch_dir / f"state.db{suffix}"
                if suffix == "" or extra.exists():
                    os.replace(extra, orch_dir / f"{dst.name}{suffix}")
                    moved.append((extra, orch_dir / f"{dst.name}{suffix}"))
        except OSError as e:
            for was, now in reversed(moved):
                with suppress(OSError):
                    os.replace(now, was)
            where = e.filename2 or e.filename
            raise StateError(
                f"{orch_dir / 'state.db'}: cannot move it aside ({e.strerror}: {where});"
                " nothing was moved: clear that path and run orch state reset again"
            ) from None
        return dst
    finally:
        os.close(fd)
