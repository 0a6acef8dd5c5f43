"""orch ui's one background reader keeps the parsed manifests between state changes and
drops them when a manifest changes."""

from __future__ import annotations

import pytest

from tests.conftest import Repo, workflow

pytest.importorskip("starlette")

from runner.ui.live import Repos, snapshot  # noqa: E402


def test_the_reader_reuses_the_manifests_until_one_changes(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", '    - name: a\n      run: "true"\n'))
    repo.commit()
    assert repo.orch("apply").returncode == 0
    repos = Repos(repo.path)
    first = repos.get()
    assert snapshot(repo.path, repos)["steps"] == {"w/a": "succeeded"}
    assert repos.get() is first  # nothing changed: the same Repo, manifests kept
    # a new step: the next snapshot names it (never a stale list of steps)
    repo.write(
        "wf.yaml",
        workflow("w", '    - name: a\n      run: "true"\n    - name: b\n      run: "true"\n'),
    )
    snap = snapshot(repo.path, repos)
    assert repos.get() is not first
    assert snap["steps"] == {"w/a": "succeeded", "w/b": "never-ran"}
