"""plan/apply through the real CLI: only what changed or failed runs, and each says why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Repo, workflow

# src/a.txt -> copy -> mid/a.txt -> upper -> out/A.txt -> count (value) -> report
PIPE = workflow(
    "pipe",
    """\
    - name: copy
      run: mkdir -p mid && cp src/a.txt mid/a.txt && echo copied >> trace.log
      inputs: [src/a.txt]
      outputs: [mid/a.txt]
    - name: upper
      run: mkdir -p out && tr a-z A-Z < mid/a.txt > out/A.txt && echo upper >> trace.log
      inputs: [mid/a.txt]
      outputs: [out/A.txt]
    - name: count
      run: echo "chars=$(wc -c < out/A.txt | tr -d ' ')" >> "$ORCH_OUTPUT" && echo count >> trace.log
      inputs: [out/A.txt]
    - name: report
      run: echo "{{ steps.count.outputs.chars }} chars" > report.txt && echo report >> trace.log
      outputs: [report.txt]
    - name: other
      run: echo other >> trace.log
      inputs: [src/other.txt]
""",
)


def setup(repo: Repo) -> None:
    repo.write(".gitignore", "mid/\nout/\nreport.txt\ntrace.log\n")
    repo.write("wf.yaml", PIPE)
    repo.write("src/a.txt", "hello\n")
    repo.write("src/other.txt", "x\n")
    repo.commit("init")


def trace(repo: Repo) -> list[str]:
    lines = repo.read("trace.log").split() if repo.exists("trace.log") else []
    (repo.path / "trace.log").unlink(missing_ok=True)
    return lines


def test_first_apply_runs_all_second_none(repo: Repo) -> None:
    setup(repo)
    plan = repo.plan()
    assert {k[1]: v for k, v in plan.items()} == {
        s: ("run", ["never ran"]) for s in ("copy", "upper", "count", "report", "other")
    }
    r = repo.apply()
    assert r["ok"] and r["counts"] == {"succeeded": 5}
    assert sorted(trace(repo)) == ["copied", "count", "other", "report", "upper"]
    assert repo.read("report.txt") == "6 chars\n"
    assert all(a == "up-to-date" for a, _ in repo.plan().values())
    r = repo.apply()
    assert r["ran"] == [] and r["run_id"] is None
    assert trace(repo) == []


def test_input_edit_reruns_exactly_that_step_and_descendants(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    trace(repo)
    repo.write("src/a.txt", "hello world\n")
    plan = repo.plan()
    assert plan[("pipe", "copy")] == ("run", ["input changed: src/a.txt"])
    assert plan[("pipe", "upper")] == ("may-run", ["upstream will run: copy"])
    assert plan[("pipe", "other")] == ("up-to-date", [])
    r = repo.apply()
    assert r["ran"] == ["copy", "count", "report", "upper"]
    assert trace(repo) == ["copied", "upper", "count", "report"]
    assert repo.read("report.txt") == "12 chars\n"


def test_yaml_reformatting_reruns_nothing(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    text = repo.read("wf.yaml")
    reformatted = "# a comment\n" + text.replace(
        "metadata: {name: pipe}", "metadata:\n  name: pipe   # same\n"
    )
    reformatted = reformatted.replace(
        "      inputs: [src/other.txt]",
        "      inputs:\n        - src/other.txt\n      description: documented now\n      priority: 5\n",
    )
    repo.write("wf.yaml", reformatted, dedent=False)
    assert all(a == "up-to-date" for a, _ in repo.plan().values())
    assert repo.apply()["ran"] == []


def test_command_edit_reruns_that_step_naming_the_field(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    trace(repo)
    repo.write(
        "wf.yaml", repo.read("wf.yaml").replace("echo other >>", "echo other  >>"), dedent=False
    )
    assert repo.plan()[("pipe", "other")] == ("run", ["definition changed (run)"])
    assert repo.apply()["ran"] == ["other"]


def test_failure_blocks_descendants_and_fixed_reapply_runs_only_the_failed_part(repo: Repo) -> None:
    setup(repo)
    repo.write(
        "wf.yaml", PIPE.replace("tr a-z A-Z < mid/a.txt", "test -f go && tr a-z A-Z < mid/a.txt")
    )
    r = repo.apply()
    assert not r["ok"]
    st = {s: v["status"] for s, v in r["by_step"].items()}
    assert st == {
        "copy": "succeeded",
        "upper": "failed",
        "count": "blocked",
        "report": "blocked",
        "other": "succeeded",
    }
    assert r["by_step"]["upper"]["exit_code"] == 1
    p = repo.orch("apply")
    assert (
        p.returncode == 1
        and "pipe/upper: failed, exit 1" in p.stderr
        and "log: .orch/logs/" in p.stderr
    )
    plan = repo.plan()
    assert plan[("pipe", "upper")][1] == ["last run failed"]
    assert plan[("pipe", "count")][1] == ["blocked last time (an upstream step failed)"]
    trace(repo)
    repo.write("go", "")
    r = repo.apply()
    assert r["ok"] and r["ran"] == ["count", "report", "upper"]


def test_deleted_output_reruns_its_step_and_identical_output_stops_there(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    trace(repo)
    (repo.path / "out" / "A.txt").unlink()
    plan = repo.plan()
    assert plan[("pipe", "upper")] == ("run", ["output missing: out/A.txt"])
    assert plan[("pipe", "count")][0] in ("run", "may-run")
    r = repo.apply()
    assert r["by_step"]["upper"]["status"] == "succeeded"
    # count reads out/A.txt, regenerated byte-identical: early cutoff stops the ripple
    assert r["by_step"]["count"]["status"] == "up-to-date"
    assert r["by_step"]["report"]["status"] == "up-to-date"
    assert trace(repo) == ["upper"]


def test_modified_output_is_named(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    repo.write("report.txt", "tampered\n")
    assert repo.plan()[("pipe", "report")] == ("run", ["output modified: report.txt"])


def test_values_flow_and_hostile_values_arrive_literally(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: evil
      run: |
        cat >> "$ORCH_OUTPUT" <<'EOF'
        sub=$(touch pwned)
        semi=; rm -rf victim
        tick=`touch pwned2`
        jinja={{ '{{' }} 7*7 {{ '}}' }}
        quote=it's "quoted"
        EOF
    - name: use
      run: printf '%s\\n' {{ steps.evil.outputs.sub }} {{ steps.evil.outputs.semi }} {{ steps.evil.outputs.tick }} {{ steps.evil.outputs.jinja }} "{{ steps.evil.outputs.quote }}" > got.txt
""",
        ),
    )
    repo.write("victim/keep.txt", "precious\n")
    r = repo.apply()
    assert r["ok"], r
    assert repo.read("got.txt").splitlines() == [
        "$(touch pwned)",
        "; rm -rf victim",
        "`touch pwned2`",
        "{{ 7*7 }}",
        'it\'s "quoted"',
    ]
    assert not repo.exists("pwned") and not repo.exists("pwned2")
    assert repo.read("victim/keep.txt") == "precious\n"


def test_output_file_cannot_overwrite_a_key(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow("w", "    - name: a\n      run: printf 'k=1\\nk=2\\n' >> \"$ORCH_OUTPUT\"\n"),
    )
    r = repo.apply()
    assert r["by_step"]["a"]["status"] == "failed"
    assert "k" in r["by_step"]["a"]["message"] and "twice" in r["by_step"]["a"]["message"]


def test_when_false_is_skipped_and_declared_output_must_exist(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: maybe
      run: touch ran
      when: "{{ params.enabled }}"
    - name: liar
      run: "true"
      outputs: [promised.txt]
""",
            "  params: {enabled: false}\n",
        ),
    )
    r = repo.apply()
    assert r["by_step"]["maybe"]["status"] == "skipped" and not repo.exists("ran")
    assert r["by_step"]["liar"]["status"] == "failed"
    assert r["by_step"]["liar"]["message"] == "declared output not produced: promised.txt"
    assert repo.plan()[("w", "maybe")] == ("up-to-date", [])
    repo.write(
        "wf.yaml", repo.read("wf.yaml").replace("enabled: false", "enabled: true"), dedent=False
    )
    assert repo.plan()[("w", "maybe")] == (
        "run",
        ["definition changed (param enabled: false → true)"],
    )
    assert repo.apply()["by_step"]["maybe"]["status"] == "succeeded" and repo.exists("ran")


def test_param_change_reruns_only_steps_that_read_it(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - {name: a, run: 'echo {{ params.x }}'}\n    - {name: b, run: 'echo {{ params.y }}'}\n",
            "  params: {x: 1, y: 1}\n",
        ),
    )
    repo.apply()
    repo.write("wf.yaml", repo.read("wf.yaml").replace("x: 1", "x: 2"), dedent=False)
    plan = repo.plan()
    assert plan[("w", "a")] == ("run", ["definition changed (param x: 1 → 2)"])
    assert plan[("w", "b")] == ("up-to-date", [])


def test_force_dry_run_and_force_all(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    trace(repo)
    assert repo.plan("--force", "other")[("pipe", "other")] == ("run", ["forced"])
    p = repo.orch("apply", "--dry-run", "--force", "pipe/other")
    assert p.returncode == 0 and "will run: forced" in p.stdout and trace(repo) == []
    assert repo.apply("--force", "other")["ran"] == ["other"]
    assert len(repo.apply("--force-all")["ran"]) == 5
    p = repo.orch("apply", "--force", "nope")
    assert p.returncode == 1 and "--force nope: no such step" in p.stderr


def test_status_logs_history(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    status = repo.orch_json("status")
    rows = {s["step"]: s for s in status["steps"]}
    assert rows["copy"]["status"] == "succeeded" and rows["copy"]["reason"] == "never ran"
    assert rows["count"]["outputs"] == {"chars": "6"}
    p = repo.orch("logs", "pipe", "copy")
    assert p.returncode == 0 and p.stdout.startswith("# orch: pipe/copy started")
    hist = repo.orch_json("history")
    assert hist[0]["status"] == "succeeded" and len(hist[0]["tasks"]) == 5
    assert hist[0]["commit"] == repo.git("rev-parse", "HEAD").strip() and hist[0]["dirty"] is False
    p = repo.orch("logs", "pipe", "cpy")
    assert p.returncode == 1 and "did you mean 'copy'" in p.stderr


def test_input_edited_while_its_step_runs_is_not_recorded_up_to_date(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - name: slow\n      run: cat in.txt > out.txt; echo edited >> in.txt\n      inputs: [in.txt]\n      outputs: [out.txt]\n",
        ),
    )
    repo.write("in.txt", "v1\n")
    assert repo.apply()["ok"]
    assert repo.plan()[("w", "slow")] == ("run", ["input changed: in.txt"])


def test_same_tick_edit_is_not_hidden_by_the_hash_cache(tmp_path: Path) -> None:
    """Racy git: a file hashed in the same timestamp tick as its last write may be written
    again without its stat changing; such a hash must never be trusted from the cache."""
    from runner.manifests.hashing import Hasher
    from runner.store.state import State

    state = State(tmp_path / ".orch")
    f = tmp_path / "in.txt"
    f.write_text("aaaa\n")
    tick = time.time_ns()
    os.utime(f, ns=(tick, tick))  # written "now": the hash below falls in the same tick
    first = Hasher(tmp_path, state)
    h1 = first.file("in.txt")
    first.flush()
    f.write_text("bbbb\n")  # same size ...
    os.utime(f, ns=(tick, tick))  # ... and same mtime: stat cannot tell
    assert Hasher(tmp_path, state).file("in.txt") != h1
    state.close()


def test_hash_cache_is_used_for_files_not_touched_recently(tmp_path: Path) -> None:
    from runner.manifests.hashing import Hasher
    from runner.statkey import CLOCK_SLACK_NS
    from runner.store.state import State

    state = State(tmp_path / ".orch")
    f = tmp_path / "old.txt"
    f.write_text("v1\n")
    old = time.time_ns() - 10**10
    os.utime(f, ns=(old, old))
    time.sleep(2 * CLOCK_SLACK_NS / 1e9)  # the utime moved ctime: let it age out of the tick
    first = Hasher(tmp_path, state)
    h1 = first.file("old.txt")
    first.flush()
    assert state.hash_cache()["old.txt"][1] == h1
    f.write_text("v2\n")  # a real edit moves mtime: the cache entry no longer matches
    assert Hasher(tmp_path, state).file("old.txt") != h1
    state.close()


def test_kill_9_mid_run_then_apply_reruns_exactly_the_interrupted(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - {name: fast, run: echo fast >> trace.log}
    - {name: slow, run: 'echo $$ > slow.pid; echo start >> trace.log; sleep 30; echo end >> trace.log', needs: [fast]}
    - {name: after, run: echo after >> trace.log, needs: [slow]}
    - {name: side, run: echo side >> trace.log}
""",
        ),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-q", "-j", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while time.time() < deadline and "start" not in (
        repo.read("trace.log") if repo.exists("trace.log") else ""
    ):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "start" in repo.read("trace.log")
    orphan = int(repo.read("slow.pid"))
    assert _alive(orphan)  # its own session: the kill did not reach it
    plan = repo.plan()
    deadline = time.time() + 10
    while _alive(orphan) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(orphan), "the dead runner's task must be ended before anything re-runs it"
    assert plan[("w", "slow")] == ("run", ["interrupted"])
    assert plan[("w", "fast")] == ("up-to-date", []) and plan[("w", "side")] == ("up-to-date", [])
    assert plan[("w", "after")][0] == "run"
    slow = {s["step"]: s for s in repo.orch_json("status")["steps"]}["slow"]
    assert slow["status"] == "interrupted" and slow["duration"] >= 0
    hist = repo.orch_json("history")
    assert hist[0]["status"] == "interrupted"
    assert {t["step"]: t["status"] for t in hist[0]["tasks"]}["slow"] == "interrupted"
    repo.write("wf.yaml", repo.read("wf.yaml").replace("sleep 30", "sleep 0"), dedent=False)
    (repo.path / "trace.log").unlink()
    r = repo.apply()
    assert r["ok"] and r["ran"] == ["after", "slow"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_two_applies_at_once_never_run_a_step_twice(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - {name: once, run: 'echo run >> count.log; sleep 1'}\n    - {name: two, run: 'echo two >> count2.log', needs: [once]}\n",
        ),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert repo.read("count.log") == "run\n" and repo.read("count2.log") == "two\n"
    assert json.loads(outs[0][0])["ok"] and json.loads(outs[1][0])["ok"]


# a step that holds its claim until the test says (a fixed sleep can end first on a loaded
# machine, and the --no-wait apply would then run the step itself); bounded at 60 s
HOLD = (
    "touch started; i=0; while [ ! -e release ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
)


def test_no_wait_exits_1_naming_the_holder(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", f"    - {{name: hold, run: '{HOLD}'}}\n"))
    first = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while not repo.exists("started") and time.time() < deadline:
            time.sleep(0.05)
        p = repo.orch("apply", "--no-wait")
        assert p.returncode == 1
        assert "step w/hold is being run by another orch process" in p.stderr
    finally:
        (repo.path / "release").touch()
        first.kill()
        first.wait()


def test_corrupt_or_foreign_state_gives_a_way_out(repo: Repo) -> None:
    setup(repo)
    repo.apply()
    db = repo.path / ".orch" / "state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        (repo.path / ".orch" / extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not sqlite at all" * 100)
    p = repo.orch("plan")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "run 'orch state reset'" in p.stderr
    p = repo.orch("state", "reset")
    assert p.returncode == 0 and "state.db.bak-" in p.stdout
    assert list((repo.path / ".orch").glob("state.db.bak-*"))
    assert repo.plan()[("pipe", "copy")] == ("run", ["never ran"])


def test_foreign_sqlite_file_is_not_used(repo: Repo) -> None:
    import sqlite3

    setup(repo)
    (repo.path / ".orch").mkdir(exist_ok=True)
    conn = sqlite3.connect(repo.path / ".orch" / "state.db")
    conn.execute("CREATE TABLE mine (x)")
    conn.commit()
    conn.close()
    p = repo.orch("apply")
    assert p.returncode == 1 and "not an orch state file" in p.stderr
    conn = sqlite3.connect(repo.path / ".orch" / "state.db")
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("mine",)]  # untouched


def test_apply_runs_independent_steps_in_parallel(repo: Repo) -> None:
    # each waits (bounded) for the other to have started: only true parallelism finishes both
    wait_for = (
        "i=0; while [ ! -f {f} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; test -f {f}"
    )
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            f"    - {{name: a, run: 'touch a.started; {wait_for.format(f='b.started')}'}}\n"
            f"    - {{name: b, run: 'touch b.started; {wait_for.format(f='a.started')}'}}\n",
        ),
    )
    assert repo.apply("-j", "2")["ok"]


def test_git_hook_variables_are_not_inherited(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'env > env.txt'}\n"))
    r = repo.orch("apply", env={"GIT_INDEX_FILE": "/tmp/hook-index", "GIT_DIR": "/tmp/x"})
    assert r.returncode == 0, r.stderr
    env = repo.read("env.txt")
    assert "GIT_INDEX_FILE" not in env and "GIT_DIR=" not in env and "ORCH_STEP=a" in env


def test_unexpected_error_is_one_line_with_a_crash_log(repo: Repo, tmp_path: Path) -> None:
    # an orch state directory that is a file makes opening the state fail unexpectedly
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'true'}\n"))
    (repo.path / ".orch" / "state.db").mkdir()
    p = repo.orch("apply")
    assert p.returncode in (1, 3) and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_missing_log_file_is_a_clear_error(repo: Repo) -> None:
    import shutil

    repo.write("wf.yaml", workflow("w", "    - {name: a, run: echo hi}\n"))
    assert repo.apply()["ok"]
    shutil.rmtree(repo.path / ".orch" / "logs")
    p = repo.orch("logs", "w", "a")
    assert p.returncode == 1 and "the log is gone" in p.stderr and "Traceback" not in p.stderr


def test_history_tasks_and_system_verbs(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: echo hi}\n"))
    assert repo.apply()["ok"]
    p = repo.orch("history", "--tasks")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("STEP"))
    assert "CPU" in lines[header] and "PEAK RSS" in lines[header]
    assert lines[header + 1].split()[:3] == ["w/a", "1", "succeeded"]
    for verb in ("status", "metrics", "health"):
        p = repo.orch("system", verb)
        assert p.returncode == 0 and "Traceback" not in p.stderr, (verb, p.stderr)
    health = repo.orch_json("system", "health")["health"]
    assert health["ok"] and {c["name"] for c in health["checks"]} >= {"git", "state.db"}


HANDLERS = """\
  on:
    failure: [{run: "echo {{ workflow.name }} failed >> notify.log"}]
    success: [{run: "echo ok >> notify.log"}]
    always: [{run: "echo always >> notify.log"}]
"""


def test_on_handlers_run_for_failure_and_success(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'test -f go'}\n") + HANDLERS)
    assert not repo.apply()["ok"]
    assert repo.read("notify.log").split("\n")[:2] == ["w failed", "always"]
    (repo.path / "notify.log").unlink()
    repo.write("go", "")
    assert repo.apply()["ok"]
    assert repo.read("notify.log").split() == ["ok", "always"]
    (repo.path / "notify.log").unlink()
    assert repo.apply()["ran"] == [] and not repo.exists("notify.log")  # nothing ran: no handlers


def test_interrupted_apply_does_not_fire_failure_handlers(repo: Repo) -> None:
    repo.write(
        "wf.yaml", workflow("w", "    - {name: a, run: 'touch started; sleep 30'}\n") + HANDLERS
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while not repo.exists("started") and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert repo.read("notify.log").split() == ["always"]


def test_jobs_from_the_config_limit_parallelism(repo: Repo) -> None:
    excl = "mkdir held || exit 9; sleep 0.3; rmdir held"
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\njobs: 1\n")
    repo.write(
        "wf.yaml",
        workflow("w", f"    - {{name: a, run: '{excl}'}}\n    - {{name: b, run: '{excl}'}}\n"),
    )
    r = repo.apply()
    assert r["ok"], r


def test_a_refused_no_wait_apply_is_not_recorded_as_succeeded(repo: Repo) -> None:
    """Its step was not run, so its run did not succeed; nor do success handlers fire."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            f"    - {{name: hold, run: '{HOLD}'}}\n",
            extra="  on:\n    success: [{run: 'echo told >> success.log'}]\n",
        ),
    )
    repo.commit()
    first = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while not repo.exists("started") and time.time() < deadline:
            time.sleep(0.05)
        p = repo.orch("apply", "--no-wait")
        assert p.returncode == 1
        runs = repo.orch_json("history")
    finally:
        (repo.path / "release").touch()
        first.kill()
        first.wait()
    assert len(runs) == 2, runs
    assert runs[0]["status"] == "failed", runs[0]  # the newest: the refused one
    assert not repo.exists("success.log")


def test_a_refused_no_wait_apply_tells_its_failure_handlers(repo: Repo) -> None:
    """A refused run failed, so ``on: failure`` (and ``always``) fire as for any failed
    run, with ``workflow.status`` failed; ``success`` does not."""
    handlers = (
        "  on:\n"
        "    failure: [{run: 'echo {{ workflow.status }} >> failure.log'}]\n"
        "    success: [{run: 'echo told >> success.log'}]\n"
        "    always: [{run: 'echo always >> always.log'}]\n"
    )
    repo.write(
        "wf.yaml",
        workflow("w", f"    - {{name: hold, run: '{HOLD}'}}\n", extra=handlers),
    )
    repo.commit()
    first = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while not repo.exists("started") and time.time() < deadline:
            time.sleep(0.05)
        p = repo.orch("apply", "--no-wait")
        assert p.returncode == 1
        assert "another orch process" in p.stderr
        told = repo.read("failure.log") if repo.exists("failure.log") else ""
        always = repo.read("always.log") if repo.exists("always.log") else ""
    finally:
        (repo.path / "release").touch()
        first.kill()
        first.wait()
    assert told.split() == ["failed"]
    assert always.split() == ["always"]
    assert not repo.exists("success.log")
