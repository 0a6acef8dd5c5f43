"""Safe YAML reading with positions, YAML 1.2 scalars and hard bounds.

Values are built straight from libyaml's *event* stream rather than through PyYAML's
composer/constructor, because that one pass lets us:

* keep ``(line, col)`` for every key and value, for ``path:line:col`` diagnostics;
* resolve plain scalars by the YAML 1.2 core schema (``on``/``yes``/``no`` stay strings,
  ``1:30`` is not 90, ``010`` is 10, dates stay strings) as GitHub Actions users expect;
* refuse duplicate keys;
* stop an alias bomb or absurd nesting in microseconds (libyaml's own composer segfaults on
  deep nesting, and its scanner is quadratic in depth, so depth is checked as events arrive);
* run about six times faster than ``yaml.compose`` on big manifests.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from runner.errors import Diagnostic
from runner.model import as_text

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 2_000_000  # after alias expansion

Path_ = tuple[Any, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


def resolve_plain(text: str) -> Any:
    """A plain (unquoted) scalar by the YAML 1.2 core schema."""
    if not text:
        return None
    c = text[0]
    if c in "tTfF":
        b = _BOOL.get(text)
        if b is not None:
            return b
        return text
    if c in "~nN" and _NULL.match(text):
        return None
    if c in "0123456789+-.":
        if _INT10.match(text):
            return int(text)
        if _INT16.match(text):
            return int(text[2:], 16)
        if _INT8.match(text):
            return int(text[2:], 8)
        if _FLOAT.match(text) and any(ch.isdigit() for ch in text):
            return float(text)
        if _INF.match(text):
            return float("-inf") if text[0] == "-" else float("inf")
        if _NAN.match(text):
            return float("nan")
    return text


@dataclass
class Document:
    """One YAML document of a file, with where each part of it stands."""

    path: str  # repo-relative, as shown to users
    index: int  # 0-based position of the document in its file
    data: Any
    line: int  # 1-based line where the document starts
    pos: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # value positions
    keypos: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # mapping-key positions
    # mapping values written unquoted that YAML read as a number or yes/no whose text is not
    # what was written (``1e3`` is 1000.0, ``010`` is 10, ``True`` is true): path -> source
    retyped: dict[Path_, str] = field(default_factory=dict)

    def where(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """Best (line, col) for ``path``: the key if asked and known, else the nearest value."""
        if key and path in self.keypos:
            return self.keypos[path]
        p = tuple(path)
        while p:
            if p in self.pos:
                return self.pos[p]
            if p in self.keypos:
                return self.keypos[p]
            p = p[:-1]
        return self.pos.get((), (self.line, 1))


class _Frame:
    __slots__ = ("kind", "value", "path", "key", "keymark", "anchor", "nodes", "start")

    def __init__(self, kind: str, value: Any, path: Path_, anchor: str | None):
        self.kind = kind
        self.value = value
        self.path = path
        self.key: Any = _NOKEY
        self.keymark: tuple[int, int] = (0, 0)
        self.anchor = anchor
        self.nodes = 1
        self.start: tuple[int, int] = (0, 0)


_NOKEY = object()
_DROP = object()  # the key whose value is being skipped (a duplicate)


class YamlError(Exception):
    def __init__(self, line: int, col: int, message: str, hint: str = ""):
        super().__init__(message)
        self.line, self.col, self.message, self.hint = line, col, message, hint


def read_file(path: str | os.PathLike[str], display: str) -> tuple[str | None, Diagnostic | None]:
    """A manifest (or template) file's text, or the one clear reason it cannot be read.

    Reads only regular files and only ``MAX_BYTES + 1`` bytes (``fsutil.read_regular``).
    Raises FileNotFoundError and IsADirectoryError for the caller to decide about.
    """
    from runner.fsutil import NotRegularFile, read_regular

    try:
        raw, size = read_regular(path, MAX_BYTES)
    except (FileNotFoundError, IsADirectoryError):
        raise
    except NotRegularFile as e:
        return None, Diagnostic(
            display, 0, 0, "", str(e.strerror), "remove it, or list it in exclude:"
        )
    except OSError as e:
        return None, Diagnostic(display, 0, 0, "", f"cannot read: {e.strerror}")
    return decode(raw, display, size)


def decode(
    raw: bytes, display: str, size: int | None = None
) -> tuple[str | None, Diagnostic | None]:
    """Bytes -> text, or the one clear reason it is not a manifest we can read.

    ``size``: the whole file's size when ``raw`` is only its start (or nothing, for a file
    known to be too big).
    """
    if len(raw) > MAX_BYTES or (size or 0) > MAX_BYTES:
        size = max(size or 0, len(raw))
        return None, Diagnostic(
            display,
            0,
            0,
            "",
            f"file is {size / 1048576:.1f} MiB, over the {MAX_BYTES // 1048576} MiB limit for a manifest",
            "split it into several files",
        )
    if b"\x00" in raw[:8192] or b"\x00" in raw:
        return None, Diagnostic(
            display, 0, 0, "", "not a text file (contains NUL bytes)", "remove it or rename it"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        return None, Diagnostic(display, line, col, "", "not valid UTF-8", "save the file as UTF-8")
    return text, None


# in a double-quoted YAML string a backslash starts an escape (\n, \t...); a glob escape
# such as \[ is none of them
ESCAPE_HINT = (
    "in double quotes a backslash starts a YAML escape: use single quotes, as "
    "'in\\[1\\].txt', or double each backslash"
)


def load_text(text: str, display: str) -> tuple[list[Document], list[Diagnostic]]:
    """Parse every document in ``text``; on a YAML error, the documents before it and the error."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs: list[Document] = []
    dups: list[YamlError] = []
    try:
        _build(yaml, yaml.parse(text, Loader=loader_cls), display, docs, dups)
    except YamlError as e:
        dups.append(e)
        return docs, [_diag(display, d) for d in dups]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        what = e.problem or str(e)
        if e.context and e.problem:
            what = f"{e.context}: {e.problem}" if "while" not in e.context else e.problem
        hint = ESCAPE_HINT if "unknown escape" in what else ""
        return docs, [
            *(_diag(display, d) for d in dups),
            Diagnostic(display, line, col, "yaml", what, hint),
        ]
    except yaml.YAMLError as e:  # reader errors (control characters) carry no mark
        return docs, [
            *(_diag(display, d) for d in dups),
            Diagnostic(display, 0, 0, "yaml", str(e).splitlines()[0]),
        ]
    return docs, [_diag(display, d) for d in dups]


def _diag(display: str, e: YamlError) -> Diagnostic:
    return Diagnostic(display, e.line, e.col, "yaml", e.message, e.hint)


def _build(
    yaml: Any, events: Any, display: str, docs: list[Document], dups: list[YamlError]
) -> None:
    """Documents from libyaml's events into ``docs``. A duplicate key is noted in ``dups``
    and its later value dropped (the first one stands), so parsing goes on and every
    duplicate, and every other problem of the file, is reported in one go."""
    b = _Builder(display, docs, dups)
    on = {
        yaml.ScalarEvent: b.scalar,
        yaml.MappingStartEvent: b.start_map,
        yaml.SequenceStartEvent: b.start_seq,
        yaml.MappingEndEvent: b.end,
        yaml.SequenceEndEvent: b.end,
        yaml.AliasEvent: b.alias,
        yaml.DocumentStartEvent: b.doc_start,
        yaml.DocumentEndEvent: b.doc_end,
    }  # the stream's start and end say nothing
    for ev in events:
        handle = on.get(ev.__class__)
        if handle is not None:
            handle(ev)


class _Builder:
    """One file's documents, built event by event (``_build``): the stack of open
    collections, the anchors, each value's and key's position, the values retyped."""

    __slots__ = (
        "display", "docs", "dups", "stack", "anchors", "pos", "keypos", "retyped", "budget",
        "result", "doc_line",
    )  # fmt: skip

    def __init__(self, display: str, docs: list[Document], dups: list[YamlError]) -> None:
        self.display, self.docs, self.dups = display, docs, dups
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.pos: dict[Path_, tuple[int, int]] = {}
        self.keypos: dict[Path_, tuple[int, int]] = {}
        self.retyped: dict[Path_, str] = {}
        self.budget = 0  # values so far, aliases expanded (MAX_NODES)
        self.result: list[Any] = []
        self.doc_line = 1

    def attach(self, value: Any, mark: Any, nodes: int, anchor: str | None) -> None:
        """``value`` (of ``nodes`` values) into the open collection, or as the document."""
        self.budget += nodes
        if self.budget > MAX_NODES:
            raise YamlError(
                mark.line + 1,
                mark.column + 1,
                f"document expands to more than {MAX_NODES:,} values",
                "an alias bomb? use fewer aliases",
            )
        if anchor is not None:
            self.anchors[anchor] = (value, nodes)
        here = (mark.line + 1, mark.column + 1)
        stack = self.stack
        if not stack:
            self.pos[()] = here
            self.result.append(value)
            return
        top = stack[-1]
        top.nodes += nodes
        if top.kind == "seq":
            p = top.path + (len(top.value),)
            self.pos[p] = here
            top.value.append(value)
            return
        if top.key is _NOKEY:
            self.key(top, value, here)
            return
        if top.key is _DROP:  # the value of a duplicate key: the first one stands
            top.key = _NOKEY
            return
        p = top.path + (top.key,)
        self.keypos[p] = top.keymark
        self.pos[p] = here
        top.value[top.key] = value
        top.key = _NOKEY

    def key(self, top: _Frame, value: Any, here: tuple[int, int]) -> None:
        """``value`` as the key of the mapping ``top``'s next entry; a duplicate is noted
        and its value will be dropped."""
        if isinstance(value, (dict, list)):
            raise YamlError(here[0], here[1], "a mapping key must be a plain value")
        if value in top.value:
            first = self.keypos.get(top.path + (value,), (0, 0))
            self.dups.append(
                YamlError(
                    here[0],
                    here[1],
                    f"duplicate key '{value}'",
                    f"first defined at line {first[0]}",
                )
            )
            top.key = _DROP
            return
        top.key = value
        top.keymark = here

    def child_path(self) -> Path_:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.kind == "seq":
            return top.path + (len(top.value),)
        return top.path + (top.key,)

    def scalar(self, ev: Any) -> None:
        if not ev.style and ev.tag is None:
            value: Any = resolve_plain(ev.value)
            stack = self.stack
            if (
                value is not None
                and not isinstance(value, str)
                and stack
                and stack[-1].kind == "map"
                and stack[-1].key not in (_NOKEY, _DROP)
                and as_text(value) != ev.value
            ):
                self.retyped[self.child_path()] = ev.value
        elif ev.tag in (None, "!", "tag:yaml.org,2002:str"):
            value = ev.value
        else:
            value = _tagged(ev, YamlError)
        self.attach(value, ev.start_mark, 1, ev.anchor)

    def start_map(self, ev: Any) -> None:
        self.start(ev, True)

    def start_seq(self, ev: Any) -> None:
        self.start(ev, False)

    def start(self, ev: Any, is_map: bool) -> None:
        """A mapping or sequence opens: checked for depth, tag and place, then stacked."""
        stack = self.stack
        if len(stack) >= MAX_DEPTH:
            m = ev.start_mark
            raise YamlError(m.line + 1, m.column + 1, f"nested deeper than {MAX_DEPTH} levels")
        if ev.tag not in (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
            m = ev.start_mark
            raise YamlError(
                m.line + 1, m.column + 1, f"unsupported tag {ev.tag}", _tag_hint(ev.tag)
            )
        if stack and stack[-1].kind == "map" and stack[-1].key is _NOKEY:
            m = ev.start_mark
            raise YamlError(m.line + 1, m.column + 1, "a mapping key must be a plain value")
        frame = _Frame(
            "map" if is_map else "seq", {} if is_map else [], self.child_path(), ev.anchor
        )
        frame.start = (ev.start_mark.line + 1, ev.start_mark.column + 1)
        stack.append(frame)

    def end(self, ev: Any) -> None:
        frame = self.stack.pop()
        start = frame.start
        # attach() wants a mark; rebuild a tiny one from the saved start position
        self.attach(frame.value, _Mark(start[0] - 1, start[1] - 1), frame.nodes, frame.anchor)

    def alias(self, ev: Any) -> None:
        if ev.anchor not in self.anchors:
            m = ev.start_mark
            raise YamlError(m.line + 1, m.column + 1, f"unknown alias *{ev.anchor}")
        value, nodes = self.anchors[ev.anchor]
        self.attach(value, ev.start_mark, nodes, None)

    def doc_start(self, ev: Any) -> None:
        self.result.clear()
        self.pos = {}
        self.keypos = {}
        self.retyped = {}
        self.anchors.clear()
        self.doc_line = ev.start_mark.line + 1

    def doc_end(self, ev: Any) -> None:
        data = self.result[0] if self.result else None
        self.docs.append(
            Document(
                self.display,
                len(self.docs),
                data,
                self.doc_line,
                self.pos,
                self.keypos,
                self.retyped,
            )  # fmt: skip
        )


class _Mark:
    __slots__ = ("line", "column")

    def __init__(self, line: int, column: int):
        self.line, self.column = line, column


def _tagged(ev: Any, err: type[YamlError]) -> Any:
    """Explicit standard tags only (``!!str 1``, ``!!int "3"``); anything else is refused."""
    tag = ev.tag
    m = ev.start_mark
    try:
        if tag == "tag:yaml.org,2002:int":
            return int(ev.value, 0)
        if tag == "tag:yaml.org,2002:float":
            return float(ev.value)
        if tag == "tag:yaml.org,2002:bool":
            return _BOOL[ev.value]
        if tag == "tag:yaml.org,2002:null":
            return None
    except (ValueError, KeyError):
        raise err(m.line + 1, m.column + 1, f"{ev.value!r} is not a valid {tag}") from None
    raise err(m.line + 1, m.column + 1, f"unsupported tag {tag}", _tag_hint(tag, ev.value))


def _tag_hint(tag: str, value: str = "") -> str:
    """What to do about a tag orch does not take. A local tag (``!name``) is most often a
    ``!`` exclusion written unquoted (``- !src/gen/``), which YAML reads as a tag: say to
    quote it, as YAML requires of a plain scalar that starts with ``!``."""
    if tag.startswith("!") and not tag.startswith("!!"):
        text = f"{tag} {value}" if value else tag
        return f"quote it: '{text}'; unquoted, a leading ! starts a YAML tag"
    return "only standard YAML tags are allowed"
