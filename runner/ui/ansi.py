"""Terminal colours in a task's log, as HTML: SGR escapes become ``<span>`` classes.

Only the Select Graphic Rendition codes of ECMA-48 (``ESC [ ... m``) are kept: bold,
dim, italic, underline, the 8 + 8 bright colours (as ``ansi-fg-N`` / ``ansi-bg-N``
classes, styled by ui.css) and the 256-colour and true-colour forms (as an inline
``rgb()`` built from integers only). Every other escape (cursor moves, titles, OSC
hyperlinks) is dropped. The text between escapes is escaped with markupsafe, so a log
line ``<script>`` stays text.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
# CSI sequences other than SGR, OSC strings (ended by BEL or ST), and lone ESC + one char
_OTHER = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z@`~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[^\[\]]")
_CUBE = (0, 95, 135, 175, 215, 255)
_UNKNOWN = 999_999_999  # any code no branch of _Style.apply knows
_ATTRS = {1: "ansi-bold", 2: "ansi-dim", 3: "ansi-italic", 4: "ansi-underline"}


def _rgb256(n: int) -> tuple[int, int, int] | None:
    """xterm's 256-colour palette entry ``n`` (16-255) as (r, g, b); None for 0-15."""
    if 16 <= n <= 231:
        n -= 16
        return _CUBE[n // 36], _CUBE[(n // 6) % 6], _CUBE[n % 6]
    if 232 <= n <= 255:
        v = 8 + (n - 232) * 10
        return v, v, v
    return None


class _Style:
    def __init__(self) -> None:
        self.attrs: set[str] = set()
        self.fg: str | None = None  # a class name or an rgb() value
        self.bg: str | None = None

    def apply(self, codes: list[int]) -> None:
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.__init__()  # type: ignore[misc]
            elif c in _ATTRS:
                self.attrs.add(_ATTRS[c])
            elif c in (22, 23, 24):
                self.attrs -= {"ansi-bold", "ansi-dim"} if c == 22 else {_ATTRS[c - 20]}
            elif 30 <= c <= 37 or 90 <= c <= 97:
                self.fg = f"ansi-fg-{c - 30 if c < 90 else c - 82}"
            elif 40 <= c <= 47 or 100 <= c <= 107:
                self.bg = f"ansi-bg-{c - 40 if c < 100 else c - 92}"
            elif c in (39, 49):
                setattr(self, "fg" if c == 39 else "bg", None)
            elif c in (38, 48):
                value, i = _extended(codes, i)
                setattr(self, "fg" if c == 38 else "bg", value)
            i += 1

    def open(self) -> str:
        classes = sorted(self.attrs)
        style = []
        for kind, v in (("fg", self.fg), ("bg", self.bg)):
            if v is None:
                continue
            if v.startswith("ansi-"):
                classes.append(v)
            else:
                style.append(f"{'color' if kind == 'fg' else 'background-color'}:{v}")
        if not classes and not style:
            return ""
        out = "<span"
        if classes:
            out += f' class="{" ".join(classes)}"'
        if style:
            out += f' style="{";".join(style)}"'
        return out + ">"


def _extended(codes: list[int], i: int) -> tuple[str | None, int]:
    """``38;5;N`` or ``38;2;R;G;B`` at ``codes[i]``: (a class or rgb() value, last index)."""
    if i + 2 < len(codes) and codes[i + 1] == 5:
        n = codes[i + 2]
        if n < 16:
            return f"ansi-fg-{n}" if codes[i] == 38 else f"ansi-bg-{n}", i + 2
        rgb = _rgb256(n)
        return (f"rgb({rgb[0]},{rgb[1]},{rgb[2]})" if rgb else None), i + 2
    if i + 4 < len(codes) and codes[i + 1] == 2:
        r, g, b = (min(max(v, 0), 255) for v in codes[i + 2 : i + 5])
        return f"rgb({r},{g},{b})", i + 4
    return None, len(codes)


def to_html(text: str) -> Markup:
    """``text`` with its SGR colours as spans and everything else escaped."""
    text = _OTHER.sub("", text)
    style = _Style()
    out: list[str] = []
    pos = 0
    opened = ""
    for m in _SGR.finditer(text):
        out.append(str(escape(text[pos : m.start()])))
        pos = m.end()
        # a code of 10+ digits means nothing (and int() refuses 4,300+): an unknown one
        codes = [int(c) if len(c) < 10 else _UNKNOWN for c in m.group(1).split(";") if c] or [0]
        style.apply(codes)
        if opened:
            out.append("</span>")
        opened = style.open()
        out.append(opened)
    out.append(str(escape(text[pos:])))
    if opened:
        out.append("</span>")
    return Markup("".join(out))
