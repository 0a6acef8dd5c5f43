"""Where manifests and input files come from: the work tree as git sees it.

git decides what is ignored (``git ls-files --others --exclude-standard``), as DESIGN.md
asks. The hot path shells out to the ``git`` binary directly (a few ms); gitpython is used
only where we read objects at a revision (``--ref``/``--since``), and imported there.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml")
_GIT_ENV_DROP = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
)


def clean_git_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without the variables a git hook sets for its own repository.

    A step started from a pre-commit hook must not inherit ``GIT_INDEX_FILE`` and friends,
    or every git command it runs would act on the hook's index instead of its own.
    """
    base = dict(os.environ if env is None else env)
    for k in _GIT_ENV_DROP:
        base.pop(k, None)
    return base


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        env=clean_git_env(),
        check=check,
    )


def git_toplevel(path: Path) -> Path | None:
    try:
        p = git(path, "rev-parse", "--show-toplevel", check=False)
    except FileNotFoundError:
        return None
    if p.returncode != 0:
        return None
    return Path(os.fsdecode(p.stdout.strip()))


def find_root(start: Path) -> Path:
    """The orch repository ``start`` is in: the nearest folder with ``.orch/config.yaml``,
    else the git work tree's top, else ``start`` itself (as git and make pick theirs)."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / ".orch" / "config.yaml").is_file():
            return d
    top = git_toplevel(start)
    return top if top is not None else start


def list_files(root: Path, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """Repo-relative posix paths of files git tracks or would track under ``root``.

    Outside a git repository: every file under ``root`` but ``.git/`` and ``.orch/``.
    Files listed by git's index but deleted from the work tree are left out.
    """
    try:
        specs = [f"*{s}" for s in suffixes] if suffixes else []
        p = git(root, "ls-files", "-z", "-c", "-o", "--exclude-standard", "--", *specs, check=False)
        in_git = p.returncode == 0
    except FileNotFoundError:
        in_git = False
    if in_git:
        names = [n for n in os.fsdecode(p.stdout).split("\0") if n]
        seen: set[str] = set()
        out = []
        for n in names:
            if n in seen:
                continue
            seen.add(n)
            if n.startswith(".orch/") or ("/.orch/" in n and not n.endswith("/.orch/config.yaml")):
                continue
            if os.path.lexists(root / n):
                out.append(n)
        return sorted(out)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".orch"))
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if suffixes and not f.endswith(suffixes):
                continue
            out.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
    return sorted(out)


def list_manifest_files(root: Path) -> list[str]:
    return list_files(root, MANIFEST_SUFFIXES)


def git_commit_state(root: Path) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked files differ from it), or (None, None) outside git."""
    try:
        head = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    except FileNotFoundError:
        return None, None
    if head.returncode != 0:
        return None, None
    status = git(root, "status", "--porcelain", "--untracked-files=no", check=False)
    return head.stdout.decode().strip(), bool(status.stdout.strip())


def display_prefix(root: Path) -> str:
    """Paths in messages are relative to where the user stands, so editors can open them."""
    try:
        rel = Path(os.path.relpath(root, Path.cwd()))
    except ValueError:
        return ""
    s = rel.as_posix()
    if s == "." or s.startswith(".."):
        return ""
    return s + "/"


GIT_KEYS = ("commit", "short", "branch", "describe", "dirty")


class GitValues:
    """``{{ git.KEY }}``: the repository's state, asked of git once per run, per key read.

    Only the keys some step's templates read are ever asked (a workflow that reads none
    runs no git at all, so a no-op plan stays as fast as before), each once, and kept for
    the rest of the run: every step of one apply sees the same values. Where git has no
    answer the value is defined, never an error:

    * ``commit``/``short``: HEAD's full and abbreviated hash; ``""`` outside a git
      repository or before the first commit;
    * ``branch``: the checked-out branch's short name; ``""`` on a detached HEAD (as
      ``git branch --show-current`` prints) and outside a repository;
    * ``describe``: ``git describe --tags --always``: the nearest tag (``v1.2-3-gabc1234``),
      or the abbreviated hash where no tag reaches HEAD; ``""`` without a commit;
    * ``dirty``: true when tracked files differ from HEAD (``git status`` without
      untracked files, as ``git describe --dirty`` judges); false outside a repository.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known: dict[str, str | bool] = {}

    def get(self, keys: tuple[str, ...] | None) -> dict[str, str | bool]:
        """The values of ``keys`` (None: all of them), asking git only for new ones."""
        for k in GIT_KEYS if keys is None else keys:
            if k not in self._known and k in GIT_KEYS:
                self._known[k] = self._ask(k)
        return {k: self._known[k] for k in (GIT_KEYS if keys is None else keys) if k in self._known}

    def _ask(self, key: str) -> str | bool:
        args = {
            "commit": ("rev-parse", "--verify", "-q", "HEAD"),
            "short": ("rev-parse", "--verify", "-q", "--short", "HEAD"),
            "branch": ("symbolic-ref", "-q", "--short", "HEAD"),
            "describe": ("describe", "--tags", "--always"),
            "dirty": ("status", "--porcelain", "--untracked-files=no"),
        }[key]
        try:
            p = git(self.root, *args, check=False)
        except FileNotFoundError:  # no git on this machine: as outside a repository
            return False if key == "dirty" else ""
        out = os.fsdecode(p.stdout).strip() if p.returncode == 0 else ""
        return bool(out) if key == "dirty" else out
