"""Whether a changed path is one a step reads, decided from the path alone.

The plan reads a step's inputs from disk (``runner.manifests.hashing``); ``orch watch``
and ``--since`` learn of a changed path and must say, without reading anything, whether
it could be one of those files. This module is that question, answered by the rules the
hasher follows, so the readers cannot disagree (docs/manifests.md, "Paths and globs"):

- ``.orch/`` at the repository root is orch's own state (state, logs, caches): never an
  input, whatever a pattern says (validation refuses a pattern there);
- ``.git/``, ``.orch/`` and ``__pycache__/`` folders anywhere else are entered only by a
  pattern that names them in a segment (``examples/*/.orch/config.yaml``); ``src/**`` or
  the folder ``src/`` does not reach ``src/x/.orch/``;
- a path spelled exactly as a pattern with glob characters is that file (``in[1].txt``),
  as well as what the glob matches;
- a ``!pattern`` exclusion leaves out what it matches and everything in a folder it names,
  whatever its place in the list (inputs are a set).

Answers may err towards "yes" (a template that cannot be rendered widens to its folder):
the plan then compares content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from runner import globs
from runner.links import SKIP_DIRS

STATE_DIR = ".orch"  # at the repository root: orch's own state


@dataclass(frozen=True)
class Pattern:
    """A repo-relative input pattern, compiled once."""

    root: str  # the folder before the first glob character ("" = the whole repository)
    rx: re.Pattern[str] | None  # None: a literal file or folder
    literal: str  # the path it names spelled exactly (glob characters and all), no "/"
    names: frozenset[str]  # the folders of SKIP_DIRS it names in a segment


def compile_pattern(p: str) -> Pattern:
    names = SKIP_DIRS.intersection(p.split("/"))
    if globs.is_glob(p):
        rx = globs.compile_glob(p + "**" if p.endswith("/") else p)
        return Pattern(globs.literal_prefix(p), rx, p.rstrip("/"), names)
    lit = globs.literal(p).rstrip("/")
    return Pattern(lit, None, lit, names)


def _under(path: str, folder: str) -> bool:
    return not folder or path == folder or path.startswith(folder + "/")


def reachable(pat: Pattern, path: str, is_dir: bool = False) -> bool:
    """Whether the hasher would ever look at ``path`` for ``pat``: not under the root
    ``.orch/``, and through no skipped folder the pattern does not name."""
    parts = path.split("/")
    if parts[0] == STATE_DIR:
        return False
    folders = parts if is_dir else parts[:-1]
    return not any(s in SKIP_DIRS and s not in pat.names for s in folders)


def matches(pat: Pattern, path: str, is_dir: bool = False) -> bool:
    """Whether ``path`` (a file, or with ``is_dir`` a folder that appeared, went or moved)
    is, or may hold, a file ``pat`` reads."""
    if not reachable(pat, path, is_dir):
        return False
    if is_dir:  # could anything the pattern reads be in it?
        return _under(path, pat.root) or _under(pat.root, path)
    if pat.rx is None:
        return _under(path, pat.literal)
    if path == pat.literal or path.startswith(pat.literal + "/"):
        return True  # the file (or folder) spelled exactly so, glob characters and all
    return _under(path, pat.root) and pat.rx.match(path) is not None


def excluded(path: str, exclusions: Iterable[str]) -> bool:
    """Whether a ``!pattern`` (given without its "!") leaves ``path`` out."""
    ex = tuple(exclusions)
    return bool(ex) and globs.excluded(path, ex)


class Inputs:
    """One step's input list, repo-relative, ``!`` exclusions included."""

    def __init__(self, patterns: Iterable[str]):
        pos, neg = globs.split(list(patterns))
        self.patterns = [compile_pattern(p) for p in pos]
        self.exclusions = tuple(neg)

    def reads(self, path: str, is_dir: bool = False) -> bool:
        if excluded(path, self.exclusions):
            return False
        return any(matches(p, path, is_dir) for p in self.patterns)


__all__ = ["STATE_DIR", "Inputs", "Pattern", "compile_pattern", "excluded", "matches", "reachable"]
