"""``orch watch -q`` and ``orch watch --json``: a real watch process, read with deadlines."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

from runner.cli.sinks import result_json  # noqa: F401 - the shape watch --json reuses
from tests.conftest import Repo, workflow
from tests.test_watch import DEADLINE, save_atomically

MIXED = workflow(
    "demo",
    """\
    - name: good
      run: echo GOOD-OUTPUT
      inputs: [a.txt]
    - name: bad
      run: echo BAD-OUTPUT; exit 3
      inputs: [b.txt]
""",
)


def _setup(repo: Repo) -> None:
    repo.write("wf.yaml", MIXED)
    repo.write("a.txt", "a\n")
    repo.write("b.txt", "b\n")


class Stream:
    """A watch whose stdout and stderr are read apart, line by line, into queues."""

    def __init__(self, repo: Repo, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "watch", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        self.pumps = [
            threading.Thread(target=self._pump, args=(stream, q), daemon=True)
            for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for t in self.pumps:
            t.start()

    @staticmethod
    def _pump(stream, q) -> None:
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def next(self, q: queue.Queue[str | None], seen: list[str], pred) -> str:
        end = time.monotonic() + DEADLINE
        while (left := end - time.monotonic()) > 0:
            try:
                line = q.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError("watch exited:\n" + "\n".join(seen))
            seen.append(line)
            if pred(line):
                return line
        raise AssertionError("nothing expected in time:\n" + "\n".join(seen))

    def stop(self) -> int:
        self.proc.send_signal(2)
        try:
            return self.proc.wait(DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for t in self.pumps:
                t.join(DEADLINE)
            for stream in (self.proc.stdout, self.proc.stderr):
                stream.close()

    def rest(self, q: queue.Queue[str | None]) -> list[str]:
        """What is left in ``q`` once the process ended and its pumps are done."""
        out = []
        while (line := q.get_nowait()) is not None:
            out.append(line)
        return out


def test_quiet_prints_only_failures_and_the_cycle_line(repo: Repo) -> None:
    _setup(repo)
    w = Stream(repo, "-q")
    seen: list[str] = []
    try:
        w.next(w.out, seen, lambda line: line.startswith("watch: cycle 1:"))
        save_atomically(repo.path / "a.txt", "a2\n")
        w.next(w.out, seen, lambda line: line.startswith("watch: cycle 2:"))
    finally:
        assert w.stop() == 0
    # the banner, then per cycle its failures and its summary: no task output, no > or
    # ok lines
    assert seen[0].startswith("watch: watching ")
    kinds = [line.split(" ")[0] + " " + line.split(" ")[1].rstrip(":") for line in seen[1:]]
    assert kinds == ["!! demo/bad", "watch: cycle", "!! demo/bad", "watch: cycle"], seen
    assert "exit 3" in seen[1]
    assert "2 ran, 1 failed" in seen[2]
    assert "2 ran, 1 failed" in seen[4]  # good's input changed; bad's last run failed


def test_json_prints_one_object_per_cycle_on_stdout(repo: Repo) -> None:
    _setup(repo)
    w = Stream(repo, "--json")
    cycles: list[str] = []
    try:
        w.next(w.out, cycles, lambda line: True)
        save_atomically(repo.path / "a.txt", "a2\n")
        w.next(w.out, cycles, lambda line: True)
        repo.write(
            "wf.yaml",
            "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: demo}\nspec: {steps: 3}\n",
        )
        w.next(w.out, cycles, lambda line: True)
    finally:
        assert w.stop() == 0
    assert w.rest(w.out) == []  # stdout carries the cycles' objects and nothing else
    err = w.rest(w.err)
    objs = [json.loads(line) for line in cycles]
    first, second, broken = objs
    # apply --json's keys, plus the cycle's own
    keys = {"run_id", "ok", "duration", "counts", "steps", "hooks_failed", "removed"}
    assert keys | {"cycle", "changed", "errors", "restart_for"} == set(first)
    assert (first["cycle"], first["changed"], first["ok"]) == (1, [], False)
    assert first["counts"] == {"failed": 1, "succeeded": 1}
    assert {s["step"]: s["status"] for s in first["steps"]} == {
        "good": "succeeded",
        "bad": "failed",
    }
    assert (second["cycle"], second["changed"]) == (2, ["a.txt"])
    assert second["run_id"] > first["run_id"]
    assert (broken["cycle"], broken["changed"], broken["run_id"], broken["ok"]) == (
        3,
        ["wf.yaml"],
        None,
        False,
    )
    assert broken["errors"] and "wf.yaml" in broken["errors"][0]
    # the people's lines went to stderr, --json implying -q: no task output anywhere
    assert any(line.startswith("watch: cycle 3: changed wf.yaml") for line in err), err
    assert not any("GOOD-OUTPUT" in line or line.startswith("> ") for line in err), err


def test_json_and_events_to_stdout_are_refused(repo: Repo) -> None:
    _setup(repo)
    r = subprocess.run(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "watch", "--json", "--events", "-"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert r.returncode == 2
    assert json.loads(r.stdout)["exit"] == 2
    assert "give --events a FILE" in r.stderr
    assert not (repo.path / ".orch" / "state.db").exists()


def test_a_when_false_skip_is_a_skip_line_not_a_failure(repo: Repo) -> None:
    """A step skipped at start time (``when:`` false, decided once its upstream ran)
    prints apply's ``-`` skip line, never the ``!!`` failure marker."""
    repo.write(
        "wf.yaml",
        workflow(
            "demo",
            """\
    - name: first
      run: echo "go=false" >> "$ORCH_OUTPUT"
    - name: later
      run: echo later
      when: "{{ steps.first.outputs.go }}"
""",
        ),
    )
    w = Stream(repo)
    seen: list[str] = []
    try:
        w.next(w.out, seen, lambda line: line.startswith("watch: cycle 1:"))
    finally:
        assert w.stop() == 0
    assert "- demo/later: skipped (when: false)" in seen, seen
    assert not any(line.startswith("!!") for line in seen), seen
    assert "1 ran, 0 failed" in seen[-1]
