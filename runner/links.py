"""Symbolic links met under an input folder: one rule for every reader.

Hashing (``runner.manifests.hashing``), the plan, ``orch watch`` and ``--since`` all ask this module,
so they cannot disagree about what a link means:

- a link whose target is inside the repository is followed: a linked folder is read as if
  its files were there, each named by its path through the link (``src/vendor/x.c`` for
  ``src/vendor -> ../third/lib``), and a linked file is its target's content. This is what
  make, DVC and Bazel's glob do, and what the user sees in an editor.
- a link whose target leaves the repository is an error naming the link: nothing outside
  the repository is read, hashed or deleted (a literal input outside is refused the same
  way, by ``runner.manifests.paths``).
- a link that points nowhere (dangling) is skipped, as a missing file is.
- a link to a folder the walk is inside (a loop: ``src/up -> ..``) is not walked again,
  as ``find -L`` does.
- a path a step's ``!pattern`` excludes is never followed nor checked: exclusions apply
  before this rule, so ``inputs: [venv/, "!venv/bin/"]`` reads a virtualenv whose
  ``bin/python`` leads outside.

``orch watch`` and ``--since`` learn of changes by the target's real path; ``aliases``
names every path the same file has through the links, so an edit to ``third/lib/x.c``
reaches the steps that read ``src/vendor/x.c``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from functools import lru_cache

from runner import globs
from runner.errors import OrchError, shown

SKIP_DIRS = frozenset({".git", ".orch", "__pycache__"})


class LinkEscape(OrchError):
    """A symlink under an input folder leads outside the repository."""


@lru_cache(maxsize=64)
def real_root(root: str) -> str:
    return os.path.realpath(root)


def inside(real_root_: str, real: str) -> bool:
    """Whether the real (resolved) path ``real`` is the repository or inside it."""
    return real == real_root_ or real.startswith(real_root_ + os.sep)


def follow(real_root_: str, full: str, rel: str) -> str | None:
    """The real path of the link at ``full`` (repo-relative ``rel``), if it exists and stays
    inside the repository; None when it dangles. Raises ``LinkEscape`` naming the link."""
    target = os.path.realpath(full)
    if not inside(real_root_, target):
        raise LinkEscape(
            f"{shown(rel)}: a symlink leading outside the repository (to {shown(target)}); "
            "inputs are read only inside it: copy the files in, use a git submodule, or "
            "move the link out of the input folder, or leave it out with a '!' exclusion"
        )
    if not os.path.exists(target):
        return None
    return target


def walk(
    root: str,
    rel_dir: str,
    *,
    outputs: bool = False,
    skip: frozenset[str] = SKIP_DIRS,
    exclude: tuple[str, ...] = (),
) -> Iterator[tuple[str, str, bool]]:
    """Every folder and file under repo-relative ``rel_dir``, links followed by the rule
    above: yields (repo-relative path through the links, full path, is_folder), folders
    before their content. ``rel_dir`` "" is the repository root.

    ``outputs``: the folder is a step's output, written by the step, not read by orch as an
    input (a virtualenv's ``bin/python -> /usr/bin/python3``): a link leaving the
    repository is yielded as a file (``runner.manifests.hashing`` hashes its target text, as git
    stores a link) rather than refused. Folders named in ``skip`` are not entered; a path
    ``exclude`` (repo-relative ``!`` patterns, without the "!") leaves out is neither
    yielded, entered, followed nor checked."""
    rroot = real_root(root)
    base = os.path.join(root, rel_dir) if rel_dir else root
    start = os.path.realpath(base)
    # (path through the links, full path, real path, real paths of the folders above)
    stack: list[tuple[str, str, str, frozenset[str]]] = [(rel_dir, base, start, frozenset())]
    while stack:
        rel, full, real, above = stack.pop()
        yield rel, full, True
        try:
            with os.scandir(full) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        above = above | {real}
        for e in entries:
            child = f"{rel}/{e.name}" if rel else e.name
            if exclude and globs.excluded(child, exclude):
                continue
            if e.is_symlink():
                if outputs and not inside(rroot, os.path.realpath(e.path)):
                    yield child, e.path, False
                    continue
                target = follow(rroot, e.path, child)
                if target is None:
                    continue
                if os.path.isdir(target):
                    if (
                        target in above
                        or (real + os.sep).startswith(target + os.sep)
                        or _skipped(rroot, target, skip)
                    ):
                        continue  # a loop (a folder above this one), or git's or orch's
                    stack.append((child, e.path, target, above))
                else:
                    yield child, e.path, False
            elif e.is_dir(follow_symlinks=False):
                if e.name not in skip:
                    stack.append((child, e.path, os.path.join(real, e.name), above))
            elif e.is_file(follow_symlinks=False):
                yield child, e.path, False


def find(root: str, folders: Iterable[str]) -> dict[str, str]:
    """{link path: target path}, both repo-relative, for every link to a folder or file
    inside the repository found under ``folders``. A link leaving the repository is left
    out, not raised: whether it is an error depends on the step that reads it (its ``!``
    exclusions), and the plan says so for that step."""
    rroot = real_root(root)
    out: dict[str, str] = {}
    for folder in sorted(set(folders)):
        if not os.path.isdir(os.path.join(root, folder) if folder else root):
            continue
        for rel, full, _is_dir in walk(root, folder, outputs=True):
            if rel and os.path.islink(full):
                target = os.path.realpath(full)
                if not inside(rroot, target):
                    continue
                out[rel] = "" if target == rroot else os.path.relpath(target, rroot)
    return out


def aliases(path: str, table: dict[str, str]) -> list[str]:
    """``path`` and every other repo-relative name it has through the links in ``table``
    (as ``find`` returns it); a link inside a link is followed up to 8 deep."""
    out = [path]
    frontier = [path]
    for _ in range(8):
        nxt = []
        for p in frontier:
            for link, target in table.items():
                if target == "" or p == target or p.startswith(target + "/"):
                    tail = p[len(target) :].lstrip("/") if target else p
                    alias = f"{link}/{tail}" if tail else link
                    if alias not in out:
                        out.append(alias)
                        nxt.append(alias)
        if not nxt:
            break
        frontier = nxt
    return out


def _skipped(rroot: str, target: str, skip: frozenset[str]) -> bool:
    rel = os.path.relpath(target, rroot)
    return any(part in skip for part in rel.split(os.sep))
