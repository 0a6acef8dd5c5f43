"""Paths written in manifests, made repo-relative and kept inside the repository.

A manifest path is relative to the manifest's directory. It must not be absolute, climb out
with ``..``, or pass through a symlink that points outside the repository: nothing is read,
written, hashed or deleted outside the repository.
"""

from __future__ import annotations

import os
import posixpath
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import globs, links

if TYPE_CHECKING:
    from runner.model import Step, Workflow


class PathEscape(ValueError):
    pass


def join(base: str, p: str) -> str:
    """``p`` (relative to ``base``) as a normalised repo-relative posix path; keeps a final '/'."""
    if p.startswith("/") or (len(p) > 1 and p[1] == ":"):
        raise PathEscape(f"'{p}' is an absolute path; write it relative to the manifest's folder")
    trailing = p.endswith("/")
    j = posixpath.normpath(posixpath.join(base, p)) if base else posixpath.normpath(p)
    if j == ".." or j.startswith("../"):
        raise PathEscape(f"'{p}' escapes the repository")
    if j == ".":
        return "" if not trailing else ""
    return j + "/" if trailing else j


def join_pattern(base: str, p: str) -> str:
    """``join`` for an ``inputs``/``outputs`` entry: a leading "!" (an exclusion) is kept
    in front of the joined path."""
    if p.startswith("!"):
        return "!" + join(base, p[1:])
    return join(base, p)


def check_symlinks(root: Path, rel: str) -> None:
    """Raise if the existing part of ``rel`` resolves outside ``root``. A ``!`` exclusion
    is never checked: it names what is not read, so it is never followed."""
    if rel.startswith("!"):
        return
    head = globs.literal_prefix(rel) if globs.is_glob(rel) else globs.literal(rel).rstrip("/")
    if not head:
        return
    target = _resolve(str(root), head)
    if not links.inside(_real(str(root)), target):
        raise PathEscape(f"'{rel}' leads outside the repository through a symlink")


@lru_cache(maxsize=65536)
def _real(path: str) -> str:
    return os.path.realpath(path)


def _resolve(root: str, rel: str) -> str:
    """realpath of root/rel, resolving each folder once however many paths share it."""
    parent, _, name = rel.rpartition("/")
    base = _real(os.path.join(root, parent)) if parent else _real(root)
    full = os.path.join(base, name)
    return _real(full) if os.path.islink(full) else full


LINK_OUT = "a symlink that leads outside the repository; orch reads manifests from inside it only"
LINK_OUT_HINT = "copy the file into the repository, or point the link inside it"


def leaves_repository(root: Path, rel: str) -> bool:
    """Whether reading ``root/rel`` would follow a symlink out of ``root``.

    The one rule for manifests and the config, at every entry point (load, watch, ``--ref``,
    ``--since``, MCP): a link whose target stays inside is followed, like any path in a
    manifest; one that leaves is never read. Costs one ``lstat`` per path component.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, rel))  # not cached: watch sees links change
    return real != real_root and not real.startswith(real_root + os.sep)


def target_at_revision(link: str, target: str) -> str | None:
    """Where a symlink committed at ``link`` (repo-relative) points, as a repo-relative path,
    or None when it leaves the repository (absolute, or climbing above the root). At a git
    revision the link's text is all there is: resolved against the tree, never the disk."""
    if target.startswith("/"):
        return None
    parent = posixpath.dirname(link)
    j = posixpath.normpath(posixpath.join(parent, target))
    if j == ".." or j.startswith("../") or j == ".":
        return None
    return j


# -- templated paths: one rule for the planner, validation, watch and --since ----------


def templated(raw: str) -> bool:
    return "{{" in raw or "{%" in raw


def render(
    wf: Workflow, step: Step, raw: str, params: dict[str, Any], *, pattern: bool = True
) -> str:
    """``raw`` (an input, output or workdir of ``step``) with its template rendered, not yet
    joined to the workflow's base. A path sees the params (the workflow's ``params``,
    then the step's own), ``workflow.name``, an instance's ``matrix``/``item``, and an empty ``env``: where a file is must
    not depend on who runs orch. In a pattern (an input or output, not a workdir) the
    ``matrix``/``item`` values are glob-escaped (``fan_escaped``): a file named
    ``a[1].txt`` that a foreach found is that file, never a glob. Raises what
    ``templating.render_text`` raises; each caller decides what a path that cannot be
    rendered means to it."""
    if not templated(raw):
        return raw
    from runner.templating import render_text

    ctx = {"params": {**params, **step.params}, "workflow": {"name": wf.name}, "env": {}}
    return render_text(raw, {**ctx, **(fan_escaped(step.fan) if pattern else step.fan)})


def fan_escaped(fan: dict[str, Any]) -> dict[str, Any]:
    """An instance's ``matrix``/``item`` values with every string glob-escaped (values are
    data: a path they make names one file), mappings and lists followed."""

    def esc(v: Any) -> Any:
        if isinstance(v, str):
            return globs.escape(v)
        if isinstance(v, dict):
            return {k: esc(x) for k, x in v.items()}
        if isinstance(v, list):
            return [esc(x) for x in v]
        return v

    return {k: esc(v) for k, v in fan.items()}


def step_paths(
    wf: Workflow, step: Step, params: dict[str, Any]
) -> tuple[list[str], list[str], str]:
    """A step's inputs, outputs and workdir, rendered and joined to the workflow's base
    (repo-relative; "!" exclusions kept in front). Raises PathEscape or a template error."""
    ins = [join_pattern(wf.base, render(wf, step, p, params)) for p in step.inputs]
    outs = [join_pattern(wf.base, render(wf, step, p, params)) for p in step.outputs]
    wd = (
        join_pattern(wf.base, render(wf, step, step.workdir, params, pattern=False))
        if step.workdir
        else wf.base
    )
    return ins, outs, wd
