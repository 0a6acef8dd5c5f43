"""Issue 11, kind 3: local caches are data, never code.

Whoever can write ``.orch/`` must not get to run code in every later ``orch``. The manifest
cache and the no-op witness were pickles unpickled on every plan, and the compiled schema
validator was Python read from ``.orch/cache/`` and executed. Each test plants what an
attacker would and checks nothing ran; a broken cache is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

WF = workflow("w", "    - {name: s, run: echo hi, inputs: [in.txt]}\n")


class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):  # what a hostile pickle does on load
        return (os.system, (f"touch {self.target}",))


def _settle(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    repo.write("in.txt", "1\n")
    assert repo.apply()["ok"]
    assert repo.orch("plan").returncode == 0


def test_a_hostile_pickle_in_the_cache_folder_is_never_loaded(repo: Repo) -> None:
    _settle(repo)
    cache = repo.path / ".orch" / "cache"
    for name in ("manifests.pickle", "noop.pickle"):
        (cache / name).write_bytes(pickle.dumps(_Evil(repo.path / f"pwned-{name}")))
    for verb in (("plan",), ("validate",), ("apply",), ("status",)):
        assert repo.orch(*verb).returncode == 0
    assert sorted(p.name for p in repo.path.glob("pwned*")) == []


def _schema_tag(name: str, extra: str = "") -> str:
    from runner.manifests.schema import load_schema

    text = json.dumps(load_schema(name), sort_keys=True) + extra
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def test_compiled_validators_are_never_read_from_the_repository(repo: Repo) -> None:
    cache = repo.path / ".orch" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    evil = f"open({str(repo.path / 'pwned')!r}, 'w').close()\ndef validate(data): return data\n"
    for name in ("workflow", "config"):
        (cache / f"schema-{name}-{_schema_tag(name)}.py").write_text(evil)
    repo.write("wf.yaml", WF)
    assert repo.orch("validate").returncode == 0
    assert not (repo.path / "pwned").exists()


def test_a_compiled_validator_others_can_write_is_not_trusted(repo: Repo) -> None:
    import fastjsonschema

    user_cache = Path(os.environ["XDG_CACHE_HOME"]) / "orch"
    user_cache.mkdir(parents=True, exist_ok=True)
    evil = f"open({str(repo.path / 'pwned')!r}, 'w').close()\ndef validate(data): return data\n"
    for name in ("workflow", "config"):
        planted = user_cache / f"schema-{name}-{_schema_tag(name, fastjsonschema.VERSION)}.py"
        planted.write_text(evil)
        planted.chmod(0o666)
    repo.write("wf.yaml", WF)
    assert repo.orch("validate").returncode == 0
    assert not (repo.path / "pwned").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x80\x04garbage",
        b'["orch-cache", null, {"~c": "system", "f": {"command": "touch pwned"}}]',
        b'{"not": "ours"}',
        b"[",
    ],
    ids=["empty", "binary", "unknown-class", "foreign", "truncated"],
)
def test_a_broken_or_foreign_cache_is_a_miss(repo: Repo, content: bytes) -> None:
    _settle(repo)
    cache = repo.path / ".orch" / "cache"
    for name in ("manifests.json", "noop.json"):
        (cache / name).write_bytes(content)
    assert repo.plan() == {("w", "s"): ("up-to-date", [])}
    repo.write("in.txt", "2\n")
    assert repo.plan() == {("w", "s"): ("run", ["input changed: in.txt"])}
    assert not (repo.path / "pwned").exists()


def test_a_truncated_manifest_cache_is_rebuilt(repo: Repo) -> None:
    _settle(repo)
    path = repo.path / ".orch" / "cache" / "manifests.json"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    repo.write("wf.yaml", WF.replace("echo hi", "echo bye"))
    assert repo.plan() == {("w", "s"): ("run", ["definition changed (run)"])}
    assert len(path.read_bytes()) > len(whole) // 2


def test_the_codec_builds_only_the_classes_it_was_given() -> None:
    from dataclasses import dataclass

    from runner.store.datacache import Codec

    @dataclass(frozen=True)
    class Point:
        x: int
        y: tuple[int, ...] = ()

    codec = Codec([Point])
    value = {"p": Point(1, (2, 3)), (1, "a"): {4, 5}, "~k": [None, 1.5, True]}
    assert codec.loads(codec.dumps(value, "v1"), "v1") == value
    assert codec.loads(codec.dumps(value, "v1"), "v2") is None  # another writer: a miss
    data = codec.dumps(Point(1))
    assert Codec([]).loads(data) is None
    assert codec.loads(data.replace(b'"x"', b'"z"')) is None
    assert codec.loads(data.replace(b'"Point"', b'"object"')) is None


@pytest.mark.parametrize("name", ["cache/manifests.json", "cache/noop.json", "fingerprint.key"])
def test_a_fifo_in_place_of_a_cache_or_the_key_is_a_miss_not_a_hang(repo: Repo, name: str) -> None:
    """Whoever can write .orch/ put a FIFO where orch reads: the read blocked for ever (and
    the open, in a worker thread, outlived SIGTERM)."""
    repo.write(
        "wf.yaml", workflow("w", "    - name: s\n      run: 'echo {{ env.HOME }} > /dev/null'\n")
    )
    repo.commit()
    assert repo.apply()["ok"]
    assert repo.orch("plan").returncode == 0  # all up to date: writes the no-op witness
    path = repo.path / ".orch" / name
    path.unlink()
    os.mkfifo(path)
    p = repo.orch("plan", "--json", timeout=30)
    assert p.returncode == 0, p.stderr
    assert [s["step"] for s in json.loads(p.stdout)["steps"]] == ["s"]
    assert repo.apply()["ok"]  # a run works too (the key is made afresh)


def test_a_fifo_in_place_of_a_log_is_an_error_not_a_hang(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    repo.write("in.txt", "1\n")
    repo.commit()
    assert repo.apply()["ok"]
    (log,) = (repo.path / ".orch" / "logs").rglob("*.log")
    log.unlink()
    os.mkfifo(log)
    p = repo.orch("logs", "w", "s", timeout=30)
    assert p.returncode == 1
    assert "not a regular file" in p.stderr and p.stderr.count("\n") == 1
