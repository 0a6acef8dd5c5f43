"""What ``orch ui --allow-actions`` may do: apply, force a step, cancel a task.

An apply (or a forced step) runs ``api.apply`` in a thread of its own, so the server
keeps answering and the pages watch it through the state as they watch any other orch;
one apply at a time from this server (a second while one runs is refused). Every action
is a row in the audit log (``runner.audit``), its argv starting with ``ui`` so ``orch
audit`` tells it from the CLI's; a row that cannot be written is a warning on the
server's stderr, never the action's failure.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from runner import api
from runner.errors import Interrupted, OrchError


class Actions:
    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.Lock()
        self._jobs: list[dict[str, Any]] = []  # newest last
        self._busy: threading.Thread | None = None
        self.stop = threading.Event()  # set at shutdown: a running apply stops as Ctrl-C

    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(j) for j in self._jobs[-10:]]

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a running apply to end (after ``stop``): its
        thread is a daemon, and an exit before it ends loses the run's audit row."""
        with self._lock:
            busy = self._busy
        if busy is not None:
            busy.join(timeout)

    def start(self, kind: str, fields: dict[str, str]) -> dict[str, Any]:
        """Begin action ``kind`` (``apply``, ``force``, ``cancel``); OrchError when refused."""
        if kind == "cancel":
            return self._cancel(fields.get("task", ""))
        if kind not in ("apply", "force"):
            raise OrchError(f"no action '{kind}' (apply, force, cancel)")
        wf = fields.get("workflow") or None
        force = None
        argv = ["ui", "apply"]
        if wf:
            argv.append(wf)
        if kind == "force":
            step = fields.get("step", "")
            if not wf or not step:
                raise OrchError("force needs a workflow and a step")
            force = [f"{wf}/{step}"]
            argv += ["--force", force[0]]
        with self._lock:
            if self._busy is not None and self._busy.is_alive():
                raise OrchError("an apply started from this page is still running")
            job = {"id": len(self._jobs) + 1, "argv": argv, "state": "running",
                   "started": time.time(), "ended": None, "run_id": None, "error": None}  # fmt: skip
            self._jobs.append(job)
            self._busy = threading.Thread(
                target=self._apply, args=(job, wf, force), name="orch-ui-apply", daemon=True
            )
            self._busy.start()
        return dict(job)

    def _apply(self, job: dict[str, Any], wf: str | None, force: list[str] | None) -> None:
        from runner.reconcile.results import ApplyOptions

        repo = api.Repo(root=self.root, prefix="")
        opts = ApplyOptions(echo=None, argv=job["argv"], stop=self.stop)
        code, error = 0, None
        try:
            result = api.apply(repo, [wf] if wf else None, force=force, options=opts)
            job["run_id"] = result.run_id
            code = 0 if result.ok else 1
            audited = result.run_id is not None or not result.ok  # a no-op is not audited
        except Interrupted as e:
            code, error, audited = 130, f"interrupted: {e}", True
        except OrchError as e:
            code, error, audited = e.exit_code, "; ".join(e.lines()), True
        except Exception as e:  # the server lives on; the job says what happened
            code, error, audited = 1, f"{type(e).__name__}: {e}", True
        with self._lock:
            job.update(state="ok" if code == 0 else "failed", ended=time.time(), error=error)
        if audited:
            self._audit(job["argv"], code, error)

    def _cancel(self, task: str) -> dict[str, Any]:
        if not (task.isascii() and task.isdigit()):  # int() refuses '²', isdigit() not
            raise OrchError("cancel needs a task id")
        argv = ["ui", "task", "cancel", task]
        repo = api.Repo(root=self.root, prefix="")
        try:
            t = api.cancel_task(repo, int(task))
        except OrchError as e:
            self._audit(argv, e.exit_code, "; ".join(e.lines()))
            raise
        self._audit(argv, 0, None)
        return {"cancelled": t["id"], "workflow": t["workflow"], "step": t["step"]}

    def _audit(self, argv: list[str], code: int, error: str | None) -> None:
        from runner.audit import record

        repo = api.Repo(root=self.root, prefix="")
        try:
            record(self.root, argv, code, error, lambda v: api.mask(repo, v))
        except Exception as e:
            print(f"orch ui: warning: audit log not written: {e}", file=sys.stderr)
