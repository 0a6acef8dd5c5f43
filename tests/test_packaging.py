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


RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.M)
FIRST = "0.1.0"  # the version the first release carries


def _releases() -> list[str]:
    """The CHANGELOG's released versions, newest first; every ``## [`` heading must be
    ``[Unreleased]`` (first) or a dated release (RELEASING.md)."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    heads = re.findall(r"^## \[.*$", text, re.M)
    assert heads and heads[0] == "## [Unreleased]", heads[:1]
    odd = [h for h in heads[1:] if not RELEASE.fullmatch(h)]
    assert odd == [], "a release heading is '## [X.Y.Z] - YYYY-MM-DD'"
    return [v for v, _ in RELEASE.findall(text)]


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def test_version_is_the_top_released_changelog_section() -> None:
    """``runner.__version__`` is bumped with the CHANGELOG section that releases it;
    before any release it is the first version. Releases are listed newest first."""
    released = _releases()
    assert released == sorted(released, key=_key, reverse=True), released
    assert runner.__version__ == (released[0] if released else FIRST)


def test_pre_commit_docs_pin_a_release_tag_of_this_repository() -> None:
    """docs/ci.md's ``.pre-commit-config.yaml`` pins ``rev: vX.Y.Z`` (a tag RELEASING.md
    makes), the current version's, and names the hooks ``.pre-commit-hooks.yaml`` has."""
    doc = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    revs = re.findall(r"^\s+rev: (\S+)", doc, re.M)
    assert revs == [f"v{runner.__version__}"], revs
    import yaml

    hooks = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    shown = set(re.findall(r"^\s+- id: (\S+)", doc, re.M))
    assert shown == hooks
    assert re.search(r"^\s+- repo: https://github\.com/orch-gitops/orch$", doc, re.M)
