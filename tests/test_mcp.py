"""``orch mcp``: a real server subprocess, driven by the MCP SDK's own stdio client.

Starting a server costs about a second (importing the SDK), so the fast tests share one
server over one repository; each uses workflows of its own and leaves the manifests as it
found them. Hanging up mid-apply needs a server of its own and is marked slow.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GIT_ENV, Repo, workflow

TOOLS = {
    "validate",
    "plan",
    "apply",
    "status",
    "history",
    "logs",
    "graph",
    "workflow_list",
    "explain",
    "execute_workflow",
    "execute_task",
    "create_project",
    "manage_project",
    "get_system_status",
    "get_cache_status",
}
RUNS = {"apply", "execute_workflow", "execute_task"}  # run the manifests' commands

DEMO = workflow(
    "demo",
    """\
    - name: build
      run: mkdir -p out && tr a-z A-Z < src/a.txt > out/A.txt && echo built it
      inputs: [src/a.txt]
      outputs: [out/A.txt]
    - name: count
      run: echo "chars=$(wc -c < out/A.txt | tr -d ' ')" >> "$ORCH_OUTPUT"
      inputs: [out/A.txt]
""",
    # The handler inherits the server's stdin: it must read EOF, not the agent's requests.
    extra='  on:\n    success: [{run: "cat > handler.txt"}]\n',
)
BROKEN = workflow(
    "broken",
    """\
    - name: fail
      run: echo boom >&2; exit 3
""",
)
# Runs until the test creates gate.go (or a minute passes).
GATE = workflow(
    "gate",
    """\
    - name: wait
      run: echo $$ > gate.pid; for i in $(seq 3000); do [ -f gate.go ] && exit 0; sleep 0.02; done; exit 1
""",
)
SLOW = workflow(
    "slow",
    """\
    - name: sleep
      run: echo $$ > step.pid; exec sleep 60
""",
)


def _server_params(repo: Path, cwd: Path) -> Any:
    from mcp import StdioServerParameters

    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "runner", "-C", str(repo), "mcp"],
        env=dict(os.environ),  # the isolated HOME and git identity
        cwd=str(cwd),  # not the repository: the root comes from -C alone
    )


@contextlib.asynccontextmanager
async def _connect(repo: Path, cwd: Path) -> AsyncIterator[Any]:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    with open(cwd / "server.err", "w") as errlog:
        async with (
            stdio_client(_server_params(repo, cwd), errlog=errlog) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            yield session


async def _call(session: Any, tool: str, args: dict[str, Any]) -> tuple[bool, Any]:
    """(is_error, the tool's JSON answer or the error text), within a deadline."""
    import anyio

    with anyio.fail_after(60):
        res = await session.call_tool(tool, args)
    is_error = getattr(res, "is_error", None)  # mcp 2
    if is_error is None:
        is_error = res.isError  # mcp 1
    text = "\n".join(c.text for c in res.content if getattr(c, "type", "") == "text")
    return bool(is_error), (text if is_error else json.loads(text))


async def _call_with_progress(
    session: Any, tool: str, args: dict[str, Any]
) -> tuple[Any, list[tuple[float, str | None]]]:
    """The tool's JSON answer, and every progress notification (progress, message) the
    call got: the SDK sends our progressToken because a callback is given."""
    import anyio

    got: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        got.append((progress, message))

    with anyio.fail_after(60):
        res = await session.call_tool(tool, args, progress_callback=on_progress)
    text = "\n".join(c.text for c in res.content if getattr(c, "type", "") == "text")
    return json.loads(text), got


class Server:
    """A running ``orch mcp`` and its client session, called synchronously."""

    def __init__(self, portal: Any, session: Any, repo: Repo, errlog: Path):
        self.portal, self.session, self.repo, self.errlog = portal, session, repo, errlog

    def call(self, tool: str, **args: Any) -> tuple[bool, Any]:
        try:
            return self.portal.call(functools.partial(_call, self.session, tool, args))
        except Exception as e:  # the transport, not the tool: show what the server said
            raise AssertionError(f"{tool}: {e!r}; server stderr:\n{self.errlog.read_text()}") from e

    def ok(self, tool: str, **args: Any) -> Any:
        is_error, data = self.call(tool, **args)
        assert not is_error, data
        return data

    def error(self, tool: str, **args: Any) -> str:
        is_error, data = self.call(tool, **args)
        assert is_error, data
        return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("mcp")
    from anyio.from_thread import start_blocking_portal

    base = tmp_path_factory.mktemp("mcp")
    with pytest.MonkeyPatch.context() as mp:  # the function-scoped isolation, for the module
        mp.setenv("HOME", str(base / "home"))
        mp.setenv("GIT_CONFIG_GLOBAL", str(base / "home" / ".gitconfig"))
        mp.setenv("ORCH_NO_CACHE", "1")  # as conftest's isolation: steps run, not restored
        for k, v in GIT_ENV.items():
            mp.setenv(k, v)
        repo = Repo(base / "repo")
        repo.path.mkdir()
        repo.git("init", "-q", "-b", "main")
        repo.write(".orch/config.yaml", 'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\n')
        repo.write(".orch/.gitignore", "*\n!config.yaml\n!.gitignore\n")
        repo.write(".gitignore", "out/\nhandler.txt\ngate.pid\ngate.go\n")
        repo.write("demo.yaml", DEMO)
        repo.write("broken.yaml", BROKEN)
        repo.write("gate.yaml", GATE)
        repo.write("src/a.txt", "hello\n")
        repo.commit("init")
        (base / "outside.yaml").write_text("apiVersion: orch/v1\n")
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(_connect(repo.path, base)) as session,
        ):
            yield Server(portal, session, repo, base / "server.err")


def test_lists_every_tool(server: Server) -> None:
    tools = server.portal.call(server.session.list_tools)
    assert {t.name for t in tools.tools} == TOOLS


def test_validate_plan_apply_status_explain(server: Server) -> None:
    repo = server.repo
    v = server.ok("validate")
    assert (v["ok"], v["workflows"], v["steps"]) == (True, ["broken", "demo", "gate"], 4)
    listed = {w["name"]: w["path"] for w in server.ok("workflow_list")["workflows"]}
    assert listed == {"broken": "broken.yaml", "demo": "demo.yaml", "gate": "gate.yaml"}

    plan = server.ok("plan", workflows=["demo"])
    assert [(s["step"], s["action"], s["reasons"]) for s in plan["steps"]] == [
        ("build", "run", ["never ran"]),
        ("count", "run", ["never ran"]),
    ]

    done = server.ok("apply", workflows=["demo"])
    assert done["ok"] is True
    steps = {s["step"]: s for s in done["steps"]}
    assert {k: s["status"] for k, s in steps.items()} == {
        "build": "succeeded",
        "count": "succeeded",
    }
    assert steps["build"]["reasons"] == ["never ran"]
    assert "built it" in steps["build"]["log_tail"]
    assert repo.read("out/A.txt") == "HELLO\n"
    assert repo.read("handler.txt") == ""  # it read /dev/null, not the protocol

    again = server.ok("plan", workflows=["demo"])
    assert again["summary"] == {"run": 0, "restore": 0, "may-run": 0, "up-to-date": 2, "skip": 0}
    st = {s["step"]: s for s in server.ok("status", workflows=["demo"])["steps"]}
    assert (st["build"]["status"], st["count"]["outputs"]) == ("succeeded", {"chars": "6"})

    repo.write("src/a.txt", "hello, world\n")  # seen by the next call: nothing is cached
    why = server.ok("explain", workflow="demo", step="build")
    assert (why["action"], why["reasons"]) == ("run", ["input changed: src/a.txt"])
    assert why["last"]["status"] == "succeeded"
    moved = [(p["kind"], p["name"]) for p in why["parts"] if p["changed"]]
    assert moved == [("input", "src/a.txt")] and why["fingerprint"]["changed"]
    why = server.ok("explain", workflow="demo", step="count")
    assert why["action"] == "may-run"
    assert why["upstream"] == [
        {"step": "build", "action": "run", "reasons": ["input changed: src/a.txt"]}
    ]
    g = server.ok("graph", workflow="demo", format="mermaid")
    assert g["steps"] == [{"step": "build", "needs": []}, {"step": "count", "needs": ["build"]}]
    g = server.ok("graph", workflow="demo", reduce=True)  # nothing to reduce in a chain
    assert g["steps"] == [{"step": "build", "needs": []}, {"step": "count", "needs": ["build"]}]


def test_a_failed_step_comes_back_with_its_exit_code_and_output(server: Server) -> None:
    failed = server.ok("apply", workflows=["broken"])
    assert failed["ok"] is False
    (fail,) = failed["steps"]
    assert (fail["status"], fail["exit_code"]) == ("failed", 3)
    assert "boom" in fail["log_tail"]
    log = server.ok("logs", workflow="broken", step="fail", lines=5)
    assert "boom" in log["lines"]
    assert log["log"] == fail["log"]
    runs = server.ok("history", workflows=["broken"], limit=1)["runs"]
    assert [(r["id"], r["status"]) for r in runs] == [(failed["run_id"], "failed")]


def test_apply_sends_the_event_stream_as_progress_notifications(server: Server) -> None:
    from tests.test_events import parse

    server.ok("apply", workflows=["demo"])  # whatever ran before, this one runs build only
    server.repo.write("src/a.txt", "hello again\n")
    try:
        reply, got = server.portal.call(
            functools.partial(_call_with_progress, server.session, "apply", {"workflows": ["demo"]})
        )
    finally:
        server.repo.write("src/a.txt", "hello\n")
    assert reply["ok"] is True
    # none lost; the client may run its callbacks out of order: progress is the order
    got.sort()
    assert [p for p, _ in got] == [float(i) for i in range(1, len(got) + 1)]
    events = parse("\n".join(m or "" for _, m in got))
    assert events[0]["type"] == "run.started" and events[0]["run"] == reply["run_id"]
    kinds = {(e["type"], e.get("step")) for e in events}
    assert {
        ("step.planned", "build"),
        ("task.finished", "build"),
        ("step.finished", "build"),
    } <= kinds
    assert events[-1]["type"] == "run.finished" and events[-1]["counts"] == reply["counts"]
    # an acting call is in the audit log, as a command would be
    rows = server.repo.orch_json("audit")
    assert [r["argv"] for r in rows][-1] == ["mcp", "apply", '--workflows=["demo"]']


def test_user_errors_are_tool_errors_with_the_message(server: Server) -> None:
    msg = server.error("plan", workflows=["demo", "dmeo"])
    assert "no workflow named 'dmeo' (did you mean 'demo'?)" in msg
    assert "Traceback" not in msg
    msg = server.error("explain", workflow="demo", step="nope")
    assert "workflow 'demo' has no step 'nope'" in msg
    msg = server.error("logs", workflow="broken", step="nope")
    assert "workflow 'broken' has no step 'nope'" in msg
    outside = server.repo.path.parent / "outside.yaml"
    for path in ("../outside.yaml", str(outside)):
        assert "outside the repository" in server.error("validate", paths=[path])


def test_plan_and_apply_take_params(server: Server) -> None:
    """The tools' ``params`` object is ``--param``: text typed as the manifest's value,
    other JSON values as given; an unknown key is a tool error with a suggestion."""
    repo = server.repo
    repo.write(
        "params.yaml",
        workflow(
            "params",
            '    - {name: p, run: "mkdir -p out && echo {{ params.n + 1 }} > out/p.txt", outputs: [out/p.txt]}\n'
            '    - {name: q, run: "mkdir -p out && echo q > out/q.txt", outputs: [out/q.txt]}\n',
            extra="  params: {n: 1}\n",
        ),
    )
    try:
        assert server.ok("apply", workflows=["params"])["ok"]
        assert repo.read("out/p.txt") == "2\n"
        plan = server.ok("plan", workflows=["params"], params={"n": "5"})
        assert [(s["step"], s["action"]) for s in plan["steps"]] == [
            ("p", "run"),
            ("q", "up-to-date"),
        ]
        done = server.ok("apply", workflows=["params"], params={"n": 7})
        assert [s["step"] for s in done["steps"] if s["status"] == "succeeded"] == ["p"]
        assert repo.read("out/p.txt") == "8\n"
        msg = server.error("plan", workflows=["params"], params={"nn": "1"})
        assert "no selected workflow has a param 'nn' (did you mean 'n'?)" in msg
    finally:
        (repo.path / "params.yaml").unlink()


def test_plan_apply_status_name_instances_removed_and_pending(server: Server) -> None:
    """Fan-out through the tools: instance names in every reply, the dynamic foreach's
    instances ``pending`` until its source has run, an instance gone ``removed`` in the
    plan and in the apply that dropped its record; validate counts StepTemplates."""
    repo = server.repo
    repo.write("fanin/a.txt", "a\n")
    repo.write("fanin/b.txt", "b\n")
    repo.write(
        "fan.yaml",
        """\
apiVersion: orch/v1
kind: StepTemplate
metadata: {name: say}
spec:
  params: {what: hi}
  run: echo {{ params.what }}
---
"""
        + workflow(
            "fan",
            """\
    - {name: m, uses: say, matrix: {k: [x, "y z"]}}
    - {name: f, foreach: "fanin/*.txt", run: "cat {{ item.path }}"}
    - {name: src, run: "echo 'vals=[1, 2]' >> $ORCH_OUTPUT"}
    - {name: d, foreach: "{{ steps.src.outputs.vals }}", run: "echo {{ item }}"}
""",
        ),
    )
    try:
        assert server.ok("validate")["step_templates"] == ["say"]
        plan = server.ok("plan", workflows=["fan"])
        assert [s["step"] for s in plan["steps"]] == [
            "m[k=x]", "m[k=y z]", "f[fanin/a.txt]", "f[fanin/b.txt]", "src",
        ]  # fmt: skip
        assert plan["pending"] == [{"workflow": "fan", "step": "d", "after": "src"}]
        done = server.ok("apply", workflows=["fan"])
        assert done["ok"] and done["removed"] == []
        assert sorted(s["step"] for s in done["steps"] if s["status"] == "succeeded") == [
            "d[1]", "d[2]", "f[fanin/a.txt]", "f[fanin/b.txt]", "m[k=x]", "m[k=y z]", "src",
        ]  # fmt: skip
        status = {s["step"]: s["status"] for s in server.ok("status", workflows=["fan"])["steps"]}
        assert status["d[2]"] == status["m[k=y z]"] == status["f[fanin/b.txt]"] == "succeeded"

        (repo.path / "fanin/b.txt").unlink()
        gone = [{"workflow": "fan", "step": "f[fanin/b.txt]"}]
        assert server.ok("plan", workflows=["fan"])["removed"] == gone
        assert server.ok("apply", workflows=["fan"])["removed"] == gone
        status = {s["step"] for s in server.ok("status", workflows=["fan"])["steps"]}
        assert "f[fanin/b.txt]" not in status and "f[fanin/a.txt]" in status
    finally:
        (repo.path / "fan.yaml").unlink()
        (repo.path / "fanin/a.txt").unlink()


def test_a_broken_manifest_is_listed_by_validate_and_stops_apply(server: Server) -> None:
    repo = server.repo
    repo.write("bad.yaml", "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: bad}\n")
    try:
        v = server.ok("validate")
        assert v["ok"] is False
        assert [(e["path"], e["line"]) for e in v["errors"]] == [("bad.yaml", 1)]
        before = server.ok("history", limit=1)["runs"]
        assert "bad.yaml:1:" in server.error("apply")
    finally:
        (repo.path / "bad.yaml").unlink()
    assert server.ok("history", limit=1)["runs"] == before  # nothing ran
    assert server.ok("validate")["ok"] is True


def test_calls_run_one_at_a_time(server: Server) -> None:
    """A status asked during an apply answers after it: run in parallel inside one process,
    its dead-run check would take the running apply for dead and mark it interrupted."""
    pid, go = server.repo.path / "gate.pid", server.repo.path / "gate.go"
    applying = server.portal.start_task_soon(
        _call, server.session, "apply", {"workflows": ["gate"]}
    )
    deadline = time.monotonic() + 30
    while not pid.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    asking = server.portal.start_task_soon(_call, server.session, "status", {"workflows": ["gate"]})
    concurrent.futures.wait([asking], timeout=1)  # a server that does not queue answers now
    go.write_text("")
    assert applying.result(timeout=60)[1]["ok"] is True
    is_error, st = asking.result(timeout=60)
    assert [s["status"] for s in st["steps"]] == ["succeeded"]


@pytest.mark.slow
def test_hanging_up_during_apply_stops_and_records_the_task(repo: Repo, tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    import anyio

    repo.write(".gitignore", "step.pid\n")
    repo.write("slow.yaml", SLOW)
    repo.commit()
    pid_file = repo.path / "step.pid"

    async def main() -> None:
        with anyio.fail_after(60):
            async with _connect(repo.path, tmp_path) as session, anyio.create_task_group() as tg:
                tg.start_soon(_call, session, "apply", {})
                while not pid_file.exists() or not pid_file.read_text().strip():
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()  # leave mid-apply; then the session closes

    anyio.run(main)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the client waited for the server to end
        os.kill(pid, 0)
    st = repo.orch_json("status")["steps"]
    assert [(s["step"], s["status"]) for s in st] == [("sleep", "interrupted")]


def test_version_and_import_do_not_load_the_sdk() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import runner.mcp.server, runner.cli.mcp\n"
        "from runner.cli.main import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--version'])\n"
        "print(sorted(m for m in ('mcp', 'anyio', 'pydantic') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_without_the_sdk_one_line_and_exit_1(repo: Repo) -> None:
    # None in sys.modules makes `import mcp` fail exactly as if it were not installed.
    code = (
        "import sys\n"
        "sys.modules['mcp'] = None\n"
        "from runner.cli.main import main\n"
        f"sys.exit(main(['-C', {str(repo.path)!r}, 'mcp']))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == "orch mcp needs the MCP SDK: pip install 'orch-gitops[mcp]'\n"


def test_tools_refuse_paths_outside_the_root(repo: Repo, tmp_path: Path) -> None:
    from runner.errors import OrchError
    from runner.mcp.server import Tools

    (repo.path / "link").symlink_to(tmp_path)
    tools = Tools(repo.path)
    assert tools.inside("sub/../wf.yaml") == str(repo.path.resolve() / "wf.yaml")
    for bad in ("../x.yaml", "/etc/passwd", "link/x.yaml"):
        with pytest.raises(OrchError, match="outside the repository"):
            tools.inside(bad)


def test_tools_carry_annotations_that_say_which_change_things(server: Server) -> None:
    tools = {t.name: t for t in server.portal.call(server.session.list_tools).tools}
    hints = {
        name: (t.annotations.model_dump(by_alias=True, exclude_none=True) if t.annotations else {})
        for name, t in tools.items()
    }
    for name in RUNS:
        assert hints[name] == {
            "readOnlyHint": False,
            "destructiveHint": True,
            "idempotentHint": False,
            "openWorldHint": True,
        }, name
    # adds files, never replaces one; the same call again is refused
    assert hints["create_project"] == {
        "readOnlyHint": False,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    # archive removes a project's files from the work tree
    assert hints["manage_project"] == {
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    for name in TOOLS - RUNS - {"create_project", "manage_project"}:
        assert hints[name] == {
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        }, name


def test_every_reply_is_masked_with_the_catalogs_secrets(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mcp")
    import anyio

    secret = "s3cr3t-for-mcp"
    monkeypatch.setenv("TOK", secret)
    run = 'echo "tok=$TOK" >> $ORCH_OUTPUT'
    repo.write("w.yaml", workflow("w", f"    - {{name: a, run: '{run}'}}\n"))
    repo.commit()
    assert repo.orch("apply").returncode == 0  # recorded before TOK was declared secret
    repo.write("w.yaml", workflow("w", f"    - {{name: a, secrets: [TOK], run: '{run}'}}\n"))
    replies: list[Any] = []

    async def main() -> None:
        with anyio.fail_after(60):
            async with _connect(repo.path, tmp_path) as session:
                for tool in ("status", "history"):
                    replies.append(await _call(session, tool, {}))

    anyio.run(main)
    text = json.dumps(replies)
    assert secret not in text and '"tok": "***"' in text


def _rpc(proc: subprocess.Popen[bytes], id_: int | None, method: str, params: Any) -> None:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id_ is not None:
        msg["id"] = id_
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(msg).encode() + b"\n")
    proc.stdin.flush()


@pytest.mark.slow
def test_sighup_during_apply_ends_the_server_cleanly(repo: Repo, tmp_path: Path) -> None:
    """A closed terminal (SIGHUP) while an apply tool call runs: the server ends as
    ``orch apply`` does on SIGHUP (exit 129), with no task process left behind and no row
    left ``running``. A raw JSON-RPC client, to send the signal and read the exit status."""
    pytest.importorskip("mcp")
    repo.write(".gitignore", "step.pid\n")
    repo.write("slow.yaml", SLOW)
    repo.commit()
    pid_file = repo.path / "step.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        info = {"name": "t", "version": "1"}
        _rpc(
            proc,
            1,
            "initialize",
            {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": info},
        )
        assert proc.stdout is not None and b'"id":1' in proc.stdout.readline()
        _rpc(proc, None, "notifications/initialized", {})
        _rpc(proc, 2, "tools/call", {"name": "apply", "arguments": {}})
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.02)
        step_pid = int(pid_file.read_text())
        proc.send_signal(__import__("signal").SIGHUP)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 129, err.decode()
    with pytest.raises(ProcessLookupError):
        os.kill(step_pid, 0)
    st = repo.orch_json("status")["steps"]
    assert [(s["step"], s["status"]) for s in st] == [("sleep", "interrupted")]
    (task,) = repo.orch_json("task", "list")
    assert task["status"] == "interrupted"


def test_apply_takes_the_executor_and_a_dask_scheduler_address(server: Server) -> None:
    import socket

    tools = {t.name: t for t in server.portal.call(server.session.list_tools).tools}
    apply = tools["apply"]
    schema = getattr(apply, "input_schema", None) or apply.inputSchema  # mcp 2, mcp 1
    props = schema["properties"]
    assert "dask_address" in props
    assert set(json.dumps(props["executor"]).split('"')) >= {"local", "dask"}
    assert server.call("apply", executor="kubernetes")[0]  # refused: not an executor
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    before = server.ok("history", limit=100)
    err = server.error("apply", workflows=["broken"], executor="dask", dask_address=address)
    assert address in err and len(err.strip().splitlines()) == 1
    assert server.ok("history", limit=100) == before  # refused before any state is written


CHAIN = workflow(
    "chain",
    """\
    - name: first
      run: mkdir -p out && echo one > out/first.txt
      outputs: [out/first.txt]
    - name: second
      run: echo "n=$(cat out/first.txt)" >> "$ORCH_OUTPUT"
      inputs: [out/first.txt]
""",
)


def test_execute_workflow_and_execute_task(server: Server) -> None:
    """execute_workflow is apply of one workflow; execute_task runs one step even when it
    is up to date, as ``orch apply WF --force WF/STEP``: what it needs runs first only
    when not up to date."""
    repo = server.repo
    repo.write("chain.yaml", CHAIN)
    try:
        done = server.ok("execute_workflow", workflow="chain")
        assert done["ok"] is True
        assert {s["step"]: s["status"] for s in done["steps"]} == {
            "first": "succeeded",
            "second": "succeeded",
        }
        again = server.ok("execute_workflow", workflow="chain")
        assert again["run_id"] is None and again["counts"] == {"up-to-date": 2}

        one = server.ok("execute_task", workflow="chain", step="second")
        steps = {s["step"]: s for s in one["steps"]}
        assert (steps["first"]["status"], steps["second"]["status"]) == (
            "up-to-date",
            "succeeded",
        )
        assert steps["second"]["reasons"] == ["forced"]

        (repo.path / "out" / "first.txt").unlink()  # first is stale now: it runs first
        both = server.ok("execute_task", workflow="chain", step="second")
        assert [(s["step"], s["status"]) for s in both["steps"]] == [
            ("first", "succeeded"),
            ("second", "succeeded"),
        ]

        msg = server.error("execute_task", workflow="chain", step="secnod")
        assert "workflow 'chain' has no step 'secnod' (did you mean 'second'?)" in msg
        assert "no workflow named 'chian'" in server.error("execute_workflow", workflow="chian")
        argv = [r["argv"][:2] for r in repo.orch_json("audit")]
        assert ["mcp", "execute_workflow"] in argv and ["mcp", "execute_task"] in argv
    finally:
        (repo.path / "chain.yaml").unlink()


def test_new_tools_declare_their_inputs_as_json_schema(server: Server) -> None:
    tools = {t.name: t for t in server.portal.call(server.session.list_tools).tools}

    def schema(name: str) -> dict[str, Any]:
        return getattr(tools[name], "input_schema", None) or tools[name].inputSchema

    assert set(schema("execute_task")["required"]) == {"workflow", "step"}
    assert schema("execute_workflow")["required"] == ["workflow"]
    assert set(schema("create_project")["required"]) == {"name", "template"}
    manage = schema("manage_project")
    assert manage["required"] == ["action"]
    assert manage["properties"]["action"]["enum"] == ["list", "status", "archive", "restore"]
    assert schema("get_system_status").get("required", []) == []
    msg = server.error("manage_project", action="delete", name="x")
    assert "Traceback" not in msg and "delete" in msg


def test_get_system_status_reports_the_host_and_health(server: Server) -> None:
    st = server.ok("get_system_status")
    assert st["health"]["ok"] in (True, False)
    names = {c["name"]: c["ok"] for c in st["health"]["checks"]}
    assert names["manifests"] is True
    assert st["host"]["cpus"] >= 1
    from runner.execute.host import HOST_QUOTA

    assert HOST_QUOTA in {q["name"] for q in st["quotas"]}
    assert set(st) == set(server.repo.orch_json("system", "status"))  # the CLI's report


def test_get_cache_status_is_the_clis_report(server: Server) -> None:
    st = server.ok("get_cache_status")
    assert st == server.repo.orch_json("cache", "status")
    assert st["location"] == ".orch/cache/results/"
    assert set(st) == {
        "location",
        "enabled",
        "entries",
        "bytes",
        "hits",
        "misses",
        "hit_rate",
        "max_size",
    }


def test_create_list_archive_restore_a_project(repo: Repo, tmp_path: Path) -> None:
    """The project tools act as ``orch project create|list|status|archive|restore`` do,
    and bad input is a tool error that writes nothing."""
    pytest.importorskip("mcp")
    import anyio

    repo.commit()
    replies: dict[str, tuple[bool, Any]] = {}

    async def main() -> None:
        with anyio.fail_after(120):
            async with _connect(repo.path, tmp_path) as session:
                for key, tool, args in (
                    ("bad-name", "create_project", {"name": "no way", "template": "web-app"}),
                    ("bad-template", "create_project", {"name": "shop", "template": "nope"}),
                    ("outside", "create_project", {"name": "shop", "template": "web-app",
                                                   "path": "../elsewhere"}),
                    ("create", "create_project", {"name": "shop", "template": "web-app"}),
                    ("again", "create_project", {"name": "shop", "template": "web-app"}),
                    ("list", "manage_project", {"action": "list"}),
                    ("status", "manage_project", {"action": "status", "name": "shop"}),
                    ("no-name", "manage_project", {"action": "archive"}),
                    ("unknown", "manage_project", {"action": "status", "name": "shpo"}),
                    ("archive", "manage_project", {"action": "archive", "name": "shop"}),
                    ("listed", "manage_project", {"action": "list"}),
                    ("restore", "manage_project", {"action": "restore", "name": "shop"}),
                ):  # fmt: skip
                    replies[key] = await _call(session, tool, args)

    anyio.run(main)
    for key in ("bad-name", "bad-template", "outside", "again", "no-name", "unknown"):
        assert replies[key][0] is True, (key, replies[key])
        assert "Traceback" not in replies[key][1]
    assert "not a valid project name" in replies["bad-name"][1]
    assert "outside the repository" in replies["outside"][1]
    assert "needs a project name" in replies["no-name"][1]
    assert not (repo.path.parent / "elsewhere").exists()

    is_error, created = replies["create"]
    assert not is_error, created
    assert created["name"] == "shop" and created["dir"] == "shop"
    assert all(f.startswith("shop/") for f in created["files"]) and created["files"]
    listed = {p["name"]: p["lifecycle"] for p in replies["list"][1]["projects"]}
    assert "shop" in listed and listed["shop"] != "archived"
    assert replies["status"][1]["name"] == "shop"

    is_error, archived = replies["archive"]
    assert not is_error, archived
    assert archived["files"] == len(created["files"])
    listed = {p["name"]: p["lifecycle"] for p in replies["listed"][1]["projects"]}
    assert listed["shop"] == "archived"
    is_error, restored = replies["restore"]
    assert not is_error, restored
    assert restored["files"] == len(created["files"])
    for f in created["files"]:
        assert (repo.path / f).exists(), f
    rows = repo.orch_json("audit")
    refused = [r for r in rows if r["argv"][1:3] == ["create_project", '--name="shop"']]
    # the second create of shop was refused (the name is taken), and says so
    assert [r["exit_code"] for r in refused] == [0, 2] and refused[1]["error"]
    acts = [r["argv"][1:4] for r in rows]
    assert ["create_project", '--name="shop"', '--template="web-app"'] in acts
    assert ["manage_project", '--action="archive"', '--name="shop"'] in acts


def test_execute_task_replies_are_masked(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mcp")
    import anyio

    secret = "s3cr3t-for-execute"
    monkeypatch.setenv("TOK", secret)
    repo.write("w.yaml", workflow("w", "    - {name: a, secrets: [TOK], run: 'echo \"$TOK\"'}\n"))
    repo.commit()
    replies: list[Any] = []

    async def main() -> None:
        with anyio.fail_after(60):
            async with _connect(repo.path, tmp_path) as session:
                replies.append(await _call(session, "execute_task", {"workflow": "w", "step": "a"}))
                replies.append(await _call(session, "execute_workflow", {"workflow": "w"}))

    anyio.run(main)
    (is_error, first), (_, second) = replies
    assert not is_error, first
    (step,) = first["steps"]
    assert step["status"] == "succeeded" and "***" in step["log_tail"]
    assert second["counts"] == {"up-to-date": 1}
    assert secret not in json.dumps(replies)
