"""Manifest rules a new user reads in docs/manifests.md, held through the real CLI: each
rule is decided once, said at the line that breaks it, and never an internal error."""

from __future__ import annotations

import pytest

from tests.conftest import Repo, workflow


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ('inputs: ["data/{{ env.TOKEN }}.txt"]', "not environment variables"),
        ("outputs: [\"{{ env.get('OUTDIR', 'out') }}/\"]", "not environment variables"),
        ('workdir: "{{ env.HOME }}"', "not environment variables"),
        ('outputs: ["out/{{ project.name }}.txt"]', "not project values"),
    ],
)
def test_a_path_that_reads_the_environment_is_one_positioned_error(
    repo: Repo, path: str, says: str
) -> None:
    """Paths are decided before anything runs, from the manifest and params alone, as
    ``git.*`` and ``steps.*`` in paths already are: validate says so at the path."""
    repo.write("wf.yaml", workflow("w", f"    - name: s\n      run: echo x\n      {path}\n"))
    for verb in ("validate", "plan", "apply"):
        p = repo.orch(verb, env={"TOKEN": "t", "OUTDIR": "elsewhere"})
        assert p.returncode == 1, (verb, p.stderr)
        errors = [line for line in p.stderr.splitlines() if says in line]
        assert len(errors) == 1 and errors[0].startswith("wf.yaml:8:"), (verb, p.stderr)
        assert "internal error" not in p.stderr
    assert not repo.exists("elsewhere") and not repo.exists(".orch/state.db")


def test_validate_of_a_path_that_names_no_manifest_is_one_line_exit_1(repo: Repo) -> None:
    """``orch validate nonexist.yaml`` said ok; a relative PATH is -C DIR's, as git -C."""
    repo.write("wf.yaml", workflow("w", "    - {name: s, run: echo x}\n"))
    (repo.path / "sub").mkdir()
    for path, says in (("nonexist.yaml", "no such file"), ("sub", "a folder")):
        p = repo.orch("validate", path)
        assert p.returncode == 1, p.stderr
        assert len(p.stderr.splitlines()) == 1 and path in p.stderr and says in p.stderr
    assert repo.orch("validate", "wf.yaml").returncode == 0
