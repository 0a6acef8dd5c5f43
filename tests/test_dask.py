"""The Dask executor against a real cluster: one scheduler in this process, two worker
processes on loopback (one of them offering ``gpu=1``), shared by the module.

orch runs as the real CLI in a subprocess and connects to the scheduler by address, as it
would to a remote cluster; the workers share the repository through the file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo, workflow
from tests.test_executor import gone

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]


class Cluster:
    def __init__(self, address: str, client: Any):
        self.address = address
        self.client = client

    def workers(self) -> set[str]:
        return set(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def gpu_worker(self) -> str:
        """The address of the worker offering gpu=1 (a new one once a test killed it and
        its nanny started it again)."""
        self.client.wait_for_workers(2, timeout=120)
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return next(a for a, w in info.items() if w.get("resources", {}).get("gpu"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    import dask

    # as docs/distributed.md asks of a scheduler: a lost task is orch's to retry
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        lc = distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            memory_limit=0,
            silence_logs=40,
        )
    gpu = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", lc.scheduler_address]
        + ["--nthreads", "2", "--memory-limit", "0", "--no-dashboard", "--host", "127.0.0.1"]
        + ["--resources", "gpu=1", "--name", "gpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = distributed.Client(lc, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=120)
        yield Cluster(lc.scheduler_address, client)
    finally:
        gpu.terminate()
        try:
            gpu.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gpu.kill()
            gpu.wait()
        client.close()
        lc.close()


def runs(repo: Repo) -> list[dict[str, Any]]:
    db = repo.path / ".orch" / "state.db"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM runs")]
    finally:
        con.close()


def tasks(repo: Repo) -> list[dict[str, Any]]:
    con = sqlite3.connect(repo.path / ".orch" / "state.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM tasks ORDER BY id")]
    finally:
        con.close()


DIAMOND = """\
    - name: a
      run: echo "a on $ORCH_WORKER via $ORCH_EXECUTOR"; echo a > a.txt
      outputs: [a.txt]
      resources: {cpu: 1, memory: 64Mi}
    - name: b
      run: cat a.txt > b.txt; echo b >> b.txt; echo "n=2" >> "$ORCH_OUTPUT"
      inputs: [a.txt]
      outputs: [b.txt]
    - name: c
      run: cat a.txt > c.txt; echo c >> c.txt
      inputs: [a.txt]
      outputs: [c.txt]
    - name: d
      run: cat b.txt c.txt > d.txt
      inputs: [b.txt, c.txt]
      outputs: [d.txt]
"""


@pytest.mark.slow
def test_diamond_runs_on_the_cluster_and_a_second_apply_runs_nothing(
    repo: Repo, cluster: Cluster
) -> None:
    # chosen by the config, addressed by the environment
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nexecutor: {kind: dask}\n")
    repo.write("wf.yaml", workflow("w", DIAMOND))
    repo.commit()
    env = {"ORCH_DASK_ADDRESS": cluster.address}
    p = repo.orch("apply", "-j", "2", env=env)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr  # the module's scheduler has allowed-failures 0
    assert repo.read("d.txt") == "a\nb\na\nc\n"
    # streamed to the console, prefixed; saved under .orch/logs
    line = next(x for x in p.stdout.splitlines() if "a on " in x)
    worker = line.split("a on ")[1].split(" via ")[0]
    assert line.startswith("[a]") and line.endswith("via dask")
    assert worker in cluster.workers()
    log = repo.read(".orch/logs/1/w/a.1.log")
    assert f"a on {worker} via dask" in log
    assert f" on {worker}: " in log.splitlines()[0]  # the header names the worker
    assert [r["status"] for r in runs(repo)] == ["succeeded"]
    status = {r["step"]: r for r in repo.orch_json("status")["steps"]}
    assert status["b"]["outputs"] == {"n": "2"}  # $ORCH_OUTPUT, parsed on the worker
    assert status["a"]["cpu_time"] is not None and status["a"]["worker"] == worker
    again = repo.orch("apply", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert {s["status"] for s in json.loads(again.stdout)["steps"]} == {"up-to-date"}
    assert len(runs(repo)) == 1
    # the no-op path never imports distributed (seconds of start-up)
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", "-C", str(repo.path), "apply"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert p.returncode == 0 and "Up to date" in p.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    assert "runner.execute.dask" not in imported and "distributed" not in imported
    assert "runner.cli.main" in imported  # the check can see what is imported


@pytest.mark.slow
def test_without_an_address_orch_starts_a_local_cluster_for_the_run(repo: Repo) -> None:
    run = 'echo "$ORCH_EXECUTOR $ORCH_WORKER" > where.txt'
    repo.write("wf.yaml", workflow("w", f"    - name: a\n      run: {json.dumps(run)}\n"))
    repo.commit()
    p = repo.orch("apply", "--executor", "dask", "-j", "1", timeout=180)
    assert p.returncode == 0, p.stderr
    kind, worker = repo.read("where.txt").split()
    assert kind == "dask" and worker.startswith("tcp://127.0.0.1:")


@pytest.mark.slow
def test_the_local_cluster_orch_starts_offers_no_resources_and_says_so(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: g, run: touch g.txt, resources: {gpu: 1}}\n"))
    repo.commit()
    p = repo.orch("apply", "--executor", "dask", "-j", "1", timeout=180)
    assert p.returncode == 1, p.stderr
    [line] = p.stderr.strip().splitlines()
    assert "'w/g'" in line and "LocalCluster" in line and "--dask-address" in line
    assert not repo.exists("g.txt") and runs(repo) == []


@pytest.mark.slow
def test_an_example_runs_on_the_cluster(repo: Repo, cluster: Cluster) -> None:
    shutil.copytree(ROOT / "examples" / "data-pipeline", repo.path, dirs_exist_ok=True)
    repo.commit()
    out = repo.apply("--dask-address", cluster.address)
    assert out["ok"], out
    assert out["counts"] == {"succeeded": len(out["steps"])}
    assert repo.apply("--dask-address", cluster.address)["ran"] == []


@pytest.mark.slow
def test_resources_route_a_step_to_the_worker_that_offers_them(
    repo: Repo, cluster: Cluster
) -> None:
    steps = "".join(
        f"    - {{name: g{i}, run: 'echo $ORCH_WORKER > g{i}.txt', resources: {{gpu: 1}}}}\n"
        for i in range(3)
    )
    repo.write("wf.yaml", workflow("w", steps))
    repo.commit()
    out = repo.apply("--executor", "dask", "--dask-address", cluster.address, "-j", "3")
    assert out["ok"], out
    assert {repo.read(f"g{i}.txt").strip() for i in range(3)} == {cluster.gpu_worker}


@pytest.mark.slow
def test_the_host_is_no_ceiling_of_cpu_and_memory_when_tasks_run_on_dask(
    repo: Repo, cluster: Cluster
) -> None:
    from runner.execute.host import host

    big = f"{{cpu: {host()['cpus'] + 4}, memory: 1000Ti}}"
    repo.write("wf.yaml", workflow("w", f"    - {{name: a, run: touch a.txt, resources: {big}}}\n"))
    repo.commit()
    # the config runs tasks here: validate refuses, as apply does; chosen per run: it runs
    for ref in ((), ("--ref", "HEAD")):
        p = repo.orch("validate", *ref)
        assert p.returncode == 1 and "this host has" in p.stderr, p.stderr
    out = repo.apply("--dask-address", cluster.address)  # no worker declares cpu/memory
    assert out["ok"] and out["ran"] == ["a"], out
    # the config chooses dask: validate has no host ceiling; --executor local has it
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nexecutor: {kind: dask}\n")
    p = repo.orch("validate")
    assert p.returncode == 0, p.stderr
    p = repo.orch("apply", "--executor", "local", "--force-all")
    assert p.returncode == 1 and "this host has" in p.stderr, p.stderr
    assert len(runs(repo)) == 1


@pytest.mark.slow
def test_a_resource_no_worker_offers_is_refused_before_anything_runs(
    repo: Repo, cluster: Cluster
) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - {name: ok, run: touch ok.txt}\n"
            "    - {name: train, run: touch t.txt, resources: {tpu: 2}}\n"
            "    - {name: big, run: touch b.txt, resources: {gpu: 4}}\n",
        ),
    )
    repo.commit()
    p = repo.orch("apply", "--dask-address", cluster.address)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2, p.stderr
    assert "'w/train'" in lines[0] and "tpu=2" in lines[0]
    assert "'w/big'" in lines[1] and "gpu=4" in lines[1]
    assert "Traceback" not in p.stderr
    assert not repo.exists("ok.txt") and runs(repo) == []


def test_an_unreachable_scheduler_is_one_line_and_writes_no_run(repo: Repo) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt}\n"))
    repo.commit()
    p = repo.orch("apply", "--executor", "dask", "--dask-address", f"tcp://127.0.0.1:{port}")
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert f"tcp://127.0.0.1:{port}" in p.stderr
    assert not repo.exists("a.txt") and runs(repo) == []


@pytest.mark.slow
def test_a_listener_that_never_answers_or_a_wrong_scheme_is_one_line_and_writes_no_run(
    repo: Repo,
) -> None:
    import socket

    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt}\n"))
    repo.commit()
    with socket.socket() as silent:  # accepts connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        for address in (f"tcp://127.0.0.1:{port}", f"http://127.0.0.1:{port}"):
            p = repo.orch("apply", "--dask-address", address, timeout=60)
            assert p.returncode == 1, p.stderr
            assert len(p.stderr.strip().splitlines()) == 1, p.stderr
            assert address in p.stderr and "internal error" not in p.stderr
    assert not repo.exists("a.txt") and runs(repo) == []
    repo.write(
        ".orch/config.yaml",
        "apiVersion: orch/v1\nkind: Config\nexecutor: {kind: dask, address: 'http://x:1'}\n",
    )
    p = repo.orch("validate")
    assert p.returncode == 1 and "executor.address" in p.stderr, p.stderr


@pytest.mark.slow
def test_a_worker_at_another_commit_is_refused(
    repo: Repo, cluster: Cluster, tmp_path: Path
) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt}\n"))
    repo.commit()
    other = tmp_path / "elsewhere"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(other)], check=True)
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt && true}\n"))
    here = repo.commit("moved on")
    repo.write(
        ".orch/config.yaml",
        "apiVersion: orch/v1\nkind: Config\n"
        f"executor: {{kind: dask, path_map: {{{str(repo.path)!r}: {str(other)!r}}}}}\n",
    )
    p = repo.orch("apply", "--dask-address", cluster.address)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == len(cluster.workers()), p.stderr
    assert all(here[:12] in x and "commit" in x for x in lines), p.stderr
    assert not repo.exists("a.txt") and runs(repo) == []


def test_executor_local_with_a_dask_address_is_a_usage_error(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt}\n"))
    repo.commit()
    for verb in ("apply", "watch"):
        p = repo.orch(verb, "--executor", "local", "--dask-address", free_address())
        assert p.returncode == 2, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "--dask-address" in p.stderr
    from runner.errors import OrchError
    from runner.mcp.server import Tools

    with pytest.raises(OrchError, match="dask_address"):
        Tools(repo.path).apply(executor="local", dask_address=free_address())
    assert not repo.exists("a.txt") and runs(repo) == []


@pytest.mark.slow
def test_a_path_map_to_a_folder_that_is_not_a_git_checkout_says_so(
    repo: Repo, cluster: Cluster, tmp_path: Path
) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt}\n"))
    repo.commit()
    plain = tmp_path / "plain"
    plain.mkdir()
    repo.write(
        ".orch/config.yaml",
        "apiVersion: orch/v1\nkind: Config\n"
        f"executor: {{kind: dask, path_map: {{{str(repo.path)!r}: {str(plain)!r}}}}}\n",
    )
    p = repo.orch("apply", "--dask-address", cluster.address)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == len(cluster.workers()), p.stderr
    assert all(str(plain) in x and "not a git checkout" in x for x in lines), p.stderr
    assert not repo.exists("a.txt") and runs(repo) == []


@pytest.mark.slow
def test_a_worker_without_orch_installed_is_refused_in_one_line(repo: Repo, tmp_path: Path) -> None:
    """A scheduler and two workers of their own: one as in this environment, one that has
    distributed but not orch (no site processing: the editable install is not seen)."""
    import signal
    import site
    import time

    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt}\n"))
    repo.commit()
    info = tmp_path / "scheduler.json"
    procs = [_dask("dask_scheduler", "--port", "0", "--scheduler-file", str(info))]
    try:
        deadline = time.monotonic() + 120
        while not info.exists() or not info.read_text().strip().endswith("}"):
            assert procs[0].poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        procs.append(_dask("dask_worker", address, "--nthreads", "1", "--name", "with"))
        bare = tmp_path / "bare"
        bare.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-S", "-m", "distributed.cli.dask_worker", address]
                + ["--nthreads", "1", "--no-nanny", "--name", "bare", "--host", "127.0.0.1"]
                + ["--no-dashboard"],
                cwd=bare,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        with distributed.Client(address, set_as_default=False, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            bare_addr = next(
                a
                for a, w in client.scheduler_info(n_workers=-1)["workers"].items()
                if w.get("name") == "bare"
            )
        p = repo.orch("apply", "--dask-address", address, timeout=120)
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert p.returncode == 1, p.stderr
    [line] = p.stderr.strip().splitlines()
    assert bare_addr in line and "orch-gitops" in line and "internal error" not in line
    assert not repo.exists("a.txt") and runs(repo) == []


@pytest.mark.slow
def test_a_worker_lost_mid_task_is_one_failed_attempt_then_a_retry(
    repo: Repo, cluster: Cluster
) -> None:
    # The first attempt kills the worker process it runs in (its parent), as an OOM kill or a
    # lost node would; the nanny brings up a fresh worker at a new address.
    run = (
        "echo $ORCH_WORKER >> workers.txt; "
        "if [ ! -e killed ]; then touch killed; kill -9 $PPID; exec sleep 2; fi; touch done.txt"
    )
    steps = f"    - name: a\n      run: {json.dumps(run)}\n      retry: {{limit: 1, backoff: 0s}}\n"
    repo.write("wf.yaml", workflow("w", steps))
    repo.write(".gitignore", "killed\nworkers.txt\n")
    repo.commit()
    before = cluster.workers()
    p = repo.orch("apply", "--dask-address", cluster.address, timeout=180)
    assert p.returncode == 0, p.stderr + p.stdout
    attempts = tasks(repo)
    assert [t["status"] for t in attempts] == ["failed", "succeeded"]
    first, second = repo.read("workers.txt").split()
    assert first in before and second != first
    assert attempts[0]["message"] == f"worker lost: {first}"
    retrying = next(x for x in p.stdout.splitlines() if "retrying" in x)  # streamed
    assert f"worker lost: {first}" in retrying and "exit None" not in retrying
    assert f"worker lost: {first}" in repo.read(attempts[0]["log_path"])
    text = repo.orch("history", "--tasks").stdout.splitlines()
    assert any(x.rstrip().endswith(f"worker lost: {first}") for x in text), text  # its WHY
    cluster.client.wait_for_workers(2, timeout=120)  # leave the module's cluster whole


@pytest.mark.slow
def test_ctrl_c_ends_the_task_tree_on_the_worker(repo: Repo, cluster: Cluster) -> None:
    import signal
    import time

    run = "sleep 120 & echo $! > child.pid; echo $$ > root.pid; wait"
    repo.write("wf.yaml", workflow("w", f"    - name: a\n      run: {json.dumps(run)}\n"))
    repo.write(".gitignore", "*.pid\n")
    repo.commit()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "apply"]
        + ["--dask-address", cluster.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        pid_files = [repo.path / "root.pid", repo.path / "child.pid"]
        while not all(f.exists() and f.read_text().endswith("\n") for f in pid_files):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        pids = [int(f.read_text()) for f in pid_files]
        # while it runs, the task row already says where (orch status, system status)
        while not tasks(repo)[0]["worker"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert tasks(repo)[0]["worker"] in cluster.workers()
        assert f"on {tasks(repo)[0]['worker']}" in repo.orch("system", "status").stdout
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert [t["status"] for t in tasks(repo)] == ["interrupted"]
    assert [r["status"] for r in runs(repo)] == ["interrupted"]
    assert all(gone(pid) for pid in pids)  # the worker ended the whole tree


@pytest.mark.slow
def test_status_history_and_junit_show_the_worker_of_each_task(
    repo: Repo, cluster: Cluster
) -> None:
    steps = "    - {name: g, run: 'echo $ORCH_WORKER > g.txt', resources: {gpu: 1}}\n"
    repo.write("wf.yaml", workflow("w", steps))
    repo.commit()
    p = repo.orch("apply", "--dask-address", cluster.address, "--junit", "report.xml")
    assert p.returncode == 0, p.stderr
    gpu = cluster.gpu_worker
    assert [t["worker"] for t in tasks(repo)] == [gpu]
    [row] = repo.orch_json("status")["steps"]
    assert row["worker"] == gpu
    text = repo.orch("status").stdout.splitlines()
    assert "WORKER" in text[0].split() and gpu in text[1].split()
    [run] = repo.orch_json("history", "--tasks")
    assert [t["worker"] for t in run["tasks"]] == [gpu]
    text = repo.orch("history", "--tasks").stdout.splitlines()
    heads = next(x for x in text if x.startswith("STEP"))
    assert "WORKER" in heads.split() and gpu in text[text.index(heads) + 1].split()
    import xml.etree.ElementTree as ET

    case = ET.parse(repo.path / "report.xml").find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iterfind("properties/property")}
    assert props == {"orch.worker": gpu}


def test_the_local_executor_records_no_worker_and_shows_no_worker_column(
    repo: Repo,
) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: touch a.txt}\n"))
    repo.commit()
    p = repo.orch("apply", "--junit", "report.xml")
    assert p.returncode == 0, p.stderr
    assert [t["worker"] for t in tasks(repo)] == [None]
    assert [r["worker"] for r in repo.orch_json("status")["steps"]] == [None]
    [run] = repo.orch_json("history", "--tasks")
    assert [t["worker"] for t in run["tasks"]] == [None]
    assert "WORKER" not in repo.orch("status").stdout
    assert "WORKER" not in repo.orch("history", "--tasks").stdout
    assert "orch.worker" not in repo.read("report.xml")


@pytest.mark.slow
def test_watch_and_the_mcp_apply_tool_run_on_the_cluster(repo: Repo, cluster: Cluster) -> None:
    from runner.mcp.server import Tools
    from tests.test_watch import Watch

    run = 'cat src.txt > out.txt; echo "$ORCH_EXECUTOR $ORCH_WORKER" >> out.txt'
    steps = f"    - name: a\n      run: {json.dumps(run)}\n      inputs: [src.txt]\n"
    repo.write("wf.yaml", workflow("w", steps + "      outputs: [out.txt]\n"))
    repo.write("src.txt", "one\n")
    repo.write(".gitignore", "out.txt\n")
    repo.commit()
    w = Watch(repo, "--executor", "dask", "--dask-address", cluster.address, "-j", "1")
    try:
        w.expect(r"^watch: cycle 1: start -> 1 ran, 0 failed", timeout=120)
    finally:
        w.close()
    first, where = repo.read("out.txt").splitlines()
    kind, worker = where.split()
    assert first == "one" and kind == "dask" and worker in cluster.workers()

    repo.write("src.txt", "two\n")
    out = Tools(repo.path).apply(executor="dask", dask_address=cluster.address)
    assert out["ok"], out
    [step] = out["steps"]
    assert step["status"] == "succeeded" and step["worker"] in cluster.workers()
    assert repo.read("out.txt") == f"two\ndask {step['worker']}\n"


@pytest.mark.slow
def test_watch_without_an_address_keeps_one_local_cluster_for_the_session(repo: Repo) -> None:
    import signal

    from tests.test_executor import wait_gone
    from tests.test_watch import Watch

    run = 'cat src.txt > out.txt; echo "$ORCH_WORKER $PPID" >> out.txt'
    steps = f"    - name: a\n      run: {json.dumps(run)}\n      inputs: [src.txt]\n"
    repo.write("wf.yaml", workflow("w", steps + "      outputs: [out.txt]\n"))
    repo.write("src.txt", "one\n")
    repo.write(".gitignore", "out.txt\n")
    repo.commit()
    w = Watch(repo, "--executor", "dask", "-j", "1")
    try:
        w.expect(r"^watch: cycle 1: start -> 1 ran, 0 failed", timeout=180)
        first = repo.read("out.txt").splitlines()[1].split()
        repo.write("src.txt", "two\n")
        w.expect(r"^watch: cycle 2: changed src.txt -> 1 ran, 0 failed", timeout=120)
        second = repo.read("out.txt").splitlines()
        assert second[0] == "two"
        assert second[1].split() == first  # the same worker process: the same cluster
        w.proc.send_signal(signal.SIGINT)  # Ctrl-C: watch ends and closes its cluster
        w.proc.wait(timeout=60)
    finally:
        w.close()
    assert w.proc.returncode in (0, 130)
    assert wait_gone(int(first[1]), timeout=30)  # the worker process went with the watch


@pytest.mark.slow
def test_system_status_lists_the_workers_and_their_resources(repo: Repo, cluster: Cluster) -> None:
    env = {"ORCH_DASK_ADDRESS": cluster.address}
    p = repo.orch("system", "status", "--json", env=env)
    assert p.returncode == 0, p.stderr
    c = json.loads(p.stdout)["cluster"]
    assert (c["address"], c["error"]) == (cluster.address, None)
    assert {w["address"] for w in c["workers"]} == cluster.workers()
    by_addr = {w["address"]: w for w in c["workers"]}
    assert by_addr[cluster.gpu_worker]["resources"] == {"gpu": 1}
    assert all(w["nthreads"] == 2 for w in c["workers"])
    text = repo.orch("system", "status", env=env).stdout.splitlines()
    assert f"dask scheduler {cluster.address}: 2 workers" in text
    gpu = next(x for x in text if x.strip().startswith(f"worker {cluster.gpu_worker}"))
    assert gpu.endswith("resources gpu=1")


def free_address() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_system_status_says_in_one_line_that_the_scheduler_is_unreachable(repo: Repo) -> None:
    address = free_address()
    repo.write(
        ".orch/config.yaml",
        f"apiVersion: orch/v1\nkind: Config\nexecutor: {{kind: dask, address: '{address}'}}\n",
    )
    p = repo.orch("system", "status")
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stdout.splitlines() if x.startswith("dask")]
    assert len(lines) == 1 and address in lines[0], p.stdout
    assert "last 24h" in p.stdout  # the rest of the report is still there
    c = json.loads(repo.orch("system", "status", "--json").stdout)["cluster"]
    assert c["address"] == address and c["workers"] == [] and address in c["error"]


def test_system_status_with_the_local_executor_asks_no_cluster(repo: Repo) -> None:
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", "-C", str(repo.path)]
        + ["system", "status", "--json"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "ORCH_DASK_ADDRESS"},
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["cluster"] is None
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    assert "runner.system" in imported  # the check can see what is imported
    assert "runner.execute.dask" not in imported and "distributed" not in imported


def _dask(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", f"distributed.cli.{module}", *args, "--no-dashboard"]
        + ["--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_a_scheduler_lost_mid_run_ends_the_run_as_interrupted(repo: Repo, tmp_path: Path) -> None:
    """A ``dask scheduler`` + ``dask worker`` pair of their own, as on two machines; the
    scheduler is killed while step a runs and b has finished."""
    import signal
    import time

    from tests.test_executor import wait_gone

    run = "[ -e go ] && exit 0; echo $$ > a.pid; sleep 120 & echo $! > child.pid; wait"
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            f"    - name: a\n      run: {json.dumps(run)}\n"
            "    - {name: b, run: touch b.txt, outputs: [b.txt]}\n"
            "    - {name: c, run: touch c.txt, needs: [a]}\n",
        ),
    )
    repo.write(".gitignore", "*.pid\ngo\nb.txt\nc.txt\n")
    repo.commit()
    info = tmp_path / "scheduler.json"
    scheduler = _dask("dask_scheduler", "--port", "0", "--scheduler-file", str(info))
    worker = None
    proc = None
    try:
        deadline = time.monotonic() + 120
        while not info.exists() or not info.read_text().strip().endswith("}"):
            assert scheduler.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        worker = _dask("dask_worker", address, "--nthreads", "2", "--memory-limit", "0")
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(repo.path), "apply", "-j", "2"]
            + ["--dask-address", address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        pid_files = [repo.path / "a.pid", repo.path / "child.pid"]
        while not all(f.exists() and f.read_text().endswith("\n") for f in pid_files) or not (
            repo.exists("b.txt") and any(t["status"] == "succeeded" for t in tasks(repo))
        ):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        pids = [int(f.read_text()) for f in pid_files]
        os.killpg(scheduler.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 130, err
        assert address in err.strip().splitlines()[-1], err
        assert "Traceback" not in err, err
        # this scheduler has Dask's default allowed-failures (3): said once, as it starts
        assert sum("ALLOWED_FAILURES=0" in x for x in err.splitlines()) == 1, err
        assert [r["status"] for r in runs(repo)] == ["interrupted"]
        by_step = {t["step"]: t for t in tasks(repo)}
        assert set(by_step) == {"a", "b"}  # c never started
        assert (by_step["a"]["status"], by_step["b"]["status"]) == ("interrupted", "succeeded")
        assert address in by_step["a"]["message"]
        con = sqlite3.connect(repo.path / ".orch" / "state.db")
        try:
            # the interrupted task keeps when it really started, not when it was seen lost
            [(began, ended)] = con.execute("SELECT started, ended FROM steps WHERE step='a'")
            assert began < ended
            open_rows = (
                con.execute(
                    "SELECT count(*) FROM tasks WHERE status IN ('running', 'queued')"
                ).fetchone()[0]
                + con.execute("SELECT count(*) FROM steps WHERE status='running'").fetchone()[0]
            )
        finally:
            con.close()
        assert open_rows == 0
        # the worker, left without its scheduler, closes and ends the task's tree
        assert all(wait_gone(pid, timeout=60) for pid in pids)
    finally:
        for p in (proc, worker, scheduler):
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL) if p is not proc else p.kill()
                p.wait()
    # the next apply runs exactly what was in flight (and what waited on it), no more
    repo.write("go", "")
    plan = repo.plan()
    assert {k[1]: v[0] for k, v in plan.items()} == {"a": "run", "b": "up-to-date", "c": "run"}
    out = repo.apply("--executor", "local")
    assert out["ok"] and out["ran"] == ["a", "c"], out
