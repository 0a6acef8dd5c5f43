"""The workspace: an opened orch repository (``Repo``) and the ``.orch/`` folder in it.

Below ``api`` (the facade) and above the engine: use cases (projects, the system report)
open a repository and its state store through here, never through ``api``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import OrchError

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.masking import Secrets
    from runner.store.state import State

CONFIG_PATH = ".orch/config.yaml"

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


class NotARepository(OrchError):
    """No manifests and no ``.orch/``: the folder is not an orch repository (yet), as
    ``terraform plan`` in an empty folder says, rather than an empty plan that exits 0."""

    def __init__(self, root: Path):
        from runner.errors import shown

        super().__init__(
            f"not an orch repository: no manifests under {shown(str(root))} (run orch init)"
        )


class Repo:
    """An opened orch repository: its root, how its paths are shown, its manifests."""

    def __init__(self, root: Path, prefix: str = ""):
        self.root = root
        self.prefix = prefix  # how paths under root are shown to the user
        self._manifests: Manifests | None = None
        self.warnings: dict[str, None] = {}  # said once each, by the caller (CLI: stderr)
        self._secrets: tuple[object, Secrets] | None = None  # api.secrets: (catalog, set)
        self._unloadable = False  # api.secrets found the manifests do not load
        # the no-op witness held (``runner.noop``): nothing changed since a full plan, so
        # the secret names past applies remembered are all there is to mask with
        self.noop_hit = False
        # where this command runs tasks ("local", "dask"), when it chose (--executor,
        # --dask-address); None: the config's executor.kind. It decides whether a cpu or
        # memory request beyond this host is an error (``Manifests.host_diags``).
        self.executor_kind: str | None = None
        self.writes_cache = True  # False for a verb that only reads: it creates nothing

    def __repr__(self) -> str:
        return f"Repo(root={self.root!r}, prefix={self.prefix!r})"

    @property
    def orch_dir(self) -> Path:
        return self.root / ".orch"

    def manifests(self, extra_paths: list[str] | None = None) -> Manifests:
        if self._manifests is None or extra_paths:
            from runner.manifests.cache import load_cached

            try:
                m = load_cached(self.root, self.prefix, extra_paths, write=self.writes_cache)
            except OrchError as e:
                self.warnings.update(dict.fromkeys(e.warnings))
                raise
            self.warnings.update(dict.fromkeys(m.warnings))
            if m.host_diags and self.runs_here(m):
                err = OrchError(diagnostics=m.host_diags)
                err.warnings = list(m.warnings)
                raise err
            if extra_paths:
                return m
            if not m.files and not self.orch_dir.is_dir():
                raise NotARepository(self.root)
            self._manifests = m
        return self._manifests

    def runs_here(self, m: Manifests) -> bool:
        """Whether tasks run on this machine, where the host is the ceiling of every
        ``cpu``/``memory`` request: the local executor (this command's choice, else the
        config's). On a Dask cluster the workers are, checked when the run connects."""
        from runner.manifests.load import runs_here

        if self.executor_kind is not None:
            return self.executor_kind != "dask"
        return runs_here(m.config)

    def reload(self) -> None:
        """Forget the loaded manifests: a long-lived caller (orch watch, the MCP server)
        sees edits on its next call (the stat-keyed cache keeps unchanged ones cheap)."""
        self._manifests = None
        self._unloadable = False
        self.noop_hit = False


def open_repo(start: str | os.PathLike[str] | None = None, *, exact: bool = False) -> Repo:
    """The orch repository at or above ``start`` (default: the current folder): the
    nearest folder holding ``.orch/config.yaml``, else the top of the git work tree, else
    ``start`` (``exact``: ``start`` itself), as git finds its repository. Nothing is read yet: manifests load on
    first use. OrchError when ``start`` is not a folder."""
    from runner.manifests.sources import display_prefix, find_root

    base = Path(start) if start is not None else Path.cwd()
    if not base.is_dir():
        raise OrchError(f"{base}: no such directory")
    root = base.resolve() if exact else find_root(base)
    return Repo(root=root, prefix=display_prefix(root))


def init(repo: Repo) -> list[str]:
    """Create ``.orch/config.yaml`` (manifests: every YAML file under the root) and
    ``.orch/.gitignore`` if missing; idempotent. Returns the paths created, relative to
    the root (empty when already initialised)."""
    created = []
    repo.orch_dir.mkdir(exist_ok=True)
    for rel, text in ((CONFIG_PATH, CONFIG_TEMPLATE), (".orch/.gitignore", GITIGNORE)):
        p = repo.root / rel
        if not p.exists():
            from runner.fsutil import atomic_write

            atomic_write(p, text)
            created.append(rel)
    return created


def open_state(repo: Repo, readonly: bool = False) -> State:
    """The state store (``.orch/state.db``, created on first write; ``readonly``: read as
    it is, see ``store.state.State``).

    Never writes ``.orch/.gitignore``: that file is committed, and re-creating it after a
    checkout of an older commit would make git refuse the next checkout (an untracked file
    in the way). Only ``orch init`` writes committed files.
    """
    from runner.store.state import State

    return State(repo.orch_dir, readonly)


def writable(repo: Repo) -> bool:
    """Whether this process may write the state: on a read-only mount, with files it may
    not write, or where there is no ``.orch/`` yet, ``plan`` reads the state as it is."""
    d = repo.orch_dir
    db = d / "state.db"
    if not d.is_dir():
        return False  # a read never creates .orch/: only init and apply do
    return os.access(d, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))
