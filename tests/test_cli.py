"""The command line's own rules: options shared by several verbs behave the same on each."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from tests.conftest import Repo, workflow

ROOT = Path(__file__).resolve().parent.parent

VERBS = [["apply"], ["run"], ["watch"], ["workflow", "run", "w"]]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v))
@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_bad_jobs_is_a_usage_error_on_every_verb(repo: Repo, verb: list[str], jobs: str) -> None:
    """-j below 1 (or not a number) is refused by the parser: exit 2, one line naming -j,
    nothing run and no state written."""
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "echo ran >> ran.log"}\n'))
    p = repo.orch(*verb, "-j", jobs, timeout=30)
    assert p.returncode == 2, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("orch: error:")]
    assert len(errors) == 1 and "-j/--jobs" in errors[0], p.stderr
    assert "internal error" not in p.stderr
    assert not repo.exists("ran.log")
    assert not repo.exists(".orch/state.db")


@pytest.mark.parametrize("verb", [v for v in VERBS if v != ["watch"]], ids=lambda v: " ".join(v))
def test_good_jobs_is_accepted(repo: Repo, verb: list[str]) -> None:
    """(watch runs until stopped, so it is left out here.)"""
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "echo ran >> ran.log"}\n'))
    p = repo.orch(*verb, "-j", "2", "-q", timeout=60)
    assert p.returncode == 0, p.stderr
    assert repo.read("ran.log") == "ran\n"


BAD_USAGE = [  # (argv, the verb whose --help the line points to)
    (["history", "-n", "-1"], "history"),
    (["history", "-n", "0"], "history"),
    (["history", "--limit", "ten"], "history"),
    (["task", "list", "-n", "0"], "task list"),
    (["task", "status", "0"], "task status"),
    (["task", "cancel", "-3"], "task cancel"),
    (["logs", "w", "s", "--run", "0"], "logs"),
    (["watch", "--debounce", "-1"], "watch"),
    (["watch", "--debounce", "inf"], "watch"),
    (["watch", "--debounce", "nan"], "watch"),
    (["plan", "-j", "1"], "plan"),  # an option the verb does not take
    (["task", "list", "--nope"], "task list"),
    (["frobnicate"], ""),
]


@pytest.mark.parametrize(("argv", "verb"), BAD_USAGE, ids=[" ".join(a) for a, _ in BAD_USAGE])
def test_usage_error_is_one_line_naming_the_help(repo: Repo, argv: list[str], verb: str) -> None:
    """A value out of range (or a verb or option that does not exist) is exit 2 with one
    line -- not argparse's usage block -- pointing at the verb's --help; nothing written."""
    p = repo.orch(*argv, timeout=30)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("orch: error: "), p.stderr
    assert lines[0].endswith(f"(see orch{' ' + verb if verb else ''} --help)"), lines[0]
    assert p.stdout == ""
    assert not repo.exists(".orch/state.db")


@pytest.mark.parametrize("argv", [a for a, _ in BAD_USAGE[:3]], ids=" ".join)
def test_usage_error_with_json_is_json_on_stdout(repo: Repo, argv: list[str]) -> None:
    p = repo.orch(*argv, "--json", timeout=30)
    assert p.returncode == 2, p.stderr
    data = json.loads(p.stdout)
    assert data["exit"] == 2 and "-n/--limit" in data["error"]
    assert len(p.stderr.splitlines()) == 1


def test_error_with_json_is_json_on_stdout_with_the_same_exit_code(repo: Repo) -> None:
    """An orch error (not usage) under --json: {"error", "exit"} on stdout, the line on
    stderr as always, and the exit code it has without --json."""
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "true"}\n'))
    plain = repo.orch("task", "status", "999")
    p = repo.orch("task", "status", "999", "--json")
    assert plain.returncode == p.returncode == 1
    data = json.loads(p.stdout)
    assert data["exit"] == 1 and "999" in data["error"]
    assert p.stderr == plain.stderr
    # a usage refusal raised by orch itself (not the parser) keeps exit 2
    repo.commit()
    p = repo.orch("plan", "--ref", "HEAD", "--force", "s", "--json")
    assert p.returncode == 2 and json.loads(p.stdout)["exit"] == 2


def test_manifest_errors_with_json_carry_their_diagnostics(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "true", bogus: 1}\n'))
    p = repo.orch("plan", "--json")
    assert p.returncode == 1, p.stderr
    data = json.loads(p.stdout)
    assert data["exit"] == 1
    [d] = data["diagnostics"]
    assert d["path"] == "wf.yaml" and d["line"] == 6 and "bogus" in d["message"]


def test_plan_detailed_exitcode_is_terraforms(repo: Repo) -> None:
    """0 nothing to do, 2 something would run, 1 any error -- a usage error included, so a
    mistyped flag in CI never reads as "changes"."""
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "echo ran >> ran.log"}\n'))
    assert repo.orch("plan").returncode == 0
    assert repo.orch("plan", "--detailed-exitcode").returncode == 2
    p = repo.orch("plan", "--detailed-exitcode", "--json")
    assert p.returncode == 2 and json.loads(p.stdout)["summary"]["run"] == 1
    assert not repo.exists("ran.log")  # plan runs nothing
    assert repo.orch("apply", "-q").returncode == 0
    assert repo.orch("plan", "--detailed-exitcode").returncode == 0
    assert repo.orch("plan", "--detailed-exitcode", "--force", "s").returncode == 2
    p = repo.orch("plan", "--detailed-exitcode", "--bogus")
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1
    p = repo.orch("plan", "--detailed-exitcode", "--json", "--bogus")
    assert p.returncode == 1 and json.loads(p.stdout)["exit"] == 1
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "true", bogus: 1}\n'))
    assert repo.orch("plan", "--detailed-exitcode").returncode == 1
    assert repo.orch("plan", "--bogus").returncode == 2  # without the flag: usage is 2


# a step that keeps writing (so orch writes too, and learns its reader left) and a step
# beside it that would finish only if the run went on
CHATTY = workflow(
    "w",
    '    - {name: a, run: "echo $$ > a.pid; for i in $(seq 600); do echo $i; sleep 0.05; done;'
    ' touch a.done"}\n'
    '    - {name: b, run: "echo $$ > b.pid; sleep 30; touch b.done"}\n',
)


@pytest.mark.parametrize("redirect", ["", "2>&1"], ids=["stdout", "stdout-and-stderr"])
def test_apply_into_a_closed_pipe_stops_in_order(repo: Repo, redirect: str) -> None:
    """``orch apply | head -1``: when the reader goes, the run stops as Ctrl-C stops it --
    every task's tree ended, its row closed ``interrupted`` (not ``running``, not a
    ``failed`` internal error), the run recorded -- and orch exits 141 (128 + SIGPIPE, as a
    shell reports a process its pipe ended) without a word."""
    repo.write("wf.yaml", CHATTY)
    orch = shlex.join([sys.executable, "-m", "runner", "-C", str(repo.path), "apply"])
    p = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {orch} {redirect} | head -1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 141, p.stderr
    assert len(p.stdout.splitlines()) == 1
    assert "rror" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    tasks = repo.orch_json("task", "list")
    assert tasks and {t["status"] for t in tasks} == {"interrupted"}, tasks
    [run] = repo.orch_json("history")
    assert run["status"] == "interrupted"
    for step in ("a", "b"):
        assert not repo.exists(f"{step}.done")
        if repo.exists(f"{step}.pid"):  # its shell is gone (ended, not left running)
            assert not _alive(int(repo.read(f"{step}.pid")))
    assert repo.plan() == {("w", "a"): ("run", ANY), ("w", "b"): ("run", ANY)}


def test_events_into_a_closed_pipe_leave_no_task_running(repo: Repo) -> None:
    """``apply --events - | head -3``: the pipe closes while the first task is being
    submitted (its ``task.started`` is the first write that fails), a race the run must
    win every time: no task row is left ``running`` after any of these runs."""
    repo.write("wf.yaml", workflow("w", "    - {name: s, run: 'echo hi'}\n"))
    orch = shlex.join(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "--force-all"]
    )
    for _ in range(8):
        p = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {orch} --events - | head -3"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode in (0, 141), p.stderr
        assert "Traceback" not in p.stderr, p.stderr
    running = [t for t in repo.orch_json("task", "list") if t["status"] == "running"]
    assert running == []
    assert all(r["status"] != "running" for r in repo.orch_json("history"))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _verbs(parser: Any = None, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every verb of the real parser, as (words, its parser), leaves only."""
    import argparse

    from runner.cli.main import build_parser

    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    out = []
    for name, sub in subs[0].choices.items():
        out += _verbs(sub, (*path, name))
    return out


def test_every_verb_but_the_long_running_ones_takes_json() -> None:
    """mcp speaks JSON-RPC, ui serves web pages and completion prints a shell script;
    watch prints a JSON object per cycle."""
    lacking = [
        " ".join(words)
        for words, p in _verbs()
        if words not in (("mcp",), ("ui",), ("completion",))
        and "--json" not in [o for a in p._actions for o in a.option_strings]
    ]
    assert lacking == []


def test_json_of_the_verbs_that_act(repo: Repo) -> None:
    """init, graph, logs, state reset, task cancel, workflow/project create, archive and
    restore: one JSON document each on stdout, the same exit code as the text."""
    r = Repo(repo.path.parent / "fresh")
    r.path.mkdir()
    subprocess.run(["git", "init", "-q", str(r.path)], check=True)
    data = r.orch_json("init")
    assert data["created"] == [".orch/config.yaml", ".orch/.gitignore"]
    assert r.orch_json("init")["created"] == []

    repo.write("wf.yaml", workflow("w", STEPS_AB))
    data = repo.orch_json("graph", "w")
    assert data == {
        "workflow": "w",
        "steps": [
            {"name": "a", "upstream": []},
            {"name": "b", "upstream": [{"step": "a", "kinds": ["needs"]}]},
        ],
    }
    assert repo.orch("apply", "-q").returncode == 0
    data = repo.orch_json("logs", "w", "b")
    assert data["step"] == "b" and "hello from b" in data["log"]
    assert data["log"] == Path(data["path"]).read_text()

    [done] = [t for t in repo.orch_json("task", "list") if t["step"] == "a"]
    p = repo.orch("task", "cancel", str(done["id"]), "--json")
    assert p.returncode == 1 and "not running" in json.loads(p.stdout)["error"]

    data = repo.orch_json("workflow", "create", "d", "--template", "data-pipeline", "--path", "d")
    assert data["kind"] == "workflow" and data["workflows"] == ["d"] and data["files"]
    assert all(repo.exists(f) for f in data["files"])
    data = repo.orch_json("project", "create", "web", "--template", "web-app")
    assert data["kind"] == "project" and data["name"] == "web"
    repo.commit()
    data = repo.orch_json("project", "archive", "web")
    assert data["name"] == "web" and data["files"] > 0 and not repo.exists("web")
    data = repo.orch_json("project", "restore", "web")
    assert data["name"] == "web" and repo.exists("web")

    moved = repo.orch_json("state", "reset")["moved_to"]
    assert moved and Path(moved).exists() and not repo.exists(".orch/state.db")
    assert repo.orch_json("state", "reset") == {"moved_to": None}


STEPS_AB = '    - {name: a, run: "echo a"}\n    - {name: b, needs: [a], run: "echo hello from b"}\n'


def _complete(repo: Repo, line: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end), through the script orch
    completion bash prints, sourced into a real bash."""
    words = line.split(" ")
    script = (
        'source <("$@" completion bash) || exit 9\n'
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); "
        f"COMP_CWORD={len(words) - 1}; COMP_LINE={shlex.quote(line)}; COMP_POINT={len(line)}\n"
        '_shtab_orch; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    p = subprocess.run(
        ["bash", "-c", script, "bash", sys.executable, "-m", "runner"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=repo.path,
    )
    assert p.returncode == 0, p.stderr
    return [w for w in p.stdout.split("\n") if w]


def test_bash_completion_is_generated_from_the_parser(repo: Repo) -> None:
    """Verbs, sub-verbs and options complete in a real bash; a verb added to the parser
    is offered without touching the completion code."""
    from runner.cli.main import build_parser

    verbs = {w[0] for w, _ in _verbs(build_parser())}
    assert set(_complete(repo, "orch ")) >= verbs
    assert _complete(repo, "orch ap") == ["apply"]
    assert sorted(_complete(repo, "orch task ")) == ["cancel", "list", "status"]
    assert "--detailed-exitcode" in _complete(repo, "orch plan --de")
    assert _complete(repo, "orch history --li") == ["--limit"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_name_every_verb(repo: Repo, shell: str) -> None:
    p = repo.orch("completion", shell)
    assert p.returncode == 0, p.stderr
    for words, _ in _verbs():
        assert all(w in p.stdout for w in words), words
    assert "detailed-exitcode" in p.stdout  # fish spells options without the dashes


def test_completion_without_shtab_says_how_to_install_it(repo: Repo, tmp_path: Path) -> None:
    """The optional extra missing: one line with the pip install line, exit 1."""
    blocker = tmp_path / "no-shtab"
    (blocker / "shtab").mkdir(parents=True)
    (blocker / "shtab" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    p = repo.orch("completion", "bash", env=env)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.splitlines() == [
        "orch: orch completion needs shtab: pip install 'orch-gitops[completion]'"
    ]
    assert repo.orch("completion", "tcsh").returncode == 2


def test_validate_json_errors_have_the_common_keys(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", '    - {name: s, run: "true", bogus: 1}\n'))
    p = repo.orch("validate", "--json")
    assert p.returncode == 1
    data = json.loads(p.stdout)
    assert data["exit"] == 1 and data["error"] and data["ok"] is False
    assert [e["path"] for e in data["errors"]] == ["wf.yaml"]


def test_watch_into_a_closed_pipe_stops_in_order(repo: Repo) -> None:
    """``orch watch | head``: the same orderly stop as apply's -- no task left running or
    failed by the pipe, exit 141."""
    repo.write("wf.yaml", CHATTY)
    orch = shlex.join([sys.executable, "-m", "runner", "-C", str(repo.path), "watch"])
    p = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {orch} | head -5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 141, p.stderr
    assert "rror" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    tasks = repo.orch_json("task", "list")
    assert tasks and {t["status"] for t in tasks} == {"interrupted"}, tasks
    for step in ("a", "b"):
        assert not repo.exists(f"{step}.done")
        if repo.exists(f"{step}.pid"):
            assert not _alive(int(repo.read(f"{step}.pid")))


def test_status_of_a_running_step_shows_its_current_task_not_the_last_run(repo: Repo) -> None:
    """The step record keeps the previous run's end and reason while a new task runs."""
    import time

    run = "[ -e fail ] && exit 3; touch started; while [ ! -e go ]; do sleep 0.05; done"
    repo.write("wf.yaml", workflow("w", f"    - name: slow\n      run: {json.dumps(run)}\n"))
    repo.write(".gitignore", "fail\nstarted\ngo\n")
    repo.commit()
    repo.write("fail", "")
    assert repo.orch("apply").returncode == 1  # a record with an end and a reason
    (repo.path / "fail").unlink()
    before = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "--force-all", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not repo.exists("started"):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        [row] = repo.orch_json("status")["steps"]
        [line] = repo.orch("status").stdout.splitlines()[1:]
    finally:
        repo.write("go", "")
        proc.wait(timeout=60)
    assert row["status"] == "running"
    assert row["started"] >= before and row["ended"] is None
    assert row["duration"] is not None and row["duration"] >= 0
    assert row["message"] is None
    assert "-" not in line.split()[4] and "exit" not in line  # TOOK; no stale WHY


def test_version_into_a_closed_pipe_is_quiet(repo: Repo) -> None:
    """``orch --version | true``: the reader is gone before orch writes; no traceback
    (every verb's broken pipe is quiet; --version takes a path of its own)."""
    read, write = os.pipe()
    os.close(read)
    try:
        p = subprocess.run(
            [sys.executable, "-m", "runner", "--version"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert (p.returncode, p.stderr) == (0, "")
