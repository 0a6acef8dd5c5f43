"""The result cache through the real CLI (issue #14): a step whose fingerprint was seen
before is restored, not run. Runs are counted by a line each task appends to runs.log."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

# the suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache
pytestmark = pytest.mark.usefixtures("cache_on")


BUILD = """\
    - name: build
      inputs: [src.txt]
      outputs: [out.txt, dist/]
      run: |
        echo build >> runs.log
        mkdir -p dist/sub
        cat src.txt > out.txt
        echo "{{ params.version }}" > dist/sub/version.txt
        printf '#!/bin/sh\\necho hi\\n' > dist/tool.sh && chmod +x dist/tool.sh
        echo size=$(wc -c < src.txt) >> "$ORCH_OUTPUT"
    - name: use
      inputs: [out.txt]
      outputs: [final.txt]
      run: |
        echo use >> runs.log
        cat out.txt > final.txt
        echo "{{ steps.build.outputs.size }}" >> final.txt
"""


def _setup(repo: Repo, config: str = "") -> None:
    repo.write(".orch/config.yaml", f"apiVersion: orch/v1\nkind: Config\n{config}")
    repo.write("wf.yaml", workflow("w", BUILD, extra="  params: {version: '1'}\n"))
    repo.write("src.txt", "one\n")
    repo.write(".gitignore", "runs.log\nout.txt\ndist/\nfinal.txt\n")


def _runs(repo: Repo) -> list[str]:
    return repo.read("runs.log").split() if repo.exists("runs.log") else []


def _apply_ok(repo: Repo, *args: str) -> dict:
    data = repo.apply(*args)
    assert data["ok"], data
    return data


def _status(data: dict) -> dict[str, str]:
    return {s["step"]: s["status"] for s in data["steps"]}


def test_branch_switch_back_and_forth_restores_without_running(repo: Repo) -> None:
    _setup(repo)
    repo.commit("one")
    _apply_ok(repo)
    assert _runs(repo) == ["build", "use"]
    repo.git("checkout", "-q", "-b", "other")
    repo.write("src.txt", "two two\n")
    repo.commit("two")
    _apply_ok(repo)
    assert _runs(repo) == ["build", "use"] * 2
    repo.git("checkout", "-q", "main")
    plan = repo.plan()
    assert plan[("w", "build")][0] == "restore"
    assert plan[("w", "build")][1][-1].startswith("will restore: cached result from ")
    # use is decided on what build's entry will bring back (issue #14): restored too
    action, reasons = plan[("w", "use")]
    assert action == "restore"
    assert reasons[:-1] == [
        "input changed: out.txt",
        "upstream changed: build",
        "upstream will restore: build",
    ]
    assert reasons[-1].startswith("will restore: cached result from ")
    summary = repo.orch_json("plan")["summary"]
    assert (summary["restore"], summary["may-run"], summary["run"]) == (2, 0, 0)
    human = repo.orch("plan").stdout
    assert "2 to restore from the cache" in human and "will restore: cached result" in human
    data = _apply_ok(repo)
    assert _status(data) == {"build": "restored", "use": "restored"}
    assert data["counts"] == {"restored": 2}
    assert _runs(repo) == ["build", "use"] * 2  # nothing ran
    assert repo.read("out.txt") == "one\n" and repo.read("final.txt") == "one\n4\n"
    assert os.access(repo.path / "dist/tool.sh", os.X_OK)
    assert not (repo.path / "out.txt").is_symlink()
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}
    repo.git("checkout", "-q", "other")
    assert _status(_apply_ok(repo)) == {"build": "restored", "use": "restored"}
    assert repo.read("final.txt") == "two two\n8\n"
    assert len(_runs(repo)) == 4


def test_param_flip_flop_restores(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)
    _apply_ok(repo, "--param", "version=2")
    assert _runs(repo) == ["build", "use"] * 2
    assert repo.read("dist/sub/version.txt") == "2\n"
    data = _apply_ok(repo)
    assert _status(data) == {"build": "restored", "use": "restored"}
    assert repo.read("dist/sub/version.txt") == "1\n"
    _apply_ok(repo, "--param", "version=2")
    assert repo.read("dist/sub/version.txt") == "2\n"
    assert len(_runs(repo)) == 4


def test_output_deleted_is_restored_not_run(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)
    shutil.rmtree(repo.path / "dist")
    assert repo.plan()[("w", "build")][0] == "restore"
    assert _status(_apply_ok(repo)) == {"build": "restored", "use": "up-to-date"}
    assert repo.read("dist/sub/version.txt") == "1\n"
    assert len(_runs(repo)) == 2


def _clone(repo: Repo, tmp_path: Path, name: str) -> Repo:
    dest = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(repo.path), str(dest)], check=True)
    return Repo(dest)


def test_two_clones_sharing_cache_dir(repo: Repo, tmp_path: Path) -> None:
    shared = tmp_path / "shared-cache"
    _setup(repo, f"cache: {{dir: {shared}}}\n")
    repo.commit()
    _apply_ok(repo)
    assert (shared / "entries").is_dir()
    other = _clone(repo, tmp_path, "clone")
    plan = other.plan()
    assert plan[("w", "build")][0] == "restore"
    assert _status(_apply_ok(other)) == {"build": "restored", "use": "restored"}
    assert _runs(other) == []
    assert other.read("final.txt") == "one\n4\n"


def test_file_remote_used_by_a_fresh_clone(repo: Repo, tmp_path: Path) -> None:
    url = (tmp_path / "remote").as_uri()
    _setup(repo, f"cache: {{remote: '{url}'}}\n")
    repo.commit()
    _apply_ok(repo)
    other = _clone(repo, tmp_path, "fresh")
    data = _apply_ok(other)
    assert _status(data) == {"build": "restored", "use": "restored"}
    assert _runs(other) == []
    assert other.read("dist/sub/version.txt") == "1\n"


def test_corrupted_blob_is_a_miss_with_one_warning(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)
    repo.write("src.txt", "changed\n")
    _apply_ok(repo)
    repo.write("src.txt", "one\n")
    blobs = repo.path / ".orch/cache/results/blobs"
    victim = next(p for p in blobs.rglob("*") if p.is_file() and p.read_bytes() == b"one\n")
    os.chmod(victim, 0o644)
    victim.write_bytes(b"bad!\n")
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "corrupted" in warnings[0], p.stderr
    # build ran again; use, whose inputs are as in the first apply, was restored
    assert _runs(repo) == ["build", "use", "build", "use", "build"]
    assert repo.read("out.txt") == "one\n"


def test_cache_false_on_a_step_and_no_cache_flag(repo: Repo) -> None:
    _setup(repo)
    text = repo.read("wf.yaml").replace(
        "      outputs: [final.txt]\n", "      outputs: [final.txt]\n      cache: false\n"
    )
    repo.write("wf.yaml", text, dedent=False)
    _apply_ok(repo)
    repo.write("src.txt", "two\n")
    _apply_ok(repo)
    repo.write("src.txt", "one\n")
    assert repo.plan("--no-cache")[("w", "build")][0] == "run"
    data = _apply_ok(repo)
    assert _status(data) == {"build": "restored", "use": "succeeded"}  # use: cache: false
    repo.write("src.txt", "two\n")
    data = _apply_ok(repo, "--no-cache")
    assert _status(data) == {"build": "succeeded", "use": "succeeded"}
    assert _runs(repo).count("build") == 3


def test_steps_without_outputs_are_never_cached(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w", "    - name: say\n      inputs: [src.txt]\n      run: echo say >> runs.log\n"
        ),
    )
    repo.write("src.txt", "a\n")
    _apply_ok(repo)
    repo.write("src.txt", "b\n")
    _apply_ok(repo)
    repo.write("src.txt", "a\n")
    assert repo.plan()[("w", "say")][0] == "run"
    _apply_ok(repo)
    assert _runs(repo) == ["say"] * 3
    assert not (repo.path / ".orch/cache/results/entries").exists()


def test_forced_steps_run(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)
    assert _status(_apply_ok(repo, "--force", "build"))["build"] == "succeeded"
    assert _runs(repo).count("build") == 2


def test_restored_events_and_json(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)
    (repo.path / "out.txt").unlink()
    events = repo.path.parent / "events.jsonl"
    p = repo.orch("apply", "--events", str(events))
    assert p.returncode == 0, p.stderr
    assert "restored w/build" in p.stderr
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    types = [e["type"] for e in lines]
    assert "step.restored" in types
    planned = next(e for e in lines if e["type"] == "step.planned" and e["step"] == "build")
    assert planned["action"] == "restore"
    assert lines[-1]["counts"].get("restored") == 1


def test_secrets_never_reach_keys_or_entries(repo: Repo) -> None:
    steps = """\
    - name: deploy
      secrets: [TOKEN]
      outputs: [receipt.txt]
      run: |
        echo deploy >> runs.log
        echo "done {{ env.TOKEN | length }}" > receipt.txt
        echo "token=$TOKEN" >> "$ORCH_OUTPUT"
        echo "plain=ok" >> "$ORCH_OUTPUT"
"""
    repo.write("wf.yaml", workflow("w", steps))
    secret = "s3cr3t-value-123456"
    p = repo.orch("apply", env={"TOKEN": secret})
    assert p.returncode == 0, p.stderr
    cache = repo.path / ".orch/cache/results"
    for f in cache.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
            assert secret not in f.name
    (repo.path / "receipt.txt").unlink()
    p = repo.orch("apply", "--json", env={"TOKEN": secret})
    assert _status(json.loads(p.stdout)) == {"deploy": "restored"}
    assert _runs(repo) == ["deploy"]


def test_secret_read_in_the_command_keys_by_digest(repo: Repo) -> None:
    steps = """\
    - name: sign
      outputs: [sig.txt]
      run: |
        echo sign >> runs.log
        echo "{{ env.KEY | length }}" > sig.txt
"""
    repo.write("wf.yaml", workflow("w", steps))
    secret = "another-secret-987654"
    assert repo.orch("apply", env={"KEY": secret}).returncode == 0
    assert repo.orch("apply", env={"KEY": secret + "x"}).returncode == 0
    assert _runs(repo) == ["sign", "sign"]
    p = repo.orch("apply", "--json", env={"KEY": secret})
    assert _status(json.loads(p.stdout)) == {"sign": "restored"}
    for f in (repo.path / ".orch/cache").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes()


def test_a_restored_file_edited_in_place_leaves_the_cache_intact(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)
    (repo.path / "out.txt").unlink()
    _apply_ok(repo)  # restored (a copy)
    st = os.lstat(repo.path / "out.txt")
    assert not stat.S_ISLNK(st.st_mode) and st.st_nlink == 1
    with open(repo.path / "out.txt", "w") as f:  # an in-place edit
        f.write("edited\n")
    assert repo.plan()[("w", "build")][0] == "restore"  # output modified: heal from the cache
    data = _apply_ok(repo)
    assert _status(data)["build"] == "restored"
    assert repo.read("out.txt") == "one\n"


def test_hardlink_setting_restores_read_only_hard_links(repo: Repo) -> None:
    _setup(repo, "cache: {link: hardlink}\n")
    _apply_ok(repo)
    (repo.path / "out.txt").unlink()
    _apply_ok(repo)
    st = os.lstat(repo.path / "out.txt")
    assert not stat.S_ISLNK(st.st_mode) and st.st_nlink >= 2
    assert stat.S_IMODE(st.st_mode) & 0o222 == 0


MODES = """\
    - name: make
      outputs: [tool.sh, key.txt, ro.txt, bin/]
      run: |
        echo make >> runs.log
        printf '#!/bin/sh\\necho tool ran\\n' > tool.sh && chmod 755 tool.sh
        echo secret > key.txt && chmod 600 key.txt
        echo fixed > ro.txt && chmod 444 ro.txt
        mkdir -p bin/sub && printf '#!/bin/sh\\necho deep\\n' > bin/sub/run.sh
        chmod 750 bin/sub/run.sh && echo data > bin/data.txt && chmod 644 bin/data.txt
    - name: use
      inputs: [tool.sh, "bin/**"]
      outputs: [used.txt]
      run: |
        echo use >> runs.log
        ./tool.sh > used.txt && ./bin/sub/run.sh >> used.txt
"""


@pytest.mark.parametrize("link", ["copy", "hardlink"])
def test_a_restore_brings_back_each_file_with_its_mode_executables_run(
    repo: Repo, tmp_path: Path, link: str
) -> None:
    """A fresh clone sharing the cache: every restored file has the mode the step gave
    it (under ``link: hardlink`` less its write bits where it is a link to a blob: an
    executable one keeps its x bits), the executables run, and the step reading them is
    planned and applied restored, not run again."""
    shared = tmp_path / "shared"
    repo.write(".orch/config.yaml", f"apiVersion: orch/v1\nkind: Config\n"
               f"cache: {{dir: '{shared}', link: {link}}}\n")  # fmt: skip
    repo.write("wf.yaml", workflow("w", MODES))
    repo.write(".gitignore", "runs.log\ntool.sh\nkey.txt\nro.txt\nbin/\nused.txt\n")
    repo.commit()
    assert _status(_apply_ok(repo)) == {"make": "succeeded", "use": "succeeded"}
    other = _clone(repo, tmp_path, "clone")
    planned = {s: a for (_, s), (a, _) in other.plan().items()}
    assert planned == {"make": "restore", "use": "restore"}
    assert _status(_apply_ok(other)) == {"make": "restored", "use": "restored"}
    assert _runs(other) == []
    stored = {"tool.sh": 0o755, "key.txt": 0o600, "ro.txt": 0o444, "bin/sub/run.sh": 0o750,
              "bin/data.txt": 0o644}  # fmt: skip
    # by hard link: a link where the blob's mode (0444, 0555) is the file's less its write
    # bits; a file whose mode no blob has (0600, 0750) is a copy with its own mode
    linked = {"tool.sh", "ro.txt", "bin/data.txt"} if link == "hardlink" else set()
    for rel, mode in stored.items():
        st = os.lstat(other.path / rel)
        want = mode & ~0o222 if rel in linked else mode
        assert (stat.S_IMODE(st.st_mode), st.st_nlink > 1) == (want, rel in linked), rel
    ran = subprocess.run(["./tool.sh"], cwd=other.path, capture_output=True, text=True)
    assert ran.stdout == "tool ran\n"
    assert other.read("used.txt") == "tool ran\ndeep\n"
    assert {a for a, _ in other.plan().values()} == {"up-to-date"}
    assert _status(_apply_ok(other)) == {"make": "up-to-date", "use": "up-to-date"}
    assert _runs(other) == []


def test_orch_no_cache_variable_turns_it_off(repo: Repo) -> None:
    _setup(repo)
    assert repo.orch("apply", env={"ORCH_NO_CACHE": "1"}).returncode == 0
    assert not (repo.path / ".orch/cache/results").exists()


def test_cache_false_in_config_turns_it_off(repo: Repo) -> None:
    _setup(repo, "cache: false\n")
    _apply_ok(repo)
    assert not (repo.path / ".orch/cache/results").exists()


def test_bad_cache_setting_is_a_one_line_error(repo: Repo) -> None:
    _setup(repo, "cache: {dri: x}\n")
    p = repo.orch("plan")
    assert p.returncode != 0
    assert ".orch/config.yaml" in p.stderr and "dri" in p.stderr
    assert "Traceback" not in p.stderr


def test_concurrent_applies_in_two_clones_share_one_cache(repo: Repo, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    _setup(repo, f"cache: {{dir: {shared}}}\n")
    repo.commit()
    clones = [_clone(repo, tmp_path, f"c{i}") for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "runner", "-C", str(c.path), "apply", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in clones
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    fresh = _clone(repo, tmp_path, "c3")
    assert _status(_apply_ok(fresh)) == {"build": "restored", "use": "restored"}
    assert fresh.read("final.txt") == "one\n4\n"


def test_a_step_rewriting_a_hard_linked_output_in_place_leaves_the_blob_intact(
    repo: Repo,
) -> None:
    _setup(repo, "cache: {link: hardlink}\n")
    _apply_ok(repo)
    repo.write("src.txt", "two\n")
    _apply_ok(repo)
    repo.write("src.txt", "one\n")
    assert _status(_apply_ok(repo))["build"] == "restored"  # out.txt: a link to a blob
    repo.write("src.txt", "two\n")  # restored too; then a real run rewrites out.txt in place
    shutil.rmtree(repo.path / ".orch/cache/results/entries")
    p = repo.orch("apply")
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    assert repo.read("out.txt") == "two\n"
    blobs = [b.read_bytes() for b in (repo.path / ".orch/cache/results/blobs").rglob("*")
             if b.is_file()]  # fmt: skip
    assert b"one\n" in blobs  # the blob out.txt was linked to is untouched
    repo.write("src.txt", "one\n")
    p = repo.orch("apply")
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr
    assert repo.read("out.txt") == "one\n"


def test_clones_share_results_of_steps_reading_the_environment_but_not_of_secrets(
    repo: Repo, tmp_path: Path
) -> None:
    steps = """\
    - name: greet
      outputs: [greeting.txt]
      run: |
        echo greet >> runs.log
        echo "{{ env.GREETING }}" > greeting.txt
    - name: sign
      secrets: [TOKEN]
      outputs: [sig.txt]
      run: |
        echo sign >> runs.log
        echo "{{ env.TOKEN | length }}" > sig.txt
"""
    shared = tmp_path / "shared"
    repo.write(
        ".orch/config.yaml", f"apiVersion: orch/v1\nkind: Config\ncache: {{dir: {shared}}}\n"
    )
    repo.write("wf.yaml", workflow("w", steps))
    repo.write(".gitignore", "runs.log\n*.txt\n")
    repo.commit()
    env = {"GREETING": "hello", "TOKEN": "tok-secret-value-42"}
    assert repo.orch("apply", env=env).returncode == 0
    other = _clone(repo, tmp_path, "clone")
    p = other.orch("apply", "--json", env=env)
    assert _status(json.loads(p.stdout)) == {"greet": "restored", "sign": "succeeded"}
    assert other.read("greeting.txt") == "hello\n"
    for f in shared.rglob("*"):
        if f.is_file():
            assert b"tok-secret-value-42" not in f.read_bytes()


def test_a_remote_fsspec_cannot_open_is_a_one_line_error(repo: Repo) -> None:
    _setup(repo, "cache: {remote: 'nosuch://bucket/orch'}\n")
    p = repo.orch("apply")
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].startswith("orch: .orch/config.yaml: cache.remote ")
    assert "nosuch" in p.stderr and "Traceback" not in p.stderr
    assert _runs(repo) == []


def test_a_saved_plan_that_restores_is_applied_exactly(repo: Repo) -> None:
    _setup(repo)
    _apply_ok(repo)
    (repo.path / "out.txt").unlink()
    saved = repo.path.parent / "plan.json"
    assert repo.orch("plan", "--out", str(saved)).returncode == 0
    steps = {s["step"]: s["action"] for s in json.loads(saved.read_text())["steps"]}
    # out.txt is missing now, but the restore brings it back as use last read it
    assert steps == {"build": "restore", "use": "up-to-date"}
    data = _apply_ok(repo, str(saved))
    assert _status(data) == {"build": "restored", "use": "up-to-date"}
    assert _runs(repo) == ["build", "use"]


def test_restore_decided_again_when_an_input_changed_since_the_plan(repo: Repo) -> None:
    """A step the plan restores is not decided again at its start only while its inputs
    hash as the plan saw them: a step that ran first (``-j 1``, declared first) and
    rewrote its input, undeclared, makes it decided again: it runs on the new input
    instead of restoring the result of the old one."""
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    steps = """\
    - name: touch
      inputs: [trigger.txt]
      run: cat trigger.txt > in.txt
    - name: b
      inputs: [in.txt]
      outputs: [b.txt]
      run: |
        echo b >> runs.log
        cat in.txt > b.txt
"""
    repo.write("wf.yaml", workflow("w", steps))
    repo.write(".gitignore", "runs.log\nb.txt\nin.txt\ntrigger.txt\n")
    repo.commit("wf")
    repo.write("trigger.txt", "1\n")
    repo.write("in.txt", "v1\n")
    _apply_ok(repo, "-j", "1")  # touch wrote "1" over v1 before b started: b read "1"
    repo.write("in.txt", "v1\n")
    _apply_ok(repo, "-j", "1")  # b's result for v1 is in the cache
    repo.write("in.txt", "v2\n")
    _apply_ok(repo, "-j", "1")  # b's record is now for v2; touch stays up to date
    repo.write("in.txt", "v1\n")
    repo.write("trigger.txt", "2\n")  # touch runs first and writes "2" over v1
    plan = repo.plan()
    assert plan[("w", "b")][0] == "restore"
    assert plan[("w", "touch")][0] == "run"
    runs = len(_runs(repo))
    data = _apply_ok(repo, "-j", "1")
    assert _status(data)["b"] == "succeeded", data
    assert len(_runs(repo)) == runs + 1
    assert repo.read("b.txt") == "2\n"
