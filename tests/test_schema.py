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
