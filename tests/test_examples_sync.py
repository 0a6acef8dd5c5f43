"""The bundled examples' scripts are the templates' scripts, and each script exists once.

The examples are partly generated (``python -m runner.projects.examples``), so a fix made
in a template that is not re-rendered into ``examples/`` is caught here, as is a template
that copies a script another template already holds instead of borrowing it (``files:``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import OrchError
from runner.projects import examples, scaffold, templates_index

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "runner" / "templates"


def test_committed_examples_match_the_templates(tmp_path: Path) -> None:
    written = examples.render_examples(tmp_path)
    assert written == sorted(examples.example_files())
    assert len(written) >= 20
    stale = [
        rel
        for rel in written
        if (ROOT / "examples" / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert stale == []


def test_check_reports_a_stale_example_and_writes_nothing(tmp_path: Path) -> None:
    examples.render_examples(tmp_path)
    target = tmp_path / "data-pipeline" / "scripts" / "clean.py"
    target.write_bytes(target.read_bytes() + b"# drift\n")
    (tmp_path / "ai-analysis" / "analysis" / "deps.py").unlink()
    assert examples.render_examples(tmp_path, check=True) == [
        "ai-analysis/analysis/deps.py",
        "data-pipeline/scripts/clean.py",
    ]
    assert target.read_bytes().endswith(b"# drift\n")
    assert examples.render_examples(tmp_path) == [
        "ai-analysis/analysis/deps.py",
        "data-pipeline/scripts/clean.py",
    ]
    assert examples.render_examples(tmp_path, check=True) == []


def test_check_command_passes_on_the_repository(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "runner.projects.examples", "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    empty = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner.projects.examples",
            "--check",
            "--dest",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert empty.returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_no_script_is_held_twice_by_the_templates() -> None:
    seen: dict[str, list[str]] = {}
    for p in sorted(TEMPLATES.rglob("*.py")):
        data = p.read_bytes()
        if "__pycache__" in p.parts or not data.strip():
            continue
        seen.setdefault(hashlib.sha256(data).hexdigest(), []).append(
            p.relative_to(TEMPLATES).as_posix()
        )
    assert [paths for paths in seen.values() if len(paths) > 1] == []


def test_a_project_template_borrows_files_byte_for_byte() -> None:
    templates = templates_index.discover(ROOT)
    web = templates_index.find(templates, "project", "web-app")
    ctx = {"name": "shop", "project": "shop", "path": "shop", "template": "web-app"}
    files = scaffold.borrowed_files(web, templates, {**ctx, "params": {}})
    source = TEMPLATES / "workflow" / "build-and-test" / "tools"
    assert {f.rel: f.data for f in files} == {
        "tools/lint.py": (source / "lint.py").read_bytes(),
        "tools/orch_output.py": (source / "orch_output.py").read_bytes(),
    }


def _repo_template(tmp_path: Path, files: str) -> list[templates_index.Template]:
    d = tmp_path / "templates" / "project" / "p"
    d.mkdir(parents=True)
    (d / "template.yaml").write_text(f"kind: project\ndescription: x\nfiles: {files}\n")
    return templates_index.discover(tmp_path, "templates")


def test_borrowing_a_file_the_template_lacks_is_an_error(tmp_path: Path) -> None:
    templates = _repo_template(tmp_path, "[{template: build-and-test, paths: [tools/nope.py]}]")
    p = templates_index.find(templates, "project", "p")
    with pytest.raises(OrchError, match="has no file tools/nope.py"):
        scaffold.borrowed_files(p, templates, {"name": "p", "params": {}})


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ("3", "files"),
        ("[{template: build-and-test}]", "files[0]"),
        ("[{template: x, paths: [a], extra: 1}]", "files[0].extra"),
    ],
)
def test_a_malformed_files_field_is_reported(tmp_path: Path, files: str, where: str) -> None:
    with pytest.raises(OrchError) as e:
        _repo_template(tmp_path, files)
    assert [d.where for d in e.value.diagnostics] == [where]


OWN = {"orch.yaml", "README.md", ".gitignore", ".orch/.gitignore", ".orch/config.yaml"}
OWN_EXTRA = {
    "build-and-test": ("src/calc/", "tests/"),
    "data-pipeline": ("quota.yaml",),
    "ai-analysis": (),
    "word-counts": ("books/", "scripts/"),
}


def test_every_example_file_is_template_made_or_the_examples_own() -> None:
    """A script copied into an example by hand (a second copy to keep in step) fails here."""
    p = subprocess.run(
        ["git", "ls-files", "-z", "examples"], capture_output=True, cwd=ROOT, check=True
    )
    tracked = [f.removeprefix("examples/") for f in p.stdout.decode().split("\0") if f]
    made = examples.example_files()
    assert sorted(OWN_EXTRA) == sorted(examples.EXAMPLES)
    stray = []
    for rel in tracked:
        example, _, inner = rel.partition("/")
        if rel in made or inner in OWN or inner.startswith(OWN_EXTRA.get(example, ("?",))):
            continue
        stray.append(rel)
    assert stray == []
