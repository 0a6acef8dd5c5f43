"""Issue 11, kind 5: archive and restore agree on links, and restore writes only inside.

The rule, for both: a symlink travels as a symlink when its target, read relative to the
link's folder, stays inside the repository; any other link stops ``archive`` before
anything is written or removed, and stops ``restore`` before anything is written. Restore
takes each link's target from the checked tar (it must equal the index's), never places
an entry under a link, and never writes through a link already on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.test_projects import ok, small_project, snapshot


def _project(repo: Any) -> dict[str, Any]:
    small_project(repo, "shop", "    - {name: a, run: 'true'}\n")
    repo.write("shop/bin/run.sh", "#!/bin/sh\n")
    repo.write("lib/common.txt", "shared\n")
    return snapshot(repo.path, "shop")


def test_a_link_out_of_the_repository_stops_archive_before_anything_is_removed(
    repo: Any, tmp_path: Path
) -> None:
    before = _project(repo)
    (repo.path / "shop/.venv/bin").mkdir(parents=True)
    os.symlink("/usr/bin/python3", repo.path / "shop/.venv/bin/python")  # as any virtualenv
    before = snapshot(repo.path, "shop")
    p = repo.orch("project", "archive", "shop")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "shop/.venv/bin/python" in p.stderr and "outside the repository" in p.stderr
    assert snapshot(repo.path, "shop") == before
    assert not (repo.path / ".orch/archive/shop.json").exists()
    assert not (repo.path / ".orch/archive/shop.tar.gz").exists()

    os.unlink(repo.path / "shop/.venv/bin/python")
    os.symlink("../../../../outside", repo.path / "shop/.venv/bin/python")  # climbs out
    p = repo.orch("project", "archive", "shop")
    assert p.returncode == 1 and "outside the repository" in p.stderr
    assert os.path.lexists(repo.path / "shop/.venv/bin/python")


def test_a_link_that_stays_in_the_repository_round_trips(repo: Any) -> None:
    _project(repo)
    os.symlink("../lib/common.txt", repo.path / "shop/common.txt")
    os.symlink("bin", repo.path / "shop/tools")
    before = snapshot(repo.path, "shop")
    ok(repo.orch("project", "archive", "shop"))
    assert not (repo.path / "shop").exists()
    ok(repo.orch("project", "restore", "shop"))
    assert snapshot(repo.path, "shop") == before


def _fake(repo: Any, name: str, members: list[tuple[tarfile.TarInfo, bytes]], **index: Any):
    arch = repo.path / ".orch/archive"
    arch.mkdir(parents=True, exist_ok=True)
    entries = []
    with tarfile.open(arch / f"{name}.tar.gz", "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
            e: dict[str, Any] = {"path": info.name, "mode": 0o755 if info.isdir() else 0o644}
            if info.isdir():
                e["type"] = "dir"
            elif info.issym():
                e.update(type="symlink", target=info.linkname)
            else:
                e.update(type="file", size=len(data), sha256=hashlib.sha256(data).hexdigest())
            entries.append(e)
    overrides = index.pop("targets", {})
    for e in entries:
        if e["path"] in overrides:
            e["target"] = overrides[e["path"]]
    doc = {"version": 1, "name": name, "dir": "x", "entries": entries, **index}
    (arch / f"{name}.json").write_text(json.dumps(doc))


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def test_a_tampered_index_cannot_make_restore_write_through_its_own_link(
    repo: Any, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [
        (_dir("x"), b""),
        (_dir("x/sub"), b""),
        (_link("x/l", "sub"), b""),  # inside: passes tarfile's data filter
        (tarfile.TarInfo("x/l/f"), b"pwned\n"),
    ]
    _fake(repo, "evil", members, targets={"x/l": str(outside)})
    p = repo.orch("project", "restore", "evil")
    assert p.returncode == 1, p.stdout + p.stderr
    assert list(outside.iterdir()) == []
    assert not os.path.lexists(repo.path / "x")

    # the same entries with an honest index: still an entry under a link, still refused
    _fake(repo, "evil2", members)
    p = repo.orch("project", "restore", "evil2")
    assert p.returncode == 1 and "x/l/f" in p.stderr, p.stderr
    assert not os.path.lexists(repo.path / "x")


def test_restore_takes_link_targets_from_the_tar(repo: Any) -> None:
    _fake(repo, "swap", [(_dir("x"), b""), (_link("x/l", "a"), b"")], targets={"x/l": "b"})
    p = repo.orch("project", "restore", "swap")
    assert p.returncode == 1 and "x/l" in p.stderr, p.stderr
    assert not os.path.lexists(repo.path / "x")


def test_restore_never_writes_through_a_link_on_disk(repo: Any, tmp_path: Path) -> None:
    _project(repo)
    repo.write(
        "ci/shop-extra.yaml",
        "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: shop-extra, project: shop}\n"
        "spec:\n  steps:\n    - {name: e, run: 'true'}\n",
    )
    ok(repo.orch("project", "archive", "shop"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo.path / "ci").rmdir()
    (repo.path / "ci").symlink_to(outside)
    p = repo.orch("project", "restore", "shop")
    assert p.returncode == 1 and "ci" in p.stderr, p.stderr
    assert list(outside.iterdir()) == []
    assert not (repo.path / "shop").exists()
    (repo.path / "ci").unlink()
    ok(repo.orch("project", "restore", "shop"))
    assert (repo.path / "ci/shop-extra.yaml").is_file()


def test_restore_writes_nothing_but_the_project_and_its_manifests(repo: Any) -> None:
    hook = tarfile.TarInfo("tools/run.sh")
    _fake(repo, "wide", [(_dir("x"), b""), (hook, b"#!/bin/sh\ntouch pwned\n")])
    p = repo.orch("project", "restore", "wide")
    assert p.returncode == 1 and "tools/run.sh" in p.stderr, p.stderr
    assert not (repo.path / "tools").exists()
    nested = tarfile.TarInfo("x/.git/hooks/pre-commit")
    _fake(repo, "nested", [(_dir("x"), b""), (nested, b"#!/bin/sh\n")])
    p = repo.orch("project", "restore", "nested")
    assert p.returncode == 1 and ".git" in p.stderr, p.stderr
    assert not (repo.path / "x").exists()


def _tamper(repo: Any, path: str, **fields: Any) -> None:
    idx_path = repo.path / ".orch/archive/shop.json"
    idx = json.loads(idx_path.read_text())
    for e in idx["entries"]:
        if e["path"] == path:
            e.update(fields)
    idx_path.write_text(json.dumps(idx))


def test_a_tampered_index_cannot_make_a_restored_file_set_user_id_or_writable_by_all(
    repo: Any,
) -> None:
    import stat

    _project(repo)
    ok(repo.orch("project", "archive", "shop"))
    _tamper(repo, "shop/bin/run.sh", mode=0o6777)
    _tamper(repo, "shop/bin", mode=0o1777)
    ok(repo.orch("project", "restore", "shop"))
    for rel in ("shop/bin/run.sh", "shop/bin"):
        mode = os.stat(repo.path / rel).st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH), rel


@pytest.mark.parametrize(
    "fields", [{"mode": "0755"}, {"mode": -1}, {"mode": True}, {"size": "9"}, {"sha256": None}]
)
def test_a_tampered_index_with_fields_of_the_wrong_type_is_one_clear_error(
    repo: Any, fields: dict[str, Any]
) -> None:
    _project(repo)
    ok(repo.orch("project", "archive", "shop"))
    _tamper(repo, "shop/bin/run.sh", **fields)
    p = repo.orch("project", "restore", "shop")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "cannot be unpacked safely, nothing was written" in p.stderr
    assert "internal error" not in p.stderr
    assert not (repo.path / "shop").exists()


def test_a_fifo_in_the_project_stops_archive_before_anything_is_removed(repo: Any) -> None:
    before = _project(repo)
    os.mkfifo(repo.path / "shop/queue")
    p = repo.orch("project", "archive", "shop", timeout=30)
    assert p.returncode == 1 and "shop/queue" in p.stderr, p.stderr
    os.unlink(repo.path / "shop/queue")  # still there; the snapshot would block reading it
    assert snapshot(repo.path, "shop") == before
    assert not (repo.path / ".orch/archive/shop.json").exists()


def test_a_hard_link_out_of_the_project_round_trips_as_a_file_and_leaves_the_other_name(
    repo: Any,
) -> None:
    _project(repo)
    os.link(repo.path / "lib/common.txt", repo.path / "shop/common.txt")
    before = snapshot(repo.path, "shop")
    ok(repo.orch("project", "archive", "shop"))
    assert repo.read("lib/common.txt") == "shared\n"  # the other name is not the project's
    ok(repo.orch("project", "restore", "shop"))
    assert snapshot(repo.path, "shop") == before
    assert os.stat(repo.path / "shop/common.txt").st_nlink == 1  # a copy, not the same inode


def test_a_hard_link_in_a_tampered_tar_is_refused_with_nothing_written(repo: Any) -> None:
    hard = tarfile.TarInfo("x/passwd")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "/etc/passwd"
    _fake(repo, "hard", [(_dir("x"), b""), (hard, b"")])
    idx_path = repo.path / ".orch/archive/hard.json"
    idx = json.loads(idx_path.read_text())
    for e in idx["entries"]:  # the index claims a plain file
        if e["path"] == "x/passwd":
            e.update(type="file", size=0, sha256=hashlib.sha256(b"").hexdigest())
    idx_path.write_text(json.dumps(idx))
    p = repo.orch("project", "restore", "hard")
    assert p.returncode == 1 and "x/passwd" in p.stderr, p.stderr
    assert not os.path.lexists(repo.path / "x")
