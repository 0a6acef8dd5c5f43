"""``orch schema``: the schemas editors read, printed or written, and the combined schema
for files that mix kinds judging documents as ``orch validate`` does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from tests.conftest import Repo

ROOT = Path(__file__).resolve().parent.parent
# the project's own repository: orch.dev, in the first $ids, is a domain orch does not own
SCHEMA_BASE = "https://github.com/orch-gitops/orch/schemas/"
NAMES = ["manifest", "workflow", "project", "resourcequota", "steptemplate", "config"]

MIXED = """\
apiVersion: orch/v1
kind: StepTemplate
metadata: {name: count}
spec:
  params:
    book: {description: which book}
  run: wc -w < {{ params.book }}.txt
---
apiVersion: orch/v1
kind: Workflow
metadata: {name: books, project: shop}
spec:
  quota: small
  steps:
    - {name: count-a, uses: count, with: {book: a}}
    - {name: report, run: echo done, needs: [count-a]}
---
apiVersion: orch/v1
kind: Project
metadata: {name: shop}
spec:
  milestones:
    - {name: ga, workflows: [books], due: "2028-02-29"}
---
apiVersion: orch/v1
kind: ResourceQuota
metadata: {name: small}
spec:
  limits: {cpu: 2}
  selector: {workflows: [books]}
"""

# each breaks one document of MIXED; orch validate and the combined schema must both refuse
BREAKS = [
    ('due: "2028-02-29"', 'due: "2026-13-45"'),  # a format: a month 13
    ('due: "2028-02-29"', 'due: "2027-02-29"'),  # a format: not a leap year
    ("limits: {cpu: 2}", "limits: {cpu: lots}"),
    ("{name: report, run: echo done", "{name: report, rnu: echo done"),
    ("kind: ResourceQuota", "kind: ResourceQuotas"),
    ("run: wc -w", "runs: wc -w"),
]


def orch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``orch`` run from ``cwd``, importing this checkout's ``runner`` (not whichever one
    is installed: from a temp folder ``-m runner`` would find that one first)."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def combined_validator(tmp_path: Path) -> Draft202012Validator:
    p = orch("schema", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    schema = json.loads(p.stdout)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_write_puts_every_schema_in_a_folder_outside_any_repository(tmp_path: Path) -> None:
    p = orch("schema", "--write", "out/schemas", "--json", cwd=tmp_path)  # no .orch here
    assert p.returncode == 0, p.stderr
    written = json.loads(p.stdout)["written"]
    assert sorted(Path(w).name for w in written) == sorted(f"{n}.json" for n in NAMES)
    ids = set()
    for name in NAMES:
        data = json.loads((tmp_path / "out" / "schemas" / f"{name}.json").read_text())
        Draft202012Validator.check_schema(data)
        # stable: named by apiVersion and kind, never by orch's version
        assert data["$id"] == f"{SCHEMA_BASE}v1/{name}.json"
        ids.add(data["$id"])
        printed = orch("schema", name.upper(), cwd=tmp_path)
        assert json.loads(printed.stdout) == data  # KIND is case-insensitive
        if name != "manifest":  # the written schema is the source, unchanged
            assert data == json.loads((ROOT / "schemas" / f"{name}.json").read_text())
    assert len(ids) == len(NAMES)


def test_write_of_one_kind_and_bad_input(tmp_path: Path) -> None:
    p = orch("-C", str(tmp_path), "schema", "project", "--write", "s", cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert [x.name for x in (tmp_path / "s").iterdir()] == ["project.json"]  # -C is honoured
    (tmp_path / "file").write_text("keep\n")
    p = orch("schema", "--write", "file", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "--write file: not a folder" in p.stderr
    assert (tmp_path / "file").read_text() == "keep\n"
    p = orch("schema", "pipeline", cwd=tmp_path)
    assert p.returncode == 2 and "invalid choice: 'pipeline'" in p.stderr


def test_the_combined_schema_accepts_what_validate_accepts(repo: Repo, tmp_path: Path) -> None:
    repo.write("all.yaml", MIXED)
    repo.commit()
    p = repo.orch("validate")
    assert p.returncode == 0, p.stderr
    check = combined_validator(tmp_path)
    docs = list(yaml.safe_load_all(MIXED))
    assert len(docs) == 4
    for doc in docs:
        assert not list(check.iter_errors(doc)), doc["kind"]


@pytest.mark.parametrize(("good", "bad"), BREAKS)
def test_the_combined_schema_refuses_what_validate_refuses(
    repo: Repo, tmp_path: Path, good: str, bad: str
) -> None:
    text = MIXED.replace(good, bad)
    assert text != MIXED
    repo.write("all.yaml", text)
    repo.commit()
    p = repo.orch("validate")
    assert p.returncode == 1
    assert p.stderr.startswith("all.yaml:"), p.stderr  # positioned
    check = combined_validator(tmp_path)
    refused = [d["kind"] for d in yaml.safe_load_all(text) if list(check.iter_errors(d))]
    assert len(refused) == 1


def test_every_schema_id_is_under_the_projects_own_repository() -> None:
    """One base for every ``$id`` (the events' schema too), and no page, doc or schema
    still names the domain the project does not own."""
    for f in sorted((ROOT / "schemas").glob("*.json")):
        assert json.loads(f.read_text())["$id"].startswith(SCHEMA_BASE), f.name
    shipped = [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]
    shipped += [*(ROOT / "schemas").glob("*.json"), *(ROOT / "runner").rglob("*.py")]
    stale = [str(f.relative_to(ROOT)) for f in shipped if "orch.dev" in f.read_text()]
    assert stale == []
