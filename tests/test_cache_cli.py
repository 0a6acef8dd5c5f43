"""``orch cache status|gc|clear`` through the real CLI, over a real result store.

Entries are stored with the store's own API (``runner.store.results``), as an apply
would; an entry is made older by its file's mtime, which is what the store reads as its
last use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runner.store.results import open_store, result_key
from tests.conftest import Repo

DAY = 86400.0


def _put(repo: Repo, name: str, size: int, *, used_days_ago: float = 0.0) -> str:
    """Store a result of one file of ``size`` bytes under a key made from ``name``;
    its last use ``used_days_ago`` days back. Returns the key."""
    rel = f"out/{name}.bin"
    path = repo.path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode()[:1] * size)
    key = result_key(name.ljust(32, "0"))
    store = open_store(repo.path, None)
    assert store.put(key, root=repo.path, files=[rel], values={"n": name}, meta={})
    when = time.time() - used_days_ago * DAY
    (entry,) = (repo.path / ".orch/cache/results").rglob(f"{key}.json")
    os.utime(entry, (when, when))
    return key


def _keys(repo: Repo) -> set[str]:
    return {e.key for e in open_store(repo.path, None).entries()}


@pytest.fixture
def cached(repo: Repo) -> dict[str, str]:
    """Three results, oldest use first: a (3 days, 300 B), b (2 days, 200 B), c (today, 100 B)."""
    repo.commit()
    return {
        "a": _put(repo, "a", 300, used_days_ago=3),
        "b": _put(repo, "b", 200, used_days_ago=2),
        "c": _put(repo, "c", 100),
    }


def test_status_counts_entries_bytes_and_the_hit_rate(repo: Repo, cached: dict[str, str]) -> None:
    store = open_store(repo.path, None)
    assert store.restore(cached["c"], repo.path) == {"n": "c"}  # a hit
    assert store.restore(cached["c"], repo.path) == {"n": "c"}  # a hit
    assert store.restore(result_key("x" * 32), repo.path) is None  # a miss
    data = repo.orch_json("cache", "status")
    assert data == {
        "location": ".orch/cache/results/",
        "enabled": True,
        "entries": 3,
        "bytes": 600,
        "hits": 2,
        "misses": 1,
        "hit_rate": pytest.approx(2 / 3),
        "max_size": None,
    }
    p = repo.orch("cache", "status")
    assert p.returncode == 0, p.stderr
    assert "entries:   3" in p.stdout
    assert "size:      600B" in p.stdout
    assert "hit rate:  67% (2 of 3 lookups restored)" in p.stdout


def test_status_says_when_the_config_turns_the_cache_off(repo: Repo) -> None:
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\ncache: false\n")
    repo.commit()
    assert repo.orch_json("cache", "status")["enabled"] is False
    p = repo.orch("cache", "status")
    assert "(off: cache: false in .orch/config.yaml)" in p.stdout


def test_status_of_an_empty_cache_creates_nothing(repo: Repo) -> None:
    repo.commit()
    data = repo.orch_json("cache", "status")
    assert (data["entries"], data["bytes"], data["hit_rate"]) == (0, 0, None)
    assert "no lookups yet" in repo.orch("cache", "status").stdout
    assert not (repo.path / ".orch/cache/results").exists()


def test_gc_by_size_drops_the_least_recently_used_first(repo: Repo, cached: dict[str, str]) -> None:
    p = repo.orch("cache", "gc", "--max-size", "350B")
    assert p.returncode == 0, p.stderr
    # a (300 B, oldest) goes, and then 300 B are left: within 350 B
    assert _keys(repo) == {cached["b"], cached["c"]}
    assert p.stdout.strip() == ("removed 1 entry (300B) from .orch/cache/results/; 2 left (300B)")
    data = repo.orch_json("cache", "gc", "--max-size", "100")
    assert (data["removed"], data["freed"], data["entries"], data["bytes"]) == (1, 200, 1, 100)
    assert _keys(repo) == {cached["c"]}
    # what is left restores whole
    (repo.path / "out/c.bin").unlink()
    assert open_store(repo.path, None).restore(cached["c"], repo.path) == {"n": "c"}
    assert repo.read("out/c.bin") == "c" * 100


def test_a_restore_counts_as_a_use(repo: Repo, cached: dict[str, str]) -> None:
    assert open_store(repo.path, None).restore(cached["a"], repo.path) is not None
    repo.orch("cache", "gc", "--max-size", "400")
    assert _keys(repo) == {cached["a"], cached["c"]}  # b is now the least recently used


def test_gc_by_age_drops_only_what_was_not_used_since(repo: Repo, cached: dict[str, str]) -> None:
    data = repo.orch_json("cache", "gc", "--older-than", "36h")
    assert (data["removed"], data["freed"]) == (2, 500)
    assert _keys(repo) == {cached["c"]}
    p = repo.orch("cache", "gc", "--older-than", "30d")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("removed 0 entries (0B)")
    assert _keys(repo) == {cached["c"]}


def test_gc_with_both_limits(repo: Repo, cached: dict[str, str]) -> None:
    # age takes a (3 days); size then takes b: 300 B left is over 150 B
    data = repo.orch_json("cache", "gc", "--older-than", "2.5d", "--max-size", "150")
    assert data["removed"] == 2
    assert _keys(repo) == {cached["c"]}


def test_gc_and_clear_are_audited(repo: Repo, cached: dict[str, str]) -> None:
    repo.orch("cache", "gc", "--max-size", "5GiB")  # removes nothing: no row
    repo.orch("cache", "gc", "--max-size", "150")
    repo.orch("cache", "clear")
    repo.orch("cache", "clear")  # an empty cache: nothing changed, no row
    rows = [r["argv"] for r in repo.orch_json("audit")]
    assert [a[a.index("cache") :] for a in rows] == [
        ["cache", "gc", "--max-size", "150"],
        ["cache", "clear"],
    ]


def test_clear_asks_nothing_and_says_what_it_removed(repo: Repo, cached: dict[str, str]) -> None:
    p = repo.orch("cache", "clear")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == (
        "removed 3 entries (600B) from .orch/cache/results/; the cache is empty"
    )
    assert _keys(repo) == set()
    assert open_store(repo.path, None).restore(cached["a"], repo.path) is None
    assert repo.orch_json("cache", "clear") == {
        "location": ".orch/cache/results/",
        "removed": 0,
        "freed": 0,
    }


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        (
            "--max-size",
            "5XB",
            "argument --max-size: not a size: '5XB' (use e.g. 500MB, 5GiB, 1024)",
        ),
        ("--max-size", "500m", "argument --max-size: not a size: '500m'"),
        ("--max-size", "-1", "argument --max-size: not a size: '-1'"),
        (
            "--older-than",
            "a month",
            "argument --older-than: not a duration: 'a month' (use e.g. 30d, 12h, 1h30m, 90)",
        ),
    ],
)
def test_a_bad_limit_is_a_one_line_usage_error(
    repo: Repo, cached: dict[str, str], option: str, value: str, said: str
) -> None:
    p = repo.orch("cache", "gc", f"{option}={value}")
    assert p.returncode == 2
    assert p.stdout == ""
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"orch: error: {said}"), line
    assert line.endswith("(see orch cache gc --help)")
    assert _keys(repo) == set(cached.values())  # nothing removed
    j = repo.orch("cache", "gc", f"{option}={value}", "--json")
    assert j.returncode == 2 and '"exit": 2' in j.stdout


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--older-than", "-1d", "argument --older-than: not a duration: '-1d'"),
        ("--max-size", "-1KB", "argument --max-size: not a size: '-1KB'"),
    ],
)
def test_a_negative_limit_as_its_own_argument_says_what_is_wrong_with_it(
    repo: Repo, cached: dict[str, str], option: str, value: str, said: str
) -> None:
    """``--older-than -1d`` (not ``=``): argparse took ``-1d`` for an option and said
    "expected one argument", which hides what is wrong."""
    p = repo.orch("cache", "gc", option, value)
    assert p.returncode == 2
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"orch: error: {said}"), line
    assert _keys(repo) == set(cached.values())  # nothing removed


def test_cache_needs_a_verb(repo: Repo) -> None:
    p = repo.orch("cache")
    assert p.returncode == 2
    assert "SUBCOMMAND" in p.stderr or "status" in p.stderr + p.stdout


def test_a_broken_config_is_said_with_its_position(repo: Repo, tmp_path: Path) -> None:
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nmanifests: 3\n")
    p = repo.orch("cache", "status")
    assert p.returncode == 1
    assert p.stderr.startswith(".orch/config.yaml:3:"), p.stderr


SIZED = """\
    - name: blob
      outputs: [out.bin]
      run: |
        echo run >> runs.log
        head -c 600 /dev/zero | tr '\\0' '{{ params.ch }}' > out.bin
"""


ROLLED = """\
    - name: site
      inputs: [page.md]
      outputs: [site.html]
      run: |
        echo run >> runs.log
        sed 's/^/<p>/' page.md > site.html
"""


def test_rolling_back_restores_the_old_results_without_running(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cache.md's rollback: ``git checkout v1 -- .`` then apply restores v1's results."""
    from tests.conftest import workflow

    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)  # the suite runs with it off
    repo.write("w.yaml", workflow("w", ROLLED))
    repo.write(".gitignore", "runs.log\nsite.html\n")
    repo.write("page.md", "version one\n")
    repo.commit("v1")
    repo.git("tag", "v1")
    assert repo.apply()["ran"] == ["site"]
    repo.write("page.md", "version two\n")
    repo.commit("v2")
    assert repo.apply()["ran"] == ["site"]
    assert repo.read("site.html") == "<p>version two\n"
    repo.git("checkout", "v1", "--", ".")
    assert repo.plan()[("w", "site")][0] == "restore"
    assert repo.apply()["by_step"]["site"]["status"] == "restored"
    assert repo.read("site.html") == "<p>version one\n"
    repo.git("checkout", "HEAD", "--", ".")  # and forward again
    assert repo.apply()["by_step"]["site"]["status"] == "restored"
    assert repo.read("site.html") == "<p>version two\n"
    assert repo.read("runs.log").split() == ["run", "run"]


def test_an_apply_trims_the_cache_to_max_size(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import workflow

    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)  # the suite runs with it off
    repo.write(
        ".orch/config.yaml",
        'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\ncache: {max_size: 1300B}\n',
    )
    repo.write("w.yaml", workflow("w", SIZED, "  params: {ch: a}\n"))
    repo.write(".gitignore", "runs.log\nout.bin\n")
    repo.commit()

    def status(*args: str) -> str:
        return repo.apply(*args)["by_step"]["blob"]["status"]

    assert status() == "succeeded"  # a: 600 B stored
    assert status("--param", "ch=b") == "succeeded"  # b: 1,200 B in all, within 1,300 B
    assert status() == "restored"  # a used again: b is now the least recently used
    assert status("--param", "ch=c") == "succeeded"  # 1,800 B: b goes
    data = repo.orch_json("cache", "status")
    assert (data["entries"], data["bytes"], data["max_size"]) == (2, 1200, 1300)
    assert status() == "restored"  # a stays
    assert status("--param", "ch=b") == "succeeded"  # b was dropped: it runs again
    assert repo.read("runs.log").split() == ["run"] * 4
    # orch cache gc with no option trims to the same max_size
    assert repo.orch_json("cache", "gc", "--max-size", "600")["entries"] == 1
    assert repo.orch_json("cache", "gc")["removed"] == 0


def test_a_file_remote_is_kept_small_the_same_way(repo: Repo, tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    shared = tmp_path / "shared"
    url = shared.as_uri()
    repo.write(
        ".orch/config.yaml",
        f'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\ncache: {{remote: "{url}"}}\n',
    )
    repo.commit()
    store = open_store(repo.path, {"remote": url})
    (repo.path / "a.txt").write_text("a" * 50)
    assert store.put(result_key("a" * 32), root=repo.path, files=["a.txt"], values={}, meta={})
    data = repo.orch_json("cache", "status")
    assert (data["location"], data["entries"], data["bytes"]) == (url, 1, 50)
    assert repo.orch_json("cache", "clear")["removed"] == 1
    assert open_store(repo.path, {"remote": url}).entries() == []


def test_a_remote_fsspec_cannot_open_is_one_line(repo: Repo) -> None:
    pytest.importorskip("fsspec")
    repo.write(
        ".orch/config.yaml",
        'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\ncache: {remote: "nosuch://b/x"}\n',
    )
    repo.commit()
    p = repo.orch("cache", "status")
    assert p.returncode == 1
    (line,) = p.stderr.splitlines()
    assert line.startswith("orch: .orch/config.yaml: cache.remote ")
    assert "nosuch" in line and "remove cache.remote" in line  # what to do
