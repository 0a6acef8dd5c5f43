"""orch is installable by name (``orch-gitops``), with one version and its licence."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import runner

ROOT = Path(__file__).resolve().parent.parent
DIST = "orch-gitops"  # "orch" on the package index is an unrelated project


def test_installed_distribution_is_orch_gitops_at_the_one_version() -> None:
    """The version is written once (runner/__init__.py); the installed metadata and
    ``orch --version`` both read it."""
    assert metadata.version(DIST) == runner.__version__
    p = subprocess.run(
        [sys.executable, "-m", "runner", "--version"], capture_output=True, text=True
    )
    assert p.returncode == 0 and p.stdout.split() == ["orch", runner.__version__]
    scripts = metadata.distribution(DIST).entry_points.select(group="console_scripts")
    assert [(e.name, e.value) for e in scripts] == [("orch", "runner.cli.main:main")]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.M), "the version lives in runner/"


def _pip_lines() -> list[tuple[str, str]]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "runner").rglob("*.py"))
    files += [p for p in (ROOT / ".ci").rglob("*") if p.is_file()]
    files += [
        p
        for p in (ROOT / "examples").rglob("*")
        if p.is_file() and p.suffix in (".md", ".py", ".yaml", ".sh")
    ]
    out = []
    for f in files:
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            for m in re.finditer(r"pip install ((?:[^\s`#&;|]+ ?)+)", line):
                out.append((str(f.relative_to(ROOT)), m.group(1)))
    return out


def test_every_pip_install_line_names_the_published_package() -> None:
    """``pip install orch`` would install someone else's project."""
    lines = _pip_lines()
    assert lines, "the README shows how to install"
    bad = [
        (where, args)
        for where, args in lines
        for word in args.split()
        if re.fullmatch(r"orch(\[[^\]]*\])?", word.strip("'\""))
    ]
    assert not bad, bad


def test_licence_and_changelog() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the orch authors" in text
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    log = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in log and "keepachangelog.com" in log
