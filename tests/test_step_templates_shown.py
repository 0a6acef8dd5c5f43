"""Where StepTemplates show: ``orch validate``'s summary and ``orch graph``."""

from __future__ import annotations

import json

from tests.conftest import Repo, workflow

HELLO = """\
apiVersion: orch/v1
kind: StepTemplate
metadata: {name: hello}
spec:
  params: {who: world}
  run: echo hello {{ params.who }}
"""
USES = workflow(
    "t",
    """\
    - {name: a, uses: hello, with: {who: x}}
    - {name: b, uses: hello, matrix: {n: [1, 2]}, needs: [a]}
    - {name: c, run: "true", needs: [b]}
""",
)


def test_validate_summary_counts_step_templates(repo: Repo) -> None:
    repo.write("hello.yaml", HELLO)
    repo.write("wf.yaml", USES)
    p = repo.orch("validate")
    assert p.returncode == 0, p.stderr
    assert "1 step templates" in p.stderr
    data = json.loads(repo.orch("validate", "--json").stdout)
    assert data["step_templates"] == ["hello"]


def test_graph_says_which_template_a_step_uses(repo: Repo) -> None:
    repo.write("hello.yaml", HELLO)
    repo.write("wf.yaml", USES)
    text = repo.orch("graph", "t").stdout.splitlines()
    assert text[1].split() == ["a", "(uses", "hello)"]
    assert text[2].strip() == "b (2 instances, uses hello)"
    assert not [x for x in text if x.strip().startswith("c") and "uses" in x]
    dot = repo.orch("graph", "t", "--format", "dot").stdout
    assert '"a" [label="a (uses hello)"];' in dot and 'label="b (uses hello)";' in dot
    mermaid = repo.orch("graph", "t", "--format", "mermaid").stdout
    assert '["a (uses hello)"]' in mermaid and '["b (uses hello)"]' in mermaid
    assert '["c"]' in mermaid


def test_a_param_of_a_template_given_as_param_says_where_to_set_it(repo: Repo) -> None:
    repo.write("hello.yaml", HELLO)
    repo.write("wf.yaml", USES)
    p = repo.orch("plan", "--param", "who=me")
    assert p.returncode == 2
    assert "StepTemplate 'hello'" in p.stderr and "with:" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert (
        not (repo.path / ".orch" / "state.db").exists() or repo.orch_json("status")["steps"] == []
    )
