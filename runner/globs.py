"""Path globs as users of git, DVC and GitHub Actions write them.

``*`` and ``?`` stay inside one path segment, ``**`` spans any number of segments, ``[...]``
is a character class, and a pattern ending in ``/`` names a directory and everything in it.
(``fnmatch`` lets ``*`` cross ``/``; ``glob.translate`` needs Python 3.13.)
"""

from __future__ import annotations

import re
from functools import lru_cache

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("/"):
        pattern += "**"
    i, n, out = 0, len(pattern), []
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def match(pattern: str, path: str) -> bool:
    return compile_glob(pattern).match(path) is not None


def literal_prefix(pattern: str) -> str:
    """The directory part of ``pattern`` before its first glob character."""
    cut = len(pattern)
    for i, c in enumerate(pattern):
        if c in GLOB_CHARS:
            cut = i
            break
    head = pattern[:cut]
    return head if cut == len(pattern) else head.rsplit("/", 1)[0] if "/" in head else ""
