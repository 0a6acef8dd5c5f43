"""The library API: what the CLI, the MCP server and the tests call.

Every function takes an opened ``Repo`` and returns data; none prints or exits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import OrchError
from runner.manifests import CONFIG_PATH, Manifests

GITIGNORE = (
    "# machine-local orch state; only the config is committed\n*\n!config.yaml\n!.gitignore\n"
)
CONFIG_TEMPLATE = """\
apiVersion: orch/v1
kind: Config
# Where manifests live: files, folders or globs relative to the repository root.
manifests: ["."]
# Globs never read as manifests.
exclude: []
"""


@dataclass
class Repo:
    root: Path
    prefix: str = ""  # how paths under root are shown to the user
    _manifests: Manifests | None = field(default=None, repr=False)

    @property
    def orch_dir(self) -> Path:
        return self.root / ".orch"

    def manifests(self, extra_paths: list[str] | None = None) -> Manifests:
        if self._manifests is None or extra_paths:
            from runner.cache import load_cached

            m = load_cached(self.root, self.prefix, extra_paths)
            if extra_paths:
                return m
            self._manifests = m
        return self._manifests


def open_repo(start: str | os.PathLike[str] | None = None, *, exact: bool = False) -> Repo:
    """The orch repository at or above ``start`` (``exact``: ``start`` itself)."""
    from runner.manifests import display_prefix
    from runner.sources import find_root

    base = Path(start) if start is not None else Path.cwd()
    if not base.is_dir():
        raise OrchError(f"{base}: no such directory")
    root = base.resolve() if exact else find_root(base)
    return Repo(root=root, prefix=display_prefix(root))


def validate(repo: Repo, paths: list[str] | None = None) -> Manifests:
    """All manifests, checked; raises OrchError with every problem found."""
    return repo.manifests(extra_paths=paths or None)


def init(repo: Repo) -> list[str]:
    """Create ``.orch/config.yaml`` and ``.orch/.gitignore`` if missing; idempotent."""
    created = []
    repo.orch_dir.mkdir(exist_ok=True)
    for rel, text in ((CONFIG_PATH, CONFIG_TEMPLATE), (".orch/.gitignore", GITIGNORE)):
        p = repo.root / rel
        if not p.exists():
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, p)
            created.append(rel)
    return created


def graph(repo: Repo, workflow: str, fmt: str = "text") -> str:
    from runner.render import render_graph

    m = repo.manifests()
    wf = m.workflow(workflow)
    return render_graph(wf, m.dags[wf.name], fmt)


def workflows(repo: Repo) -> list[dict[str, Any]]:
    m = repo.manifests()
    return [
        {
            "name": wf.name,
            "project": wf.project,
            "path": repo.prefix + wf.path,
            "steps": len(wf.steps),
            "description": wf.description,
            "quota": wf.quota,
        }
        for wf in sorted(m.workflows.values(), key=lambda w: w.name)
    ]
