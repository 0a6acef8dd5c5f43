"""GitHub Actions commands carry repository text within GitHub's limits: an annotation's
title (255 characters) and message, a group's title; cut with an ellipsis before they
are escaped, so no cut lands inside a ``%XX`` escape. Through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from tests.conftest import Repo, workflow
from tests.test_ci_github import commands, gh_env

LONG = "x%:," * 200  # 800 characters, each of the last three escaped in a property


def test_a_long_instance_name_is_capped_in_titles_and_messages(repo: Repo, tmp_path: Path) -> None:
    step = f"    - name: s\n      foreach: ['{LONG}']\n      run: echo hi; exit 3\n"
    repo.write("wf.yaml", workflow("w", step))
    repo.commit()
    p = repo.orch("apply", env=gh_env(tmp_path))
    assert p.returncode == 1, p.stderr
    errors = [c for c in commands(p.stdout) if c.startswith("::error ")]
    assert len(errors) == 1, p.stdout[-2000:]
    props, _, message = errors[0].removeprefix("::error ").partition("::")
    title = unquote(props.split(",title=", 1)[1])
    assert len(title) == 255 and title.startswith("orch: w/s[") and title.endswith("…"), title
    escaped = props.split(",title=", 1)[1]
    assert re.fullmatch(r"(?:[^%]|%(?:25|3A|2C|0D|0A))*", escaped), "an escape cut in two"
    assert len(unquote(message)) <= 4096
    group = next(c for c in commands(p.stdout) if c.startswith("::group::"))
    assert len(unquote(group.removeprefix("::group::"))) == 255


def test_summary_cells_are_capped_and_entities_stay_text(repo: Repo, tmp_path: Path) -> None:
    outs = [f"out-{i:02d}-{'o' * 40}&amp;.txt" for i in range(30)]
    step = f"    - name: s\n      outputs: {outs}\n      run: 'true'\n"
    repo.write("wf.yaml", workflow("w", step))
    repo.commit()
    p = repo.orch("apply", env=gh_env(tmp_path))
    assert p.returncode == 1, p.stderr
    row = next(r for r in (tmp_path / "summary.md").read_text().splitlines() if "| w/s |" in r)
    why = row.split(" | ")[3].removesuffix(" |")
    assert why.startswith("exit 0: declared outputs not produced: out-00-") and why.endswith("…"), (
        why
    )
    assert len(why.replace("\\", "")) == 500
    assert "\\&amp;" in why and "&amp;" not in why.replace("\\&amp;", "")  # text, not "&"
