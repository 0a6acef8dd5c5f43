"""The executor edge: real subprocesses, real process trees, real log files."""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from runner.execute import proctree
from runner.execute.local import Cancel, Masker, TaskResult, TaskSpec, run_task

PY = shlex.quote(sys.executable)
GRACE = 0.3


def make_spec(tmp_path: Path, command: str | list[str], **kw) -> TaskSpec:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LC_ALL": "C"}
    env.update(kw.pop("env", {}))
    kw.setdefault("grace", GRACE)
    return TaskSpec(
        key="wf/step",
        command=command,
        cwd=tmp_path,
        env=env,
        log_path=tmp_path / "logs" / "t.log",
        **kw,
    )


def gone(pid: int) -> bool:
    """No such process, or a zombie (init here need not reap: a zombie runs nothing)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def log_text(result_spec: TaskSpec) -> str:
    return result_spec.log_path.read_text()


# A grandchild that ignores SIGTERM, and a daemon that called setsid, ignores SIGTERM
# and whose parent exited (re-parented to init: neither in the group nor a descendant).
SPAWN_STUBBORN = f"""
sh -c 'trap "" TERM; echo $$ > ignorer.pid; exec sleep 30' &
( {PY} -c 'import os, signal
os.setsid()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("daemon.pid.tmp", "w").write(str(os.getpid()))
os.rename("daemon.pid.tmp", "daemon.pid")
os.execvp("sleep", ["sleep", "30"])' & )
while [ ! -s ignorer.pid ] || [ ! -e daemon.pid ]; do sleep 0.01; done
"""


# --- running ------------------------------------------------------------------------


def test_success_with_outputs_and_log_frame(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path,
        'echo hello; echo "wheel=dist/a.whl" >> "$ORCH_OUTPUT"; echo "$ORCH_OUTPUT" > where',
    )
    r = run_task(spec)
    assert (r.status, r.exit_code, r.output_error) == ("succeeded", 0, None)
    assert r.outputs == {"wheel": "dist/a.whl"}
    assert r.pid is not None and r.started <= r.ended
    assert not Path((tmp_path / "where").read_text().strip()).exists()  # temp file removed
    lines = log_text(spec).splitlines()
    assert lines[0].startswith("# orch: wf/step started ")
    assert lines[0].endswith(": " + spec.command)
    assert lines[1] == "hello"
    assert lines[-1].startswith("# orch: exit 0 after ")
    assert r.log_tail == ["hello"]


def test_failure_keeps_the_exit_code(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "echo oops >&2; exit 3")
    r = run_task(spec)
    assert (r.status, r.exit_code) == ("failed", 3)
    assert r.outputs == {}
    assert r.log_tail == ["oops"]  # stderr is in the log too
    assert log_text(spec).splitlines()[-1].startswith("# orch: exit 3 after ")


def test_killed_by_a_signal_not_ours_is_a_negative_exit_code(tmp_path: Path) -> None:
    r = run_task(make_spec(tmp_path, "kill -KILL $$"))
    assert (r.status, r.exit_code) == ("failed", -9)


def test_argv_list_is_not_split_or_expanded(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path, [sys.executable, "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME"]
    )
    r = run_task(spec)
    assert r.status == "succeeded"
    assert r.log_tail == ["['a b', '$HOME']"]


def test_cwd_and_the_given_env_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_TEST_LEAK", "leaked")
    (tmp_path / "sub").mkdir()
    spec = make_spec(tmp_path, 'pwd; echo "foo=$FOO leak=$ORCH_TEST_LEAK"', env={"FOO": "bar"})
    spec.cwd = tmp_path / "sub"
    r = run_task(spec)
    assert r.log_tail == [str(tmp_path / "sub"), "foo=bar leak="]


def test_a_program_that_cannot_start_fails_cleanly(tmp_path: Path) -> None:
    r = run_task(make_spec(tmp_path, [str(tmp_path / "no-such-program")]))
    assert (r.status, r.exit_code, r.pid) == ("failed", None, None)
    assert "could not start" in r.log_tail[-1]


def test_echo_streams_each_line_without_newline(tmp_path: Path) -> None:
    seen: list[str] = []
    spec = make_spec(tmp_path, "echo one; echo two >&2; printf 'no newline'", echo=seen.append)
    r = run_task(spec)
    assert r.status == "succeeded"
    assert seen == ["one", "two", "no newline"]
    assert log_text(spec).splitlines()[1:4] == ["one", "two", "no newline"]


def test_log_tail_is_the_last_twenty_lines(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, 'i=1; while [ $i -le 30 ]; do echo "line $i"; i=$((i+1)); done')
    r = run_task(spec)
    assert r.log_tail == [f"line {i}" for i in range(11, 31)]


# --- outputs --------------------------------------------------------------------------


def test_a_bad_output_file_fails_the_task_with_the_message(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, 'echo "a=1" >> "$ORCH_OUTPUT"; echo "a=2" >> "$ORCH_OUTPUT"')
    r = run_task(spec)
    assert (r.status, r.exit_code, r.outputs) == ("failed", 0, {})
    assert r.output_error is not None and r.output_error.startswith("$ORCH_OUTPUT line 2:")
    assert "'a'" in r.output_error
    assert any("$ORCH_OUTPUT rejected" in line for line in r.log_tail)


def test_outputs_of_a_failed_step_are_not_used(tmp_path: Path) -> None:
    r = run_task(make_spec(tmp_path, 'echo "a=1" >> "$ORCH_OUTPUT"; exit 1'))
    assert (r.status, r.outputs, r.output_error) == ("failed", {}, None)


# --- masking --------------------------------------------------------------------------


def test_secrets_never_reach_the_log_or_echo(tmp_path: Path) -> None:
    secret = "hunter2-Zq9"
    multi = "line-one-Xy\nline-two-Xy"
    seen: list[str] = []
    command = (
        f"echo 'cli {secret}'; printf 'hunt'; sleep 0.05; printf 'er2-Zq9\\n'; "
        'echo "env $TOKEN"; echo "only line-two-Xy here"'
    )
    spec = make_spec(
        tmp_path, command, env={"TOKEN": secret}, mask=(secret, multi), echo=seen.append
    )
    r = run_task(spec)
    assert r.status == "succeeded"
    header, _, body = spec.log_path.read_bytes().partition(b"\n")
    for leaked in (secret, "line-one-Xy", "line-two-Xy"):
        assert leaked.encode() not in header + body
    for leaked in (secret, "line-one-Xy", "line-two-Xy", "hunt", "er2-Zq9"):
        assert leaked.encode() not in body
        assert not any(leaked in line for line in seen + r.log_tail)
    assert seen == ["cli ***", "***", "env ***", "only *** here"]
    masked = command.replace(secret, "***").replace("line-two-Xy", "***")
    assert header.decode().endswith(": " + masked)


@pytest.mark.parametrize("secrets", [("abc",), ("abc", "abcdef"), ("secret", "cret-x")])
def test_masker_catches_secrets_split_at_every_point(secrets: tuple[str, ...]) -> None:
    text = b"x" + b"--".join(s.encode() for s in secrets) + b"-tail-" + secrets[0].encode() + b"y"
    whole = Masker(secrets).mask(text)
    for secret in secrets:
        assert secret.encode() not in whole
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            m = Masker(secrets)
            streamed = m.feed(text[:i]) + m.feed(text[i:j]) + m.feed(text[j:]) + m.flush()
            assert streamed == whole, (i, j)


def test_empty_mask_values_are_ignored(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "echo plain", mask=("",))
    r = run_task(spec)
    assert r.log_tail == ["plain"]


# --- ending process trees -----------------------------------------------------------


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, SPAWN_STUBBORN + "echo ready; sleep 30", timeout=1.0)
    r = run_task(spec)
    assert (r.status, r.exit_code) == ("timed_out", None)
    assert "ready" in r.log_tail  # the tree was complete when the timeout hit
    ignorer, daemon = read_pid(tmp_path / "ignorer.pid"), read_pid(tmp_path / "daemon.pid")
    assert r.pid is not None
    for pid in (r.pid, ignorer, daemon):
        assert wait_gone(pid), f"process {pid} survived the timeout"
    assert any(line.startswith("# orch: timed out after 1.00s") for line in r.log_tail)
    assert log_text(spec).splitlines()[-1].startswith("# orch: timed_out after ")


def _cancel_when_ready(cancel: Cancel, status: str, ready: threading.Event) -> threading.Thread:
    def go() -> None:
        if ready.wait(10):
            cancel.cancel(status)

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_cancel_from_another_thread(tmp_path: Path) -> None:
    ready = threading.Event()
    cancel = Cancel()
    echo = lambda line: ready.set() if line == "ready" else None  # noqa: E731
    thread = _cancel_when_ready(cancel, "cancelled", ready)
    r = run_task(make_spec(tmp_path, "echo ready; sleep 30", echo=echo), cancel)
    thread.join()
    assert (r.status, r.exit_code) == ("cancelled", None)
    assert cancel.requested == "cancelled"
    assert r.pid is not None and wait_gone(r.pid)


def test_interrupt_records_interrupted_and_escalates_to_sigkill(tmp_path: Path) -> None:
    ready = threading.Event()
    cancel = Cancel()
    echo = lambda line: ready.set() if line == "ready" else None  # noqa: E731
    thread = _cancel_when_ready(cancel, "interrupted", ready)
    command = "trap '' TERM; " + SPAWN_STUBBORN + "echo ready; sleep 30"
    r = run_task(make_spec(tmp_path, command, echo=echo), cancel)
    thread.join()
    assert (r.status, r.exit_code) == ("interrupted", None)
    for pid in (r.pid, read_pid(tmp_path / "ignorer.pid"), read_pid(tmp_path / "daemon.pid")):
        assert pid is not None and wait_gone(pid)


def test_cancel_before_start_runs_nothing(tmp_path: Path) -> None:
    cancel = Cancel()
    cancel.cancel()
    cancel.cancel("interrupted")  # the first request wins
    r = run_task(make_spec(tmp_path, "touch ran"), cancel)
    assert (r.status, r.exit_code, r.pid) == ("cancelled", None, None)
    assert not (tmp_path / "ran").exists()


def test_cancel_rejects_an_unknown_status() -> None:
    with pytest.raises(ValueError):
        Cancel().cancel("failed")


def test_leftover_background_processes_are_swept_after_a_normal_exit(tmp_path: Path) -> None:
    command = SPAWN_STUBBORN + "sleep 30 & echo $! > bg.pid; echo done"
    spec = make_spec(tmp_path, command)
    r = run_task(spec)
    assert (r.status, r.exit_code) == ("succeeded", 0)
    leftovers = {read_pid(tmp_path / n) for n in ("ignorer.pid", "daemon.pid", "bg.pid")}
    assert leftovers <= set(r.swept)
    for pid in leftovers:
        assert wait_gone(pid), f"leftover {pid} still runs"
    assert any("background process" in line for line in r.log_tail)


def test_tree_processes_finds_token_and_session_members(tmp_path: Path) -> None:
    token = proctree.new_token()
    started = time.monotonic()
    root = subprocess.Popen(["sleep", "30"], start_new_session=True)
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
    marked = subprocess.Popen(
        ["sleep", "30"], start_new_session=True, env={**os.environ, proctree.TOKEN_VAR: token}
    )
    try:
        # a process that was just spawned can take a moment to show in /proc on a loaded
        # machine: look again until the scan sees it, then hold the scan to exactly the two
        deadline = time.monotonic() + 5
        while True:
            found = {p.pid for p in proctree.tree_processes(root.pid, token, started=started)}
            if found == {root.pid, marked.pid} or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert found == {root.pid, marked.pid}
        assert {p.pid for p in proctree.tree_processes(root.pid, None)} == {root.pid}
        assert proctree.kill_tree(root.pid, token, GRACE, started=started) == [marked.pid]
        assert wait_gone(root.pid) and wait_gone(marked.pid)
        assert not gone(stranger.pid)
    finally:
        for p in (root, stranger, marked):
            p.kill()
            p.wait()


# --- metrics and concurrency --------------------------------------------------------


def test_cpu_time_counts_a_grandchild(tmp_path: Path) -> None:
    burn = "import time\nwhile time.process_time() < 0.3: pass"
    r = run_task(make_spec(tmp_path, f"{PY} -c {shlex.quote(burn)}; true"))
    assert r.status == "succeeded"
    assert r.cpu_time >= 0.3


def test_peak_rss_sees_a_big_tree(tmp_path: Path) -> None:
    hog = "import time\nb = b'x' * (200 << 20)\nprint('held', flush=True)\ntime.sleep(0.3)"
    r = run_task(make_spec(tmp_path, f"{PY} -c {shlex.quote(hog)}", sample_interval=0.05))
    assert r.status == "succeeded"
    assert r.peak_rss >= 200 << 20


def test_peak_rss_of_a_tiny_task_is_not_our_own(tmp_path: Path) -> None:
    """The kernel carries our own peak RSS into a child's ru_maxrss across exec."""
    ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    r = run_task(make_spec(tmp_path, ["true"]))
    assert r.peak_rss < ours


def test_tasks_in_parallel_threads_do_not_mix(tmp_path: Path) -> None:
    def one(i: int) -> TaskResult:
        spec = make_spec(tmp_path, f'echo "n={i}" >> "$ORCH_OUTPUT"; echo task {i}')
        spec.log_path = tmp_path / "logs" / f"{i}.log"
        return run_task(spec)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(16)))
    for i, r in enumerate(results):
        assert (r.status, r.outputs, r.log_tail) == ("succeeded", {"n": str(i)}, [f"task {i}"])


def test_an_echo_that_raises_still_leaves_nothing_running(tmp_path: Path) -> None:
    def echo(line: str) -> None:
        if line == "ready":
            raise RuntimeError("terminal gone")

    spec = make_spec(tmp_path, "sleep 30 & echo $! > bg.pid; echo ready; sleep 30", echo=echo)
    with pytest.raises(RuntimeError, match="terminal gone"):
        run_task(spec)
    assert wait_gone(read_pid(tmp_path / "bg.pid"))


def test_a_nul_in_the_command_fails_the_task(tmp_path: Path) -> None:
    r = run_task(make_spec(tmp_path, ["echo", "a\0b"]))
    assert (r.status, r.exit_code, r.pid) == ("failed", None, None)
    assert "could not start" in r.log_tail[-1]


@pytest.mark.parametrize(
    "shell",
    [None, ("/bin/sh", "-x"), ("bash", "-eo", "pipefail")],
    ids=["sh -e", "sh -x", "bash"],
)
def test_in_a_task_cgroup_a_run_string_starts_inside_it_as_written(
    tmp_path: Path, shell: tuple[str, ...] | None
) -> None:
    """The shell of a ``run`` string is in the task's cgroup before its first command, its
    ``$0`` and line numbers are the script's own, and a traced shell shows only the
    script (where orch may make cgroups; elsewhere the first check is all there is)."""
    from runner.execute import cgroups

    script = 'grep "^0::" /proc/$$/cgroup; echo "zero=$0"\necho second'
    spec = make_spec(tmp_path, script, shell=shell)
    res = run_task(spec)
    assert res.status == "succeeded", log_text(spec)
    text = log_text(spec)
    assert "zero=" + (shell or ("/bin/sh",))[0] in text
    if cgroups.base() is None:
        return
    assert f"/{cgroups.PREFIX}" in text
    if shell and "-x" in shell:
        assert "cgroup.procs" not in text
