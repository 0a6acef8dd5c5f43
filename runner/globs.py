"""Path globs as users of git, DVC and GitHub Actions write them, checked before use.

The syntax (written down in docs/manifests.md, "Paths and globs")::

    *       any run of characters inside one path segment (never "/")
    ?       one character, never "/"
    [abc]   one character of a class; [a-z] a range; [!a] or [^a] any other character
            (never "/": ``x[!a]y`` does not match ``x/y``); "]" first in a class is a member
    **      as a whole segment (``a/**/b``, ``src/**``): any number of segments, none too;
            elsewhere (``a**b``) it is two ``*``, as in .gitignore
    \\c      the character c itself: ``in\\[1\\].txt`` names the file ``in[1].txt``;
            ``[[]`` works too
    dir/    a folder and everything in it

``*``, ``?``, ``[...]`` and ``**`` match names that start with a dot (as git's pathspecs,
.gitignore and DVC do, unlike a shell). A malformed pattern raises ``GlobError`` with its
position, so a manifest is refused at load time, never at apply. (``fnmatch`` lets ``*``
cross ``/`` and accepts reversed ranges; ``glob.translate`` needs Python 3.13.)
"""

from __future__ import annotations

import re
from functools import lru_cache

GLOB_CHARS = frozenset("*?[")


class GlobError(ValueError):
    """A malformed pattern; ``col`` is the 0-based offset of the problem in the pattern."""

    def __init__(self, pattern: str, col: int, what: str):
        super().__init__(f"bad glob '{pattern}' at character {col + 1}: {what}")
        self.pattern = pattern
        self.col = col
        self.what = what


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` has a glob character that is not escaped with a backslash."""
    if "\\" not in pattern:  # the common case: a C-speed search, no Python loop per character
        return "*" in pattern or "?" in pattern or "[" in pattern
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in GLOB_CHARS:
            return True
        i += 1
    return False


def literal(pattern: str) -> str:
    """The path a pattern with no glob character names: its backslash escapes undone."""
    if "\\" not in pattern:
        return pattern
    return re.sub(r"\\(.)", r"\1", pattern)


def escape(text: str) -> str:
    """The pattern that matches exactly the path ``text``: each glob character, backslash
    and ``!`` (which would make an entry it starts an exclusion) escaped with a backslash
    (``literal`` undoes it)."""
    if "\\" not in text and "!" not in text and not is_glob(text):
        return text
    return re.sub(r"([\\*?\[!])", r"\\\1", text)


def check(pattern: str) -> None:
    """Raise ``GlobError`` if ``pattern`` is malformed (compiling it checks everything).
    A plain path (no ``\\ * ? [``) cannot be: it is not compiled, so checking the
    thousands of literal paths a fan-out's instances name costs nothing."""
    if "\\" not in pattern and not is_glob(pattern):
        return
    compile_glob(pattern)


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regex of ``pattern`` (anchored at both ends). Raises ``GlobError``."""
    src = pattern + "**" if pattern.endswith("/") else pattern
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            if i + 1 >= n:
                raise GlobError(pattern, i, "a '\\' at the end escapes nothing")
            out.append(re.escape(src[i + 1]))
            i += 2
            continue
        if c == "*":
            if src.startswith("**", i) and (i == 0 or src[i - 1] == "/"):
                end = i + 2
                if end == n:
                    out.append(".*")
                    i = end
                    continue
                if src[end] == "/":
                    out.append("(?:.*/)?")
                    i = end + 1
                    continue
            while i < n and src[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            cls, i = _char_class(pattern, src, i)
            out.append(cls)
            continue
        else:
            out.append(re.escape(c))
        i += 1
    # a path spelled exactly as the pattern is that path too: a file named "in[1].txt"
    exact = re.escape(pattern.rstrip("/")) + ("/.*" if pattern.endswith("/") else "")
    return re.compile(f"(?:{exact}|{''.join(out)})\\Z", re.S)  # a name may hold a newline


def _char_class(pattern: str, src: str, start: int) -> tuple[str, int]:
    """The regex of the class opening at ``src[start]`` and the index after its "]"."""
    i = start + 1
    negate = i < len(src) and src[i] in "!^"
    if negate:
        i += 1
    members: list[str] = []
    first = True
    while True:
        if i >= len(src):
            raise GlobError(
                pattern, start, "'[' is never closed (write '\\[' or '[[]' for a literal '[')"
            )
        c = src[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "\\":
            if i + 1 >= len(src):
                raise GlobError(pattern, i, "a '\\' at the end escapes nothing")
            c = src[i + 1]
            i += 1
        lo = c
        if i + 2 < len(src) and src[i + 1] == "-" and src[i + 2] != "]":
            hi = src[i + 2]
            if hi == "\\" and i + 3 < len(src):
                hi = src[i + 3]
                i += 1
            if hi < lo:
                raise GlobError(
                    pattern, i, f"the range '{lo}-{hi}' is reversed (write '{hi}-{lo}')"
                )
            members.append(f"{_cls(lo)}-{_cls(hi)}")
            i += 3
            continue
        members.append(_cls(lo))
        i += 1
    body = "".join(members)
    # a class never matches "/": segments are matched one by one, as git's wildmatch does
    return (f"[^/{body}]" if negate else f"(?!/)[{body}]"), i


def _cls(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def match(pattern: str, path: str) -> bool:
    return compile_glob(pattern).match(path) is not None


def literal_prefix(pattern: str) -> str:
    """The folder part of ``pattern`` before its first glob character, unescaped: where a
    walk for it starts ("" = the repository root)."""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in GLOB_CHARS:
            head = pattern[:i]
            return literal(head.rsplit("/", 1)[0]) if "/" in head else ""
        i += 1
    return literal(pattern)


def split(patterns: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(patterns, exclusions): ``!pattern`` entries, without their "!", are exclusions."""
    pos = [p for p in patterns if not p.startswith("!")]
    neg = [p[1:] for p in patterns if p.startswith("!")]
    return pos, neg


def excluded(path: str, exclusions: list[str] | tuple[str, ...]) -> bool:
    """Whether ``path`` (a file or folder) is named by one of ``exclusions`` or lies inside
    a folder one of them names (``node_modules/.cache/`` excludes all under it)."""
    p = path.rstrip("/")
    for x in exclusions:
        base = x.rstrip("/")
        if base and (match(base, p) or match(base + "/**", p)):
            return True
    return False
