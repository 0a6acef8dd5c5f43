"""Projects and templates: create from every template and run it, never overwrite, list,
status with milestones, archive and restore byte for byte, environments, --project."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from runner.api import open_repo
from runner.errors import OrchError, UsageError
from runner.projects import scaffold, templates_index

PROJECT_TEMPLATES = ["ai-analysis", "data-pipeline", "web-app"]
WORKFLOW_TEMPLATES = ["ai-analysis", "build-and-test", "data-pipeline"]


def ok(p: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def snapshot(root: Path, under: str) -> dict[str, tuple[str, int, str | None]]:
    """path -> (kind, mode, sha256 or link target) of everything under ``root/under``."""
    out = {}
    base = root / under
    for dirpath, dirnames, filenames in os.walk(base):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), None)
            else:
                out[rel] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    hashlib.sha256(p.read_bytes()).hexdigest(),
                )
    return out


def small_project(repo: Any, name: str, steps: str, milestones: str = "", envs: str = "") -> None:
    """A Project in ``name/`` and its workflow ``name-wf`` (steps: YAML, indented by 4)."""
    repo.write(
        f"{name}/project.yaml",
        f"apiVersion: orch/v1\nkind: Project\nmetadata: {{name: {name}}}\n"
        f"spec:\n  path: {name}\n  params: {{greeting: hi}}\n{envs}{milestones}",
    )
    repo.write(
        f"{name}/wf.yaml",
        f"apiVersion: orch/v1\nkind: Workflow\nmetadata: {{name: {name}-wf, project: {name}}}\n"
        f"spec:\n  steps:\n{steps}",
    )


# --------------------------------------------------------------------------- templates


def test_template_list_shows_builtins_with_their_parameters(repo: Any) -> None:
    data = repo.orch_json("template", "list")
    kinds = {(t["kind"], t["name"]) for t in data}
    assert kinds == {("project", n) for n in PROJECT_TEMPLATES} | {
        ("workflow", n) for n in WORKFLOW_TEMPLATES
    }
    web = next(t for t in data if t["name"] == "web-app")
    assert web["source"] == "builtin"
    port = next(p for p in web["parameters"] if p["name"] == "port")
    assert (port["type"], port["default"], port["required"]) == ("integer", 8080, False)
    assert port["description"]
    pipeline = next(t for t in data if (t["kind"], t["name"]) == ("project", "data-pipeline"))
    assert [w["template"] for w in pipeline["workflows"]] == ["data-pipeline"]


def test_repository_templates_are_listed_and_override_builtins(repo: Any) -> None:
    repo.write(
        ".orch/config.yaml",
        "apiVersion: orch/v1\nkind: Config\nmanifests: ['.']\ntemplates: tmpl\n",
    )
    repo.write(
        "tmpl/svc/template.yaml",
        "kind: workflow\ndescription: ours\nparameters:\n  word: {description: required}\n",
    )
    repo.write("tmpl/data-pipeline/template.yaml", "kind: workflow\ndescription: replaced\n")
    data = {(t["kind"], t["name"]): t for t in repo.orch_json("template", "list")}
    assert data[("workflow", "svc")]["source"] == "tmpl"
    assert data[("workflow", "svc")]["parameters"][0]["required"] is True
    assert data[("workflow", "data-pipeline")]["description"] == "replaced"
    assert data[("project", "data-pipeline")]["source"] == "builtin"

    repo.write("tmpl/bad/template.yaml", "kind: workflow\nparamters: {}\n")
    p = repo.orch("template", "list")
    assert p.returncode == 1
    assert (
        "tmpl/bad/template.yaml:2:1: paramters: unknown field 'paramters' (did you mean 'parameters'?)"
        in p.stderr
    )


@pytest.mark.slow
def test_every_template_creates_validates_and_runs_offline(repo: Any) -> None:
    for t in PROJECT_TEMPLATES:
        p = ok(repo.orch("project", "create", f"p-{t}", "--template", t))
        assert f"created project p-{t} from template {t} in p-{t}/" in p.stdout
    for t in WORKFLOW_TEMPLATES:
        ok(repo.orch("workflow", "create", f"w-{t}", "--template", t, "--path", f"wf/{t}"))
    (repo.path / "wf/build-and-test/src/mod.py").parent.mkdir(parents=True)
    repo.write("wf/build-and-test/src/mod.py", '"""A module."""\n\nANSWER = 42\n')
    (repo.path / "wf/ai-analysis/src").mkdir()
    repo.write("wf/ai-analysis/src/calc.py", '"""Calc."""\n\n\ndef add(a, b):\n    return a + b\n')

    v = repo.orch_json("validate")
    assert v["ok"] is True
    assert sorted(v["projects"]) == [f"p-{t}" for t in PROJECT_TEMPLATES]
    assert sorted(v["workflows"]) == sorted(
        ["p-ai-analysis-analysis", "p-ai-analysis-ci", "p-data-pipeline-pipeline"]
        + ["p-web-app-build"]
        + [f"w-{t}" for t in WORKFLOW_TEMPLATES]
    )
    first = repo.apply("-j", "8")
    failed = {
        (s["workflow"], s["step"]): s["message"]
        for s in first["steps"]
        if s["status"] != "succeeded"
    }
    assert first["ok"] and not failed, failed
    assert len(first["steps"]) == v["steps"]
    assert (repo.path / "p-web-app/dist/dev/app.pyz").is_file()
    assert "p-ai-analysis: code analysis" in repo.read("p-ai-analysis/out/report.md")
    assert "p-data-pipeline: sales by region" in repo.read("p-data-pipeline/data/report.md")
    assert "w-ai-analysis: code analysis" in repo.read("wf/ai-analysis/out/report.md")

    second = repo.apply()
    assert second["ran"] == []
    assert second["run_id"] is None
    # the outputs are git-ignored: the work tree shows only what the templates wrote
    untracked = repo.git("status", "--porcelain", "--untracked-files=all").splitlines()
    generated = ("/data/", "/dist/", "/out/", "__pycache__")
    assert not [
        line for line in untracked if any(g in line for g in generated) and ".gitignore" not in line
    ]


def test_modules_import_nothing_heavy(repo: Any) -> None:
    """The module imports nothing heavy: templating loads Jinja only when a file renders."""
    code = (
        "import sys, runner.projects.scaffold, runner.projects.templates_index, runner.projects.examples, runner.projects.core,"
        " runner.projects.archive, runner.cli.projects;"
        "print(sorted(m for m in ('jinja2', 'networkx', 'jsonschema') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- create


def test_create_never_overwrites_and_writes_nothing(repo: Any) -> None:
    repo.write("web/app/server.py", "# mine\n")
    repo.write("web/notes.txt", "keep\n")
    before = snapshot(repo.path, "web")
    p = repo.orch("project", "create", "web", "--template", "web-app")
    assert p.returncode == 1
    assert "nothing was written" in p.stderr
    assert "web/app/server.py: already exists" in p.stderr
    assert snapshot(repo.path, "web") == before
    assert repo.read("web/app/server.py") == "# mine\n"
    assert not list(repo.path.glob(".orch-new-*")) and not list(
        (repo.path / "web").glob(".orch-new-*")
    )


def test_create_into_an_existing_folder_keeps_identical_files(repo: Any) -> None:
    ok(repo.orch("workflow", "create", "one", "--template", "data-pipeline", "--path", "jobs"))
    # the same data folder would give each output two producing steps: refused, unwritten
    p = repo.orch("workflow", "create", "two", "--template", "data-pipeline", "--path", "jobs")
    assert p.returncode == 1 and "both declare output 'jobs/data/raw.csv'" in p.stderr
    assert not repo.exists("jobs/two.yaml")
    p = ok(
        repo.orch(
            "workflow",
            "create",
            "two",
            "--template",
            "data-pipeline",
            "--path",
            "jobs",
            "--param",
            "data=data-two",
        )
    )
    assert "+ jobs/two.yaml" in p.stdout
    assert "= jobs/scripts/clean.py (already there, identical)" in p.stdout
    names = {w["name"] for w in repo.orch_json("workflow", "list")}
    assert names == {"one", "two"}


def test_workflow_created_in_a_project_folder_joins_the_project(repo: Any) -> None:
    small_project(repo, "shop", "    - {name: a, run: 'true'}\n")
    ok(
        repo.orch(
            "workflow", "create", "shop-ci", "--template", "build-and-test", "--path", "shop/ci"
        )
    )
    rows = {w["name"]: w for w in repo.orch_json("workflow", "list")}
    assert rows["shop-ci"]["project"] == "shop"
    assert "project: shop" in repo.read("shop/ci/shop-ci.yaml")


def test_invalid_template_output_is_refused_before_writing(repo: Any) -> None:
    repo.write(
        ".orch/config.yaml",
        "apiVersion: orch/v1\nkind: Config\nmanifests: ['.']\ntemplates: tmpl\n",
    )
    repo.write("tmpl/broken/template.yaml", "kind: workflow\n")
    repo.write(
        "tmpl/broken/{{ name }}.yaml.j2",
        "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: {{ name }}}\n"
        "spec:\n  steps:\n    - {name: a, run: 'true', needs: [b]}\n",
    )
    p = repo.orch("workflow", "create", "w", "--template", "broken", "--path", "jobs")
    assert p.returncode == 1
    assert (
        "w' not created, nothing was written: the template's manifests do not validate" in p.stderr
    )
    assert "jobs/w.yaml:6:38: spec.steps[0].needs[0]: no step named 'b'" in p.stderr
    assert not (repo.path / "jobs").exists()


def test_manifests_that_would_never_be_read_are_refused(repo: Any) -> None:
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nmanifests: [projects]\n")
    p = repo.orch("project", "create", "web", "--template", "web-app")
    assert p.returncode == 1
    assert "would never be read: web/project.yaml, web/web-build.yaml" in p.stderr
    assert not (repo.path / "web").exists()
    ok(repo.orch("project", "create", "web", "--template", "web-app", "--path", "projects/web"))


def test_params_are_typed_checked_and_defaulted(repo: Any) -> None:
    r = open_repo(repo.path)
    t = templates_index.find(templates_index.list_templates(r), "workflow", "data-pipeline")
    ctx = {"name": "sales", "project": None, "path": ".", "template": t.name}
    values = templates_index.resolve_params(t, {"rows": "12", "group_by": "product"}, ctx)
    assert values["rows"] == 12 and values["seed"] == 42
    assert values["title"] == "sales: sales by region"  # a templated default
    with pytest.raises(UsageError, match="expected a whole number"):
        templates_index.resolve_params(t, {"rows": "many"}, ctx)
    with pytest.raises(UsageError, match="did you mean 'rows'"):
        templates_index.resolve_params(t, {"row": "1"}, ctx)
    with pytest.raises(UsageError, match="not one of 'region', 'product'"):
        templates_index.resolve_params(t, {"group_by": "colour"}, ctx)
    with pytest.raises(UsageError, match="NAME=VALUE"):
        templates_index.parse_pairs(["rows"])
    with pytest.raises(UsageError, match="project template, not a workflow template"):
        templates_index.find(templates_index.list_templates(r), "workflow", "web-app")

    p = repo.orch(
        "project",
        "create",
        "web",
        "--template",
        "web-app",
        "--param",
        "port=80",
        "--param",
        "due=2031-01-02",
    )
    ok(p)
    proj = repo.read("web/project.yaml")
    assert "port: 80\n" in proj and 'due: "2031-01-02"' in proj
    for bad in (["--path", "../out"], ["--path", ".orch/x"]):
        p = repo.orch("project", "create", "other", "--template", "web-app", *bad)
        assert p.returncode == 2, p.stderr
    p = repo.orch("project", "create", "web", "--template", "web-app", "--path", "web2")
    assert p.returncode == 2 and "a project named 'web' already exists" in p.stderr


# --------------------------------------------------------------------------- list and status


MILESTONES = """\
  milestones:
    - {name: first, workflows: [shop-wf]}
    - {name: later, steps: [shop-wf/fails], due: "2999-12-31"}
    - {name: late, steps: [shop-wf/fails], due: "2000-01-01"}
    - {name: early-done, steps: [shop-wf/good], due: "2000-01-01"}
"""


def test_status_shows_failing_steps_runs_and_milestones(repo: Any) -> None:
    small_project(
        repo,
        "shop",
        "    - {name: good, run: 'true'}\n    - {name: fails, run: 'echo boom; exit 3'}\n"
        "    - {name: after, run: 'true', needs: [fails]}\n",
        MILESTONES,
    )
    small_project(repo, "other", "    - {name: x, run: 'true'}\n")
    fresh = repo.orch_json("project", "status", "shop")
    assert [w["status"] for w in fresh["workflows"]] == ["never-ran"]
    assert {m["name"]: m["state"] for m in fresh["milestones"]} == {
        "first": "pending",
        "later": "pending",
        "late": "overdue",
        "early-done": "overdue",
    }

    repo.apply("shop-wf")
    data = repo.orch_json("project", "status", "shop")
    (wf,) = data["workflows"]
    assert (wf["workflow"], wf["status"], wf["green"], wf["steps"]) == ("shop-wf", "failing", 1, 3)
    failing = {s["step"]: s for s in wf["failing"]}
    assert set(failing) == {"fails", "after"}
    assert failing["fails"]["exit_code"] == 3
    assert "boom" in (repo.path / failing["fails"]["log"]).read_text()
    assert failing["after"]["status"] == "blocked"
    assert wf["last_run"]["status"] == "failed" and wf["last_run"]["id"] == data["runs"][0]["id"]
    states = {m["name"]: (m["state"], m["missing"]) for m in data["milestones"]}
    assert states == {
        "first": ("pending", ["shop-wf"]),
        "later": ("pending", ["shop-wf/fails"]),
        "late": ("overdue", ["shop-wf/fails"]),
        "early-done": ("done", []),
    }
    assert [m["days_left"] < 0 for m in data["milestones"] if m["due"]] == [False, True, True]

    repo.write("shop/wf.yaml", repo.read("shop/wf.yaml").replace("exit 3", "exit 0"))
    repo.apply("shop-wf")
    data = repo.orch_json("project", "status", "shop")
    assert data["workflows"][0]["status"] == "green"
    assert {m["state"] for m in data["milestones"]} == {"done"}
    text = ok(repo.orch("project", "status", "shop")).stdout
    assert "shop-wf" in text and "milestones:" in text

    rows = {r["name"]: r for r in repo.orch_json("project", "list")}
    assert rows["shop"]["workflows"] == ["shop-wf"] and rows["shop"]["lifecycle"] == "active"
    assert rows["other"]["milestones"] == []
    p = repo.orch("project", "status", "shopp")
    assert p.returncode == 1 and "did you mean 'shop'?" in p.stderr


# --------------------------------------------------------------------------- archive and restore


def archivable(repo: Any) -> dict[str, tuple[str, int, str | None]]:
    small_project(
        repo,
        "shop",
        "    - {name: build, run: 'mkdir -p out && echo built > out/x', outputs: [out/x]}\n",
    )
    repo.write("shop/bin/run.sh", "#!/bin/sh\necho run\n")
    os.chmod(repo.path / "shop/bin/run.sh", 0o755)
    os.chmod(repo.path / "shop/bin", 0o750)
    (repo.path / "shop/empty").mkdir()
    os.symlink("bin/run.sh", repo.path / "shop/run")
    repo.write("shop/data.bin", "", dedent=False)
    (repo.path / "shop/data.bin").write_bytes(bytes(range(256)) * 64)
    # a workflow of the project kept outside its folder travels with it
    repo.write(
        "ci/shop-extra.yaml",
        "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: shop-extra, project: shop}\n"
        "spec:\n  steps:\n    - {name: e, run: 'true'}\n",
    )
    small_project(repo, "other", "    - {name: x, run: 'true'}\n")
    repo.apply()
    snap = snapshot(repo.path, "shop")
    snap["ci/shop-extra.yaml"] = snapshot(repo.path, "ci")["ci/shop-extra.yaml"]
    return snap


def test_archive_and_restore_are_byte_identical(repo: Any) -> None:
    before = archivable(repo)
    out = ok(repo.orch("project", "archive", "shop"))
    assert "into .orch/archive/shop.tar.gz" in out.stdout
    assert not (repo.path / "shop").exists() and not (repo.path / "ci/shop-extra.yaml").exists()
    index = json.loads(repo.read(".orch/archive/shop.json"))
    files = {e["path"]: e for e in index["entries"]}
    assert files["shop/data.bin"]["sha256"] == hashlib.sha256(bytes(range(256)) * 64).hexdigest()
    assert files["shop/bin/run.sh"]["mode"] == 0o755 and files["shop/run"]["type"] == "symlink"

    rows = {r["name"]: r for r in repo.orch_json("project", "list")}
    assert rows["shop"]["lifecycle"] == "archived"
    assert rows["shop"]["workflows"] == ["shop-extra", "shop-wf"]
    assert repo.orch_json("project", "status", "shop")["lifecycle"] == "archived"
    planned = {s["workflow"] for s in repo.orch_json("plan")["steps"]}
    assert planned == {"other-wf"}  # the archived workflows are no longer reconciled
    assert repo.orch("project", "archive", "shop").returncode == 2
    assert repo.orch("project", "create", "shop", "--template", "web-app").returncode == 2

    ok(repo.orch("project", "restore", "shop"))
    after = snapshot(repo.path, "shop")
    after["ci/shop-extra.yaml"] = snapshot(repo.path, "ci")["ci/shop-extra.yaml"]
    assert after == before
    assert not (repo.path / ".orch/archive/shop.json").exists()
    assert not (repo.path / ".orch/archive/shop.tar.gz").exists()
    # the recorded state outlived the archive: nothing to run again
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}
    assert repo.orch("project", "restore", "shop").returncode == 2


def test_restore_never_overwrites_and_checks_hashes(repo: Any) -> None:
    archivable(repo)
    ok(repo.orch("project", "archive", "shop"))
    repo.write("shop/bin/run.sh", "#!/bin/sh\necho somebody else's\n")
    p = repo.orch("project", "restore", "shop")
    assert p.returncode == 1 and "shop/bin/run.sh" in p.stderr and "nothing was written" in p.stderr
    assert sorted(x.relative_to(repo.path).as_posix() for x in (repo.path / "shop").rglob("*")) == [
        "shop/bin",
        "shop/bin/run.sh",
    ]
    (repo.path / "shop/bin/run.sh").unlink()

    idx_path = repo.path / ".orch/archive/shop.json"
    good = idx_path.read_text()
    index = json.loads(good)
    for e in index["entries"]:
        if e["path"] == "shop/data.bin":
            e["sha256"] = "0" * 64
    idx_path.write_text(json.dumps(index))
    p = repo.orch("project", "restore", "shop")
    assert p.returncode == 1 and "shop/data.bin does not match its hash" in p.stderr
    assert not (repo.path / "shop/data.bin").exists()
    idx_path.write_text(good)
    ok(repo.orch("project", "restore", "shop"))


def test_restore_refuses_paths_and_links_out_of_the_repository(repo: Any) -> None:
    arch = repo.path / ".orch/archive"
    arch.mkdir(parents=True)

    def fake(name: str, member: tarfile.TarInfo, data: bytes = b"") -> None:
        with tarfile.open(arch / f"{name}.tar.gz", "w:gz") as tar:
            tar.addfile(member, io.BytesIO(data) if data else None)
        kind = "symlink" if member.issym() else "file"
        entry = {"path": member.name, "type": kind, "mode": 0o644, "size": len(data)}
        entry.update(
            {"target": member.linkname}
            if member.issym()
            else {"sha256": hashlib.sha256(data).hexdigest()}
        )
        (arch / f"{name}.json").write_text(
            json.dumps({"version": 1, "name": name, "dir": "x", "entries": [entry]})
        )

    evil = tarfile.TarInfo("../evil")
    evil.size = 3
    fake("climb", evil, b"bad")
    p = repo.orch("project", "restore", "climb")
    assert p.returncode == 1 and "refusing the unsafe path '../evil'" in p.stderr
    assert not (repo.path.parent / "evil").exists()

    link = tarfile.TarInfo("x/passwd")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    fake("linky", link)
    p = repo.orch("project", "restore", "linky")
    assert p.returncode == 1 and "cannot be unpacked safely" in p.stderr
    assert not os.path.lexists(repo.path / "x/passwd")


def test_archive_refuses_what_would_break_the_rest(repo: Any) -> None:
    small_project(repo, "shop", "    - {name: a, run: 'true'}\n")
    small_project(
        repo,
        "other",
        "    - {name: x, run: 'true'}\n",
        "  milestones: [{name: m, workflows: [shop-wf]}]\n",
    )
    before = snapshot(repo.path, "shop")
    p = repo.orch("project", "archive", "shop")
    assert p.returncode == 1
    assert "the manifests left behind would not validate" in p.stderr
    assert "other/project.yaml:7:" in p.stderr and "no workflow named 'shop-wf'" in p.stderr
    assert (
        snapshot(repo.path, "shop") == before
        and not (repo.path / ".orch/archive/shop.json").exists()
    )

    repo.write(
        "other/project.yaml",
        repo.read("other/project.yaml").replace(
            "  milestones: [{name: m, workflows: [shop-wf]}]\n", ""
        ),
    )
    repo.write(
        "shop/stray.yaml",
        "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: stray}\nspec:\n  steps: [{name: s, run: 'true'}]\n",
    )
    p = repo.orch("project", "archive", "shop")
    assert p.returncode == 1 and "shop/stray.yaml also holds Workflow 'stray'" in p.stderr


# --------------------------------------------------------------------------- environments, --project


ENVS = """\
  environments:
    dev: {params: {level: low}}
    prod: {params: {level: high}}
"""
ENV_STEPS = """\
    - {name: fixed, run: 'echo fixed >> runs.log'}
    - {name: uses, run: 'echo {{ params.level | default("none") }} >> runs.log'}
"""


def ran(result: dict[str, Any]) -> list[str]:
    return result["ran"]


def test_switching_environments_reruns_only_what_depends_on_them(repo: Any) -> None:
    small_project(repo, "shop", ENV_STEPS, envs=ENVS)
    assert ran(repo.apply()) == ["fixed", "uses"]
    assert ran(repo.apply("--env", "prod")) == ["uses"]
    assert ran(repo.apply("--env", "dev")) == ["uses"]
    # switching back finds each environment's earlier result
    assert ran(repo.apply("--env", "prod")) == []
    assert ran(repo.apply("--env", "dev")) == []
    assert ran(repo.apply()) == []
    runs = repo.read("shop/runs.log").split()  # the first two ran in parallel
    assert sorted(runs[:2]) == ["fixed", "none"] and runs[2:] == ["high", "low"]
    plan = repo.plan("--env", "prod")
    assert plan[("shop-wf", "uses")][0] == "up-to-date"
    p = repo.orch("apply", "--env", "stage")
    assert p.returncode == 1 and "--env stage: no project defines that environment" in p.stderr
    assert repo.orch("project", "status", "shop", "--env", "prd").returncode == 2


def test_a_step_that_reads_no_env_param_does_not_rerun_in_a_new_environment(repo: Any) -> None:
    small_project(repo, "shop", ENV_STEPS, envs=ENVS)
    assert ran(repo.apply("--env", "dev")) == ["fixed", "uses"]
    assert ran(repo.apply("--env", "prod")) == ["uses"]


def test_project_selects_workflows_on_plan_apply_status_and_watch(repo: Any) -> None:
    small_project(repo, "a", "    - {name: one, run: 'echo a >> log'}\n")
    small_project(repo, "b", "    - {name: two, run: 'echo b >> log'}\n")
    assert {w for w, _ in repo.plan("--project", "a")} == {"a-wf"}
    assert ran(repo.apply("--project", "a")) == ["one"]
    status = {
        (s["workflow"], s["status"]) for s in repo.orch_json("status", "--project", "b")["steps"]
    }
    assert status == {("b-wf", "never-ran")}
    assert {
        (s["workflow"], s["status"]) for s in repo.orch_json("status", "--project", "a")["steps"]
    } == {("a-wf", "succeeded")}
    p = repo.orch("plan", "--project", "c")
    assert p.returncode == 1 and "no project named 'c'" in p.stderr

    repo.write("b/wf.yaml", repo.read("b/wf.yaml").replace("echo b", "echo bb"))
    repo.write("a/wf.yaml", repo.read("a/wf.yaml").replace("echo a", "echo aa"))
    watch = subprocess.Popen(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "watch", "--project", "a", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "aa" not in (repo.path / "a/log").read_text():
            time.sleep(0.05)
    finally:
        watch.terminate()
        watch.wait(timeout=30)
    assert (repo.path / "a/log").read_text().split() == ["a", "aa"]
    assert not (repo.path / "b/log").exists()


def test_create_then_archive_in_process_api(repo: Any) -> None:
    """The modules are callable as a library, without the CLI."""
    from runner.projects import archive
    from runner.projects import core as projects

    r = open_repo(repo.path)
    made = scaffold.create(r, "project", "lib", "data-pipeline", {"dev_rows": "50"}, cwd=repo.path)
    assert made.workflows == ["lib-pipeline"] and "lib/lib-pipeline.yaml" in made.files
    r = open_repo(repo.path)
    assert [p["name"] for p in projects.list_projects(r)] == ["lib"]
    out = archive.archive(r, "lib")
    assert out["files"] == len(made.files) and out["not_removed"] == []
    r = open_repo(repo.path)
    with pytest.raises(OrchError, match="already archived"):
        archive.archive(r, "lib")
    assert archive.restore(r, "lib")["files"] == len(made.files)
