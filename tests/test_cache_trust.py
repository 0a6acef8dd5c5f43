"""What the result cache trusts, through the real CLI: an entry it cannot read is a miss
with one warning naming its file and what to do, and gc drops it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Repo
from tests.test_result_cache import _apply_ok, _runs, _setup

# the suite runs with ORCH_NO_CACHE=1 (conftest); these tests are about the cache
pytestmark = pytest.mark.usefixtures("cache_on")


def _entries(repo: Repo) -> list[Path]:
    return sorted((repo.path / ".orch/cache/results/entries").rglob("*.json"))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d: {**d, "format": 99}, "has format 99, not 1 (another orch version wrote it)"),
        (lambda d: {**d, "outputs": "x"}, "has a shape orch does not write (damaged)"),
        (lambda d: {**d, "key": "0" * 32}, "names another key (damaged or moved)"),
        (lambda d: None, "is not JSON (damaged)"),
    ],
)
def test_an_entry_it_cannot_read_is_a_miss_with_one_warning(repo: Repo, damage, why) -> None:
    _setup(repo)
    _apply_ok(repo)
    before = {p: json.loads(p.read_text()) for p in _entries(repo)}
    repo.write("src.txt", "changed\n")
    _apply_ok(repo)
    repo.write("src.txt", "one\n")  # back to the first apply's inputs: both are cached
    for p, data in before.items():
        bad = damage(data)
        p.chmod(0o644)
        p.write_text("{not json" if bad is None else json.dumps(bad))
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if "warning" in ln]
    rels = sorted(str(e.relative_to(repo.path / ".orch/cache/results")) for e in before)
    assert len(warnings) == 2, p.stderr  # one per entry, though each is read twice
    for line, rel in zip(sorted(warnings), rels, strict=True):
        assert line == (
            f"orch: warning: result cache entry .orch/cache/results/{rel} {why}; counted"
            " as a miss (the step runs): drop it with orch cache gc, or orch cache clear"
        )
    assert _runs(repo)[-2:] == ["build", "use"]  # both ran again: misses
    assert repo.read("out.txt") == "one\n"
    # the runs stored good entries under the same keys; damaged again, gc drops them
    assert {p: json.loads(p.read_text())["format"] for p in before} == dict.fromkeys(before, 1)
    for p, data in before.items():
        bad = damage(data)
        p.write_text("{not json" if bad is None else json.dumps(bad))
    gc = repo.orch_json("cache", "gc", "--older-than", "3650d")
    assert (gc["removed"], gc["entries"]) == (2, 2), gc
    assert not any(p.exists() for p in before)
    again = repo.orch("apply")  # nothing unreadable is left: no warning
    assert again.returncode == 0 and "warning" not in again.stderr, again.stderr


OUTPUTS = """\
    - name: a
      inputs: [src.txt]
      outputs: [a.txt]
      run: |
        echo a >> runs.log
        cat src.txt > a.txt
        echo "v=pre-$PLAIN-post" >> "$ORCH_OUTPUT"
    - name: b
      cache: false
      needs: [a]
      outputs: [b.txt]
      run: |
        echo b >> runs.log
        echo '{{ steps.a.outputs.v }}' > b.txt
"""
DECLARES = "\n---\napiVersion: orch/v1\nkind: Workflow\nmetadata: {name: x}\nspec:\n  steps:\n    - name: d\n      secrets: [PLAIN]\n      run: 'true'\n"


def test_restored_output_values_reach_later_steps_as_a_runs_do(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value cached in clear (its variable was not yet a secret) and restored after it
    was declared reaches a later step's command masked, as the value of a real run does:
    the executor masks a task's output values with the run's secrets."""
    from tests.conftest import workflow

    monkeypatch.setenv("PLAIN", "hunter2-token")
    _setup(repo)
    repo.write("wf.yaml", workflow("w", OUTPUTS))
    repo.write(".gitignore", "runs.log\na.txt\nb.txt\n")
    _apply_ok(repo, "w")
    assert repo.read("b.txt") == "pre-hunter2-token-post\n"  # not a secret yet
    repo.write("wf.yaml", workflow("w", OUTPUTS) + DECLARES)  # now it is
    repo.write("src.txt", "two\n")
    _apply_ok(repo, "w")  # a real run: b gets the value masked
    assert repo.read("b.txt") == "pre-***-post\n"
    repo.write("src.txt", "one\n")
    data = _apply_ok(repo, "w")  # a comes from the cache, stored in clear by the first
    assert {s["step"]: s["status"] for s in data["steps"]} == {"a": "restored", "b": "succeeded"}
    assert repo.read("b.txt") == "pre-***-post\n"
    assert "hunter2-token" not in json.dumps(repo.orch_json("status", "w"))


def test_a_remote_stores_restores_count_as_uses_for_gc(tmp_path: Path) -> None:
    """gc drops the least recently used entry of a remote store too: a restore marks a
    use (the entry's mtime alone said when it was written, so gc dropped what was just
    restored)."""
    pytest.importorskip("fsspec")
    from runner.store.results import open_store, result_key

    work = tmp_path / "work"
    work.mkdir()
    remote = tmp_path / "remote"
    store = open_store(work, {"remote": remote.as_uri()})
    keys = {}
    for name in ("old", "new"):
        (work / "out.txt").write_text(name * 100)
        keys[name] = result_key(name * 16)
        assert store.put(keys[name], root=work, files=["out.txt"], values={}, meta={})
    for age, name in ((3600, "old"), (60, "new")):  # written an hour and a minute ago
        entry = next(remote.glob(f"entries/*/{keys[name]}.json"))
        os.utime(entry, (entry.stat().st_atime, entry.stat().st_mtime - age))
    assert [e.key for e in store.entries()] == [keys["old"], keys["new"]]
    assert store.restore(keys["old"], work) == {}  # a use: now the most recent
    assert [e.key for e in store.entries()] == [keys["new"], keys["old"]]
    assert store.gc(max_size=300)[0] == 1
    assert [e.key for e in store.entries()] == [keys["old"]]
    store.clear()
    assert not [p for p in remote.rglob("*") if p.is_file()]  # use marks go with entries
