"""The compiled schema gate and jsonschema agree: the gate may only speed things up."""

from __future__ import annotations

import copy

import pytest

from runner.manifests.schema import _gate, _validator

VALID = {
    "apiVersion": "orch/v1",
    "kind": "Workflow",
    "metadata": {"name": "w", "project": "p"},
    "spec": {
        "params": {"x": 1},
        "defaults": {
            "timeout": "10m",
            "retry": {"limit": 2, "backoff": "1s"},
            "resources": {"cpu": "500m"},
        },
        "steps": [
            {"name": "a", "run": ["echo", "hi"], "breaker": {"name": "svc", "cooldown": 30}},
            {
                "name": "b",
                "run": "echo",
                "needs": ["a"],
                "resources": {"memory": "512Mi", "gpu": 1},
                "when": True,
            },
        ],
        "on": {"failure": [{"run": "echo failed"}]},
    },
}

MUTATIONS = [
    lambda d: d["spec"]["steps"][0].update(retyr=1),
    lambda d: d["spec"]["steps"][1].update(timeout="10 minutes"),
    lambda d: d["spec"]["steps"][1].update(needs="a"),
    lambda d: d["spec"].update(steps=[]),
    lambda d: d["metadata"].update(name="bad name"),
    lambda d: d["spec"]["steps"][0].update(run=[]),
    lambda d: d["spec"]["defaults"]["retry"].update(limit=-1),
    lambda d: d["spec"]["steps"][1]["resources"].update(memory="lots"),
    lambda d: d.update(apiVersion="orch/v2"),
    lambda d: d["spec"]["steps"][1].update(when=1),
]


def test_gate_accepts_what_jsonschema_accepts() -> None:
    assert not list(_validator("workflow").iter_errors(VALID))
    _gate("workflow")(VALID)  # raises if the gate disagrees or failed to build


@pytest.mark.parametrize("mutate", MUTATIONS)
def test_gate_rejects_what_jsonschema_rejects(mutate) -> None:
    doc = copy.deepcopy(VALID)
    mutate(doc)
    assert list(_validator("workflow").iter_errors(doc))
    with pytest.raises(Exception, match="must|data"):
        _gate("workflow")(doc)


PROJECT = """\
apiVersion: orch/v1
kind: Project
metadata:
  name: shop
spec:
  milestones:
    - name: beta
      due: {beta}
    - name: ga
      due: "2026-03-31"
"""


@pytest.mark.parametrize("due", ["2026-13-45", "2026-02-30", "2026-1-5", "tomorrow"])
def test_a_date_that_does_not_exist_is_a_positioned_error_everywhere(repo, due: str) -> None:
    """``format: date`` is checked as editors check it: by validate, and by every command
    that loads the project (``project status`` crashed on a month 13)."""
    repo.write("p.yaml", PROJECT.format(beta=due))
    repo.commit()
    want = f"p.yaml:8:12: spec.milestones[0].due: '{due}' is not a date"
    for args in (["validate"], ["project", "status", "shop"], ["project", "list"]):
        p = repo.orch(*args)
        assert p.returncode == 1, (args, p.stderr)
        assert p.stderr.startswith(want), (args, p.stderr)
        assert "internal error" not in p.stderr
    assert not repo.exists(".orch/logs/crash.log")


def test_a_real_date_passes_both_validators(repo) -> None:
    repo.write("p.yaml", PROJECT.format(beta='"2028-02-29"'))  # a leap day
    repo.commit()
    p = repo.orch("project", "status", "shop")
    assert p.returncode == 0, p.stderr
    assert "2028-02-29" in p.stdout


@pytest.mark.parametrize("due", ["2026-02-30", "2026-13-45", "2026-00-10"])
def test_gate_and_jsonschema_agree_on_dates(due: str) -> None:
    doc = {
        "apiVersion": "orch/v1",
        "kind": "Project",
        "metadata": {"name": "p"},
        "spec": {"milestones": [{"name": "m", "due": due}]},
    }
    assert list(_validator("project").iter_errors(doc))
    with pytest.raises(Exception, match="must|data"):
        _gate("project")(doc)
    doc["spec"]["milestones"][0]["due"] = "2026-02-28"
    assert not list(_validator("project").iter_errors(doc))
    _gate("project")(doc)


def test_every_format_the_schemas_use_is_checked() -> None:
    """A ``format`` orch does not check would pass ``orch validate`` and be refused by an
    editor (or crash a command later, as ``due`` did): each one needs a checker."""
    from runner.manifests.schema import FORMATS, SCHEMA_NAMES, load_schema

    def formats(node: object) -> set[str]:
        if isinstance(node, dict):
            own = {node["format"]} if isinstance(node.get("format"), str) else set()
            return own.union(*(formats(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(formats(v) for v in node))
        return set()

    used = set().union(*(formats(load_schema(n)) for n in SCHEMA_NAMES))
    assert used, "the schemas use format: date at least"
    assert used <= set(FORMATS)
