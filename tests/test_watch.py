"""orch watch: a real ``orch watch`` process on a temp repo, read line by line with deadlines.

Every "nothing happened" is proven by a sentinel: after the edit that must be ignored, an
edit that must trigger is made, and the very next cycle has to list only the sentinel (an
ignored change would have made a cycle of its own first, or joined that one).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.manifests.load import Config, load
from runner.watch.loop import CANDIDATE, CONFIG, INPUT, MANIFEST, Debouncer, EventFilter, Hit
from runner.watch.loop import Change as WatchChange
from tests.conftest import Repo, workflow

DEADLINE = 30.0
CYCLE = re.compile(
    r"^watch: cycle (?P<n>\d+): (?:start|changed (?P<changed>.*?)) -> "
    r"(?P<ran>\d+) ran, (?P<failed>\d+) failed(?P<rest>.*)$"
)
MORE = re.compile(r" \(\+(\d+) more\)$")

COPY = workflow(
    "demo",
    """\
    - name: copy
      run: mkdir -p out && cat src/a.txt > out/a.txt
      inputs: ["src/*.txt"]
      outputs: [out/a.txt]
    - name: other
      run: echo other
      inputs: [other.txt]
""",
)


@dataclass
class Cycle:
    n: int
    changed: list[str]
    more: int
    ran: int
    failed: int
    rest: str


class Watch:
    """``orch watch`` in its own session; stdout+stderr read by a thread into a queue."""

    def __init__(self, repo: Repo, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "watch", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = DEADLINE) -> re.Match[str]:
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError("watch exited:\n" + "\n".join(self.seen))
            self.seen.append(line)
            m = rx.search(line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern!r} in time:\n" + "\n".join(self.seen))

    def cycle(self, timeout: float = DEADLINE) -> Cycle:
        m = self.expect(CYCLE, timeout)
        changed = m["changed"] or ""
        more = MORE.search(changed)
        if more:
            changed = changed[: more.start()]
        return Cycle(
            int(m["n"]),
            changed.split(", ") if changed else [],
            int(more.group(1)) if more else 0,
            int(m["ran"]),
            int(m["failed"]),
            m["rest"],
        )

    def interrupt(self, timeout: float = DEADLINE, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            for sig in (signal.SIGINT, signal.SIGKILL):
                os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(10)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def start(repo: Repo):
    procs: list[Watch] = []

    def _start(*args: str) -> Watch:
        w = Watch(repo, *args)
        procs.append(w)
        return w

    yield _start
    for w in procs:
        w.close()


def setup(repo: Repo, manifest: str = COPY) -> None:
    repo.write("wf.yaml", manifest)
    repo.write("src/a.txt", "one\n")
    repo.write("other.txt", "x\n")
    repo.write(".gitignore", "out/\n")


def save_atomically(path: Path, text: str) -> None:
    """As editors do: write a temp file beside it, then rename it over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- through a real watch process ---------------------------------------------------------


def test_input_edit_reruns_that_step(repo: Repo, start) -> None:
    setup(repo)
    w = start()
    c = w.cycle()
    assert (c.n, c.changed, c.ran, c.failed) == (1, [], 2, 0)
    save_atomically(repo.path / "src/a.txt", "two\n")
    c = w.cycle()
    assert (c.n, c.changed, c.ran, c.failed) == (2, ["src/a.txt"], 1, 0)
    assert "> demo/copy (input changed: src/a.txt)" in w.seen
    assert repo.read("out/a.txt") == "two\n"


def test_edit_reached_through_a_symlinked_input_folder_reruns(repo: Repo, start) -> None:
    setup(repo)
    repo.write("third/lib/b.txt", "b1\n")
    os.symlink("../third/lib", repo.path / "src" / "vendor")
    repo.write("wf.yaml", COPY.replace('["src/*.txt"]', '["src/**"]'))
    w = start()
    assert w.cycle().ran == 2
    save_atomically(repo.path / "third/lib/b.txt", "b2\n")
    c = w.cycle()
    assert (c.ran, c.failed) == (1, 0)
    assert "> demo/copy (input changed: src/vendor/b.txt)" in w.seen


def test_unrelated_and_editor_files_run_nothing(repo: Repo, start) -> None:
    setup(repo)
    w = start("-q")
    assert w.cycle().n == 1
    repo.write("notes.md", "unrelated\n")
    repo.write("src/a.md", "not *.txt\n")
    repo.write("src/.a.txt.swp", "vim swap\n")
    repo.write("src/a.txt~", "backup\n")
    repo.write("src/#a.txt#", "emacs autosave\n")
    repo.write("src/__pycache__/x.txt", "cache\n")
    repo.write("out/junk.txt", "ignored folder, and nobody's input\n")
    repo.write("other.txt", "sentinel\n")
    c = w.cycle()
    assert (c.n, c.changed, c.ran) == (2, ["other.txt"], 1)


def test_burst_of_200_saves_is_one_cycle(repo: Repo, start) -> None:
    setup(repo)
    w = start("-q", "--debounce", "1.0")  # above any pause a loaded CI machine makes mid-burst
    assert w.cycle().n == 1
    for i in range(200):  # temp file + rename each: 600 events
        save_atomically(repo.path / f"src/f{i:03d}.txt", f"{i}\n")
    c = w.cycle()
    assert (c.n, c.ran, c.failed) == (2, 1, 0)
    assert len(c.changed) + c.more == 200  # the temp files, created and gone, are not listed
    assert all(re.fullmatch(r"src/f\d{3}\.txt", p) for p in c.changed)
    repo.write("other.txt", "sentinel\n")
    c = w.cycle()
    assert (c.n, c.changed) == (3, ["other.txt"])


def test_own_outputs_do_not_retrigger(repo: Repo, start) -> None:
    # gen writes a folder pack reads (and the filter would otherwise keep: src/gen/*.txt)
    setup(
        repo,
        workflow(
            "demo",
            """\
    - name: gen
      run: mkdir -p src/gen && cp src/a.txt src/gen/a.txt && date +%s%N > src/gen/stamp.txt
      inputs: ["src/a.txt"]
      outputs: [src/gen/]
    - name: pack
      run: mkdir -p out && cat src/gen/*.txt > out/pack.txt && date +%s%N >> out/pack.txt
      inputs: ["src/gen/*.txt"]
      outputs: [out/pack.txt]
    - name: other
      run: echo other
      inputs: [other.txt]
""",
        ),
    )
    w = start("-q")
    c = w.cycle()
    assert (c.n, c.ran, c.failed) == (1, 3, 0)
    save_atomically(repo.path / "src/a.txt", "two\n")
    c = w.cycle()
    assert (c.n, c.changed, c.ran, c.failed) == (2, ["src/a.txt"], 2, 0)
    repo.write("other.txt", "sentinel\n")
    c = w.cycle()
    assert (c.n, c.changed, c.ran) == (3, ["other.txt"], 1)


def test_broken_manifest_is_reported_then_fixing_it_recovers(repo: Repo, start) -> None:
    setup(repo)
    w = start("-q")
    assert w.cycle().ran == 2
    repo.write("wf.yaml", COPY + "    - name: bad\n      run: [\n")
    w.expect(r"^wf\.yaml:\d+:\d+: ")
    c = w.cycle()
    assert (c.n, c.ran) == (2, 0)
    assert "not applied: 1 error" in c.rest
    assert w.proc.poll() is None
    repo.write("wf.yaml", COPY.replace("> out/a.txt", "> out/a.txt && echo v2 >> out/a.txt"))
    c = w.cycle()
    assert (c.n, c.changed, c.ran, c.failed) == (3, ["wf.yaml"], 1, 0)
    assert repo.read("out/a.txt") == "one\nv2\n"


def test_change_during_a_cycle_is_picked_up_next(repo: Repo, start) -> None:
    setup(
        repo,
        workflow(
            "demo",
            """\
    - name: copy
      run: "while [ ! -e go ]; do sleep 0.02; done; rm go; mkdir -p out; cat src/a.txt > out/a.txt"
      inputs: ["src/*.txt"]
      outputs: [out/a.txt]
""",
        ),
    )
    w = start()  # the > lines are what it waits for: not -q
    w.expect(r"^> demo/copy ")
    save_atomically(repo.path / "src/a.txt", "two\n")
    repo.write("go", "")
    assert w.cycle().n == 1
    repo.write("go", "")  # let the second run finish too
    c = w.cycle()
    assert (c.n, c.changed, c.ran, c.failed) == (2, ["src/a.txt"], 1, 0)


def test_restart_ends_the_affected_task_and_starts_over(repo: Repo, start) -> None:
    setup(
        repo,
        workflow(
            "demo",
            """\
    - name: serve
      run: "mkdir -p out && cat src/a.txt >> out/log.txt && sleep 60"
      inputs: ["src/*.txt"]
      outputs: [out/log.txt]
""",
        ),
    )
    w = start("--restart")  # waits for > lines: not -q
    w.expect(r"^> demo/serve ")
    end = time.monotonic() + DEADLINE  # the task has started once its line is in the log
    while not (repo.exists("out/log.txt") and repo.read("out/log.txt") == "one\n"):
        assert time.monotonic() < end, "the task never started"
        time.sleep(0.01)
    save_atomically(repo.path / "src/a.txt", "two\n")
    c = w.cycle()
    assert c.n == 1 and c.ran == 1
    assert "1 interrupted" in c.rest and "restarting: src/a.txt changed" in c.rest
    w.expect(r"^> demo/serve ")  # cycle 2 starts it again at once, not after 60 s
    end = time.monotonic() + DEADLINE
    while repo.read("out/log.txt") != "one\ntwo\n":
        assert time.monotonic() < end, "the task did not restart"
        time.sleep(0.01)
    assert w.interrupt() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_sigint_sigterm_sighup_end_running_tasks_and_exit_0(repo: Repo, start, sig: int) -> None:
    setup(
        repo,
        workflow(
            "demo",
            """\
    - name: slow
      run: sleep 60
      inputs: ["src/*.txt"]
""",
        ),
    )
    w = start()  # waits for the > line: not -q
    w.expect(r"^> demo/slow ")
    assert w.interrupt(sig=sig) == 0
    c = w.cycle()
    assert (c.n, c.ran, c.failed) == (1, 1, 0) and "1 interrupted" in c.rest
    w.expect(r"^watch: stopped after 1 cycle$")
    rows = {r["step"]: r for r in repo.orch_json("status")["steps"]}
    assert rows["slow"]["status"] == "interrupted"


def test_unknown_workflow_on_the_command_line_is_an_error(repo: Repo) -> None:
    setup(repo)
    p = repo.orch("watch", "dmeo")
    assert p.returncode == 1
    assert "no workflow named 'dmeo' (did you mean 'demo'?)" in p.stderr


def test_negative_debounce_is_a_usage_error(repo: Repo) -> None:
    p = repo.orch("watch", "--debounce", "-1")
    assert p.returncode == 2


# -- the pieces, in process ---------------------------------------------------------------


def test_filter_classifies_by_path_alone(repo: Repo) -> None:
    setup(
        repo,
        workflow(
            "demo",
            """\
    - name: build
      run: "true"
      inputs: ["src/**/*.py", pyproject.toml, "assets/"]
      outputs: ["{{ params.outdir }}/", report.md]
    - name: test
      needs: [build]
      run: "true"
      inputs: ["tests/*.py"]
""",
            extra="  params: {outdir: dist}\n",
        ),
    )
    m = load(repo.path)
    f = EventFilter(m.config, m, list(m.workflows.values()))
    assert f.classify(".orch/config.yaml") == Hit(CONFIG)
    assert f.classify("wf.yaml") == Hit(MANIFEST)
    assert f.classify("deploy/new.yml") == Hit(CANDIDATE)
    assert f.classify("src/a/b.py") == Hit(INPUT, frozenset({("demo", "build")}))
    assert f.classify("assets/logo.png") == Hit(INPUT, frozenset({("demo", "build")}))
    assert f.classify("tests/test_a.py") == Hit(INPUT, frozenset({("demo", "test")}))
    assert f.classify("src", is_dir=True) == Hit(INPUT, frozenset({("demo", "build")}))
    for ignored in (
        "src/a.txt",
        "README.md",
        "dist/app.whl",
        "report.md",
        ".git/index",
        ".orch/state.db",
        "src/__pycache__/a.cpython-311.pyc",
        "src/.a.py.swp",
        "src/a.py~",
        "src/.#a.py",
        "tests/sub/test_b.py",
        "pyproject.toml.tmp",
    ):
        assert f.classify(ignored) is None, ignored
    build = Hit(INPUT, frozenset({("demo", "build")}))
    assert f.affects(build, [("demo", "test")])  # an upstream's input: test is affected
    assert not f.affects(Hit(INPUT, frozenset({("demo", "test")})), [("demo", "build")])
    assert f.affects(Hit(MANIFEST), [("demo", "build")])
    excluded = EventFilter(Config(manifests=("deploy/",), exclude=("deploy/x.yaml",)))
    assert excluded.classify("deploy/a.yaml") == Hit(CANDIDATE)
    assert excluded.classify("deploy/x.yaml") is None
    assert excluded.classify("other/a.yaml") is None


def test_debouncer_waits_for_quiet_and_caps_a_stream() -> None:
    now = [0.0]
    d = Debouncer(0.1, max_delay=1.0, clock=lambda: now[0])
    assert d.due() is None

    def add(path: str, kind: str = INPUT) -> None:
        d.add(WatchChange(path, Hit(kind)))

    add("a")
    now[0] = 0.05
    add("b")
    assert d.due() == pytest.approx(0.1)  # 0.1 after the last event, not the first
    now[0] = 0.15
    add("a", MANIFEST)
    now[0] = 0.25
    batch = d.take()
    assert batch is not None
    assert sorted(batch) == ["a", "b"] and batch["a"].hit.kind == MANIFEST
    assert d.due() is None
    for i in range(30):  # an event every 0.05 s, for 1.5 s: cut at max_delay
        now[0] = 1.0 + i * 0.05
        add(f"f{i}")
        if d.due() == 0.0:
            break
    assert now[0] == pytest.approx(2.0)
    d.close()
    assert d.take() is None


def test_restart_follows_files_read_across_workflows(repo: Repo) -> None:
    """--restart: an input of a/gen changing affects b/use, which reads gen's output, and
    b/after downstream of it: the edges ``orch apply`` follows between workflows."""
    repo.write(
        "a.yaml",
        workflow("a", "    - {name: gen, run: x, inputs: [src.txt], outputs: [gen/data.txt]}\n"),
    )
    repo.write(
        "b.yaml",
        workflow(
            "b",
            "    - {name: use, run: x, inputs: [gen/data.txt], outputs: [used.txt]}\n"
            "    - {name: after, run: x, needs: [use]}\n"
            "    - {name: alone, run: x}\n",
        ),
    )
    m = load(repo.path)
    f = EventFilter(m.config, m, list(m.workflows.values()))
    gen = f.classify("src.txt")
    assert gen == Hit(INPUT, frozenset({("a", "gen")}))
    assert f.affects(gen, [("b", "use")])
    assert f.affects(gen, [("b", "after")])
    assert not f.affects(gen, [("b", "alone")])
    assert not f.affects(Hit(INPUT, frozenset({("b", "use")})), [("a", "gen")])


def test_filter_reads_paths_as_the_plan_does(repo: Repo) -> None:
    """Exclusions are not inputs; a nested ``.orch/`` folder is an ordinary folder to a
    pattern that names it and is not entered by ``**``; the root ``.orch/`` is never an
    input; a path spelled exactly as a pattern with glob characters is that file."""
    setup(
        repo,
        workflow(
            "w",
            """\
    - name: build
      run: "true"
      inputs: ["src/**", "!src/gen/**", "!src/*.bak"]
    - name: conf
      run: "true"
      inputs: ["sub/*/.orch/config.yaml", "lib/.orch/", "in[1].txt"]
""",
        ),
    )
    m = load(repo.path)
    f = EventFilter(m.config, m, list(m.workflows.values()))
    build = Hit(INPUT, frozenset({("w", "build")}))
    conf = Hit(INPUT, frozenset({("w", "conf")}))
    assert f.classify("src/a.c") == build
    assert f.classify("src/gen/x.c") is None
    assert f.classify("src/a.bak") is None
    assert f.classify("src/x/.orch/state.txt") is None  # ** does not enter .orch/
    assert f.classify("sub/x/.orch/config.yaml") == conf
    assert f.classify("lib/.orch/a.txt") == conf
    assert f.classify("lib/.orch/__pycache__/a.pyc") is None
    assert f.classify("in[1].txt") == conf
    assert f.classify("in1.txt") == conf
    assert f.classify(".orch/state.db") is None


def test_edit_to_an_excluded_input_runs_nothing(repo: Repo, start) -> None:
    setup(
        repo,
        workflow(
            "demo",
            """\
    - name: copy
      run: "true"
      inputs: ["src/**", "!src/gen/"]
    - name: nested
      run: "true"
      inputs: ["sub/*/.orch/config.yaml"]
""",
        ),
    )
    repo.write("src/gen/x.txt", "gen\n")
    repo.write("sub/x/.orch/config.yaml", "x: 1\n")
    w = start()
    assert w.cycle().ran == 2
    repo.write("src/gen/x.txt", "regenerated\n")
    repo.write("sub/x/.orch/config.yaml", "x: 2\n")  # the sentinel: a nested .orch/ named
    c = w.cycle()
    assert c.changed == ["sub/x/.orch/config.yaml"] and c.ran == 1


def test_cycle_line_shows_changed_paths_escaped() -> None:
    """A changed file named with a newline cannot forge a line of its own (a GitHub Actions
    command) in watch's output: the path is shown, escaped."""
    from runner.watch.loop import Cycle

    line = Cycle(2, ["src/x\n::error file=w.yaml::forged", "src/\x1b[2Jy"]).summary()
    assert "\n" not in line and "\x1b" not in line
    assert "src/x\\n::error file=w.yaml::forged" in line and "src/\\x1b[2Jy" in line


def _inotify_fds(pid: int) -> int:
    """How many inotify instances process ``pid`` holds (Linux: anon_inode:inotify)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc (Linux)")
def test_poll_uses_watchdogs_polling_observer_and_still_sees_edits(repo: Repo, start) -> None:
    """--poll: no kernel notification at all (none come on NFS, SMB, many container
    mounts), yet an edit, a new file and a deletion each start a cycle."""
    setup(repo)
    w = start("--poll", "--poll-interval", "0.2")
    w.expect(r"^watch: watching .*; polling every 0\.2s\)")
    c = w.cycle()
    assert (c.n, c.ran) == (1, 2)
    assert _inotify_fds(w.proc.pid) == 0
    (repo.path / "src/a.txt").write_text("two, longer\n")
    c = w.cycle()
    assert (c.changed, c.ran) == (["src/a.txt"], 1)
    assert repo.read("out/a.txt") == "two, longer\n"
    (repo.path / "src/b.txt").write_text("new\n")
    assert w.cycle().changed == ["src/b.txt"]
    (repo.path / "src/b.txt").unlink()
    assert w.cycle().changed == ["src/b.txt"]
    assert w.interrupt() == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc (Linux)")
def test_without_poll_the_kernel_notifies(repo: Repo, start) -> None:
    """The other side of the test above: the default observer is inotify's, so counting
    inotify descriptors tells the two apart."""
    setup(repo)
    w = start()
    w.cycle()
    assert _inotify_fds(w.proc.pid) >= 1
    p = repo.orch("watch", "--poll-interval", "0")
    assert p.returncode == 2 and "--poll-interval" in p.stderr
