"""Issue 11, kind 6: one rule for manifests that are symlinks, at every entry point.

A manifest is read only from inside the repository: a symlink whose target stays inside
is followed (in the work tree, and at a git revision through the tree at that revision);
one that leads outside is an error naming the link, never read and never run. Before,
the work tree read and ran such a link, ``--ref`` skipped every link silently, and only
MCP's path arguments refused them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

EVIL = workflow("evil", "    - {name: s, run: touch pwned}\n")


def _link_out(repo: Repo, tmp_path: Path, name: str = "evil.yaml") -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "wf.yaml").write_text(EVIL)
    (repo.path / name).symlink_to(outside / "wf.yaml")
    return outside


def _refused(stderr: str, name: str = "evil.yaml") -> bool:
    return any(
        line.startswith(f"{name}: ") and "outside the repository" in line
        for line in stderr.splitlines()
    )


@pytest.mark.parametrize("verb", [("validate",), ("plan",), ("apply",), ("apply", "evil")])
def test_a_manifest_linked_from_outside_is_refused_and_never_run(
    repo: Repo, tmp_path: Path, verb: tuple[str, ...]
) -> None:
    _link_out(repo, tmp_path)
    p = repo.orch(*verb)
    assert p.returncode == 1, p.stderr
    assert _refused(p.stderr), p.stderr
    assert not (repo.path / "pwned").exists()
    assert "Traceback" not in p.stderr


def test_a_folder_linked_from_outside_is_not_read(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "wf.yaml").write_text(EVIL)
    (repo.path / "shared").symlink_to(outside)
    # git lists a link to a folder as one entry, not the files behind it
    assert repo.orch_json("validate")["workflows"] == []
    p = repo.orch("validate", "shared/wf.yaml")
    assert p.returncode == 1 and "outside the repository" in p.stderr, p.stderr
    assert repo.orch("apply").returncode == 0
    assert not (repo.path / "pwned").exists()


def test_a_link_that_stays_inside_is_read(repo: Repo) -> None:
    repo.write("defs/wf.txt", workflow("w", "    - {name: s, run: echo hi}\n"))
    os.symlink("defs/wf.txt", repo.path / "link.yaml")
    assert repo.plan() == {("w", "s"): ("run", ["never ran"])}
    repo.commit()
    p = repo.orch("validate", "--ref", "HEAD", "--json")
    assert p.returncode == 0, p.stderr
    assert repo.plan("--ref", "HEAD") == {("w", "s"): ("run", ["never ran"])}


def test_ref_refuses_a_committed_link_that_leads_outside(repo: Repo, tmp_path: Path) -> None:
    repo.write("ok.yaml", workflow("w", "    - {name: s, run: echo hi}\n"))
    _link_out(repo, tmp_path)
    os.symlink("../../etc/passwd.yaml", repo.path / "up.yaml")
    repo.commit()
    p = repo.orch("validate", "--ref", "HEAD")
    assert p.returncode == 1
    assert _refused(p.stderr) and _refused(p.stderr, "up.yaml"), p.stderr
    p = repo.orch("plan", "--ref", "HEAD")
    assert p.returncode == 1 and _refused(p.stderr)


def test_since_refuses_it_too(repo: Repo, tmp_path: Path) -> None:
    repo.write("ok.yaml", workflow("w", "    - {name: s, run: echo hi}\n"))
    repo.commit()
    _link_out(repo, tmp_path)
    p = repo.orch("apply", "--since", "HEAD")
    assert p.returncode == 1 and _refused(p.stderr), p.stderr
    assert not (repo.path / "pwned").exists()


def test_the_config_linked_from_outside_is_refused(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "config.yaml"
    outside.write_text((repo.path / ".orch/config.yaml").read_text())
    (repo.path / ".orch/config.yaml").unlink()
    (repo.path / ".orch/config.yaml").symlink_to(outside)
    repo.write("ok.yaml", workflow("w", "    - {name: s, run: echo hi}\n"))
    p = repo.orch("validate")
    assert p.returncode == 1
    assert _refused(p.stderr, ".orch/config.yaml"), p.stderr


def test_mcp_validate_answers_with_the_same_problem(repo: Repo, tmp_path: Path) -> None:
    from runner.mcp.server import Tools

    _link_out(repo, tmp_path)
    answer = Tools(repo.path).validate()
    assert answer["ok"] is False
    assert any(
        d["path"] == "evil.yaml" and "outside the repository" in d["message"]
        for d in answer["errors"]
    ), answer


def test_watch_refuses_a_link_added_while_it_runs(repo: Repo, tmp_path: Path) -> None:
    from tests.test_watch import Watch, setup

    setup(repo)
    w = Watch(repo)
    try:
        assert w.cycle().ran == 2
        _link_out(repo, tmp_path)
        w.expect(r"evil\.yaml: .*outside the repository")
        c = w.cycle()
        assert (c.changed, c.ran) == (["evil.yaml"], 0)
        assert "not applied: 1 error" in c.rest
    finally:
        w.close()
    assert not (repo.path / "pwned").exists()


def test_ref_follows_links_through_linked_folders_as_a_checkout_does(
    repo: Repo, tmp_path: Path
) -> None:
    """At a revision, ``via/wf.txt`` is no blob when ``via`` is a link (the tree holds the
    link, not the files behind it), and a link in another folder is relative to its own:
    --ref skipped the first, resolved the second from the wrong folder, and so read other
    workflows than the work tree, and no error for a folder link out of the repository."""
    repo.write("defs/wf.txt", workflow("w", "    - {name: s, run: echo hi}\n"))
    os.symlink("defs", repo.path / "via")
    os.symlink("via/wf.txt", repo.path / "top.yaml")  # through a linked folder
    (repo.path / "d").mkdir()
    repo.write("defs/v.txt", workflow("v", "    - {name: t, run: echo hi}\n"))
    os.symlink("../via/v.txt", repo.path / "d/chain.yaml")
    repo.commit()
    expected = {("w", "s"): ("run", ["never ran"]), ("v", "t"): ("run", ["never ran"])}
    assert repo.plan() == expected
    assert repo.plan("--ref", "HEAD") == expected

    outside = _link_out(repo, tmp_path, "unused.yaml")
    os.unlink(repo.path / "unused.yaml")
    os.symlink(outside, repo.path / "out")
    os.symlink("out/wf.yaml", repo.path / "evil.yaml")
    repo.commit()
    for ref in ((), ("--ref", "HEAD")):
        p = repo.orch("validate", *ref)
        assert p.returncode == 1 and _refused(p.stderr), (ref, p.stderr)
