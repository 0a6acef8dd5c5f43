"""orch never writes a file git would track, except ``orch init`` (issue: checkout refused)."""

from __future__ import annotations

import subprocess

from conftest import Repo, workflow


def test_commands_never_recreate_the_committed_gitignore_so_checkout_works(repo: Repo) -> None:
    # history: the first commit has no .orch/.gitignore, the second commits it
    (repo.path / ".orch/.gitignore").unlink()
    repo.write(".gitignore", ".orch/*\n!.orch/config.yaml\n!.orch/.gitignore\n")
    repo.write("w.yaml", workflow("w", "    - {name: a, run: 'true'}\n"))
    old = repo.commit("before orch init wrote .orch/.gitignore")
    repo.write(".orch/.gitignore", "*\n!config.yaml\n!.gitignore\n")
    repo.commit("commit .orch/.gitignore")
    repo.git("checkout", "-q", old)
    for verb in (["plan"], ["apply"], ["status"], ["history"], ["validate"], ["task", "list"]):
        p = repo.orch(*verb)
        assert p.returncode == 0, (verb, p.stderr)
    assert not repo.exists(".orch/.gitignore")
    back = subprocess.run(["git", "checkout", "-q", "main"], cwd=repo.path, capture_output=True)
    assert back.returncode == 0, back.stderr
    assert repo.exists(".orch/.gitignore")
