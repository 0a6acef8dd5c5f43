"""Quote template values for the spot of a shell command they land in, like sh reads it.

``runner.templating`` renders a ``run`` string with each value replaced by a placeholder;
this module then scans the text the way sh does and swaps each placeholder for its value
escaped for that spot::

    rendered: echo "wheel: <0>" && ls <1>/*.whl
    values:   <0> = a$b, <1> = my dir
    result:   echo "wheel: a\\$b" && ls 'my dir'/*.whl

Where a value cannot be escaped portably (right after an unescaped ``$`` or ``\\``,
where the shell would read the quoted value as a parameter name or an escaped quote;
inside ``${...}``, ``$'...'``, nested backquotes, a here-document delimiter; anything but
an integer inside ``$(( ))``; a value that would end a here-document) it raises
``QuoteRefused`` instead of guessing, and the caller reports that as a template error.

It is its own module because it is a different job from the Jinja sandbox: plain text in,
plain text out, no Jinja, so it can be read and tested on its own. Which commands run a
quoted value as code again (``sh -c``, ``eval``, ``| sh``) is read in ``runner.shellcode``.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass, field

from runner.shellcode import (
    code_again,
    evaluated_again,
    feeds_a_shell,
    reads_script_from_stdin,
    runs_as_script,
)


class QuoteRefused(Exception):
    """A value sits where no escaping is safe; the message says where and what to do instead."""

    def __init__(self, message: str, slot: int | None = None):
        super().__init__(message)
        self.message = message
        self.slot = slot  # which value was refused, where the refusal is about one


@dataclass
class Slots:
    """Values of one ``render_command`` call, kept out of the text until it is scanned.

    The random nonce means text that merely looks like a placeholder, in a value or in the
    template, is left as it is.
    """

    nonce: str = field(default_factory=lambda: secrets.token_hex(8))
    values: list[str] = field(default_factory=list)

    def add(self, value: str) -> str:
        self.values.append(value)
        return f"\x00{self.nonce}{len(self.values) - 1}\x00"


def placeholders_to(text: str, slots: Slots, words: list[str]) -> str:
    """``text`` with placeholder k replaced by ``words[k]`` as it is, unquoted."""
    return _PLACEHOLDER.sub(
        lambda m: words[int(m[2])] if m[1] == slots.nonce else m[0],
        text,
    )


def quote_values(text: str, slots: Slots) -> str:
    """``text`` with each placeholder of ``slots`` replaced by its value quoted for its spot."""
    return _ShellScan(text, slots).run()


# --------------------------------------------------------------------------- shell scan

_BARE = frozenset({"top", "sub", "bt", "param"})
_UNSAFE = frozenset({"param", "ansi"})
_WORD_BREAK = frozenset(" \t\n;&|()<>")
_PLACEHOLDER = re.compile(r"\x00([0-9a-f]{16})(\d+)\x00")
_INTEGER = re.compile(r"\s*[-+]?[0-9]+\s*")
_BLANKS = re.compile(r"[ \t]+")
_PLAIN_BARE = re.compile(r"[^\s;&|()<>\\'\"`$}#\x00]+")
_PLAIN_RUN = {
    "dq": re.compile(r'[^\\"`$\x00]+'),
    "sq": re.compile(r"[^'`\x00]+"),
    "ansi": re.compile(r"[^'`\\\x00]+"),
    "comment": re.compile(r"[^\n\x00]+"),
    "arith": re.compile(r"[^()$`\\\x00]+"),
}
_LITERAL = frozenset({"sq", "ansi", "comment"})
_AFTER_DOLLAR = (
    "a {{ }} right after an unescaped '$' would be expanded by the shell, not quoted;"
    " drop the '$' (orch writes {{ x }}, not ${{ x }}) or escape it as '\\$'"
)
_AFTER_BACKSLASH = (
    "a {{ }} right after an unescaped '\\' would undo the quoting of the value;"
    " drop the '\\' or double it"
)
_ESCAPE_DQ = re.compile(r'([\\$`"])')
_ESCAPE_EXPANDING = re.compile(r"([\\$`])")


@dataclass
class _Frame:
    kind: str  # top | sub ($( or ( ) | bt (`) | param (${) | arith ($(( or (( ) | dq | sq
    #            | ansi ($') | comment
    case_depth: int = 0
    parens: int = 0
    cmd_start: int = 0  # where the current simple command began (bare frames)
    pipeline: int = 0  # id of the pipeline being read (bare frames; 0: none yet)
    after_pipe: bool = False  # the current simple command follows a |
    procsub: str = ""  # "<" or ">" for a process substitution <( ) or >( ) (bash, zsh, ksh)
    outer: str = ""  # procsub "<": the command it is an argument of, up to it
    outer_pipeline: int = 0  # procsub ">": the pipeline whose output goes into it


@dataclass
class _Heredoc:
    delimiter: str
    strip_tabs: bool
    quoted: bool
    backquotes: int
    script: bool = False  # read by a shell as code: no value may go in
    pipelines: frozenset[int] = frozenset()  # the pipelines the body is input to


class _ShellScan:
    """Replaces value placeholders in a rendered command with values quoted for their spot.

    It follows the parts of the POSIX shell grammar that change how text is read: quotes,
    backslashes, ``$( )``/``( )``, backquotes, ``case`` patterns, comments and
    here-documents. Anything it does not model that holds a value is refused, not guessed.
    """

    def __init__(self, text: str, slots: Slots):
        self.text = text
        self.values = slots.values
        self.nonce = slots.nonce
        self.out: list[str] = []
        self.stack = [_Frame("top")]
        self.pending: list[_Heredoc] = []
        self.word_start = True
        self.nested_backquotes = False
        self.pipelines = 0  # ids handed out
        self.into_shell: set[int] = set()  # pipelines ending in a shell reading stdin
        self.value_pipelines: list[tuple[int, frozenset[int]]] = []  # (slot, pipelines)

    # -- escaping
    def _backquotes(self) -> int:
        return sum(1 for f in self.stack if f.kind == "bt")

    def _escape(self, value: str, kind: str, backquotes: int) -> str:
        if kind in _UNSAFE or any(f.kind in _UNSAFE for f in self.stack):
            raise QuoteRefused(
                "a value inside ${...} or $'...' cannot be quoted safely;"
                " move the {{ }} out of it (or use | raw)"
            )
        if kind == "arith":
            # sh expands and then evaluates $(( )); only a plain integer is inert there
            if not _INTEGER.fullmatch(value):
                raise QuoteRefused(
                    # the value itself is not shown: it may be a secret
                    "only an integer can go into $(( )), and this value is not one;"
                    " compute it outside"
                )
            text = value
        elif kind in _BARE:
            text = shlex.quote(value)
        elif kind == "dq":
            text = _ESCAPE_DQ.sub(r"\\\1", value)
        elif kind == "sq":
            text = value.replace("'", "'\\''")
        elif kind == "comment":
            text = value.replace("\n", " ")
        elif kind == "heredoc":
            text = _ESCAPE_EXPANDING.sub(r"\\\1", value)
        else:  # quoted here-document: the shell reads nothing in it
            text = value
        for _ in range(backquotes):
            text = _ESCAPE_EXPANDING.sub(r"\\\1", text)
        return text

    # -- scanning
    def run(self) -> str:
        text, n = self.text, len(self.text)
        i = 0
        while i < n:
            if text[i] == "\x00":
                m = _PLACEHOLDER.match(text, i)
                if m and m[1] == self.nonce:
                    value = self.values[int(m[2])]
                    top = self.stack[-1]
                    slot = int(m[2])
                    if top.kind not in _LITERAL and self.out and self.out[-1] == "$":
                        raise QuoteRefused(_AFTER_DOLLAR, slot)
                    if top.kind != "comment":
                        self._check_not_code_again(i, slot)
                        self._check_not_evaluated(i, m.end(), slot, value)
                        self.value_pipelines.append((slot, self._pipelines()))
                    try:
                        self.out.append(self._escape(value, top.kind, self._backquotes()))
                    except QuoteRefused as exc:
                        raise QuoteRefused(exc.message, slot) from None
                    self.word_start = False
                    i = m.end()
                    continue
            kind = self.stack[-1].kind
            plain = _PLAIN_RUN.get(kind, _PLAIN_BARE).match(text, i)
            if not plain and kind in _BARE:
                plain = _BLANKS.match(text, i)
                self.word_start = self.word_start or bool(plain)
            elif plain and kind in _BARE:
                self._word(plain[0], plain.end())
            if plain:  # fast path: a stretch with nothing the shell treats specially
                self.out.append(plain[0])
                i = plain.end()
                continue
            if kind == "comment":
                i = self._comment(i)
            elif kind in ("sq", "ansi"):
                i = self._single(i)
            elif kind == "dq":
                i = self._double(i)
            elif kind == "arith":
                i = self._arith(i)
            else:
                i = self._bare(i)
        if self.nested_backquotes:
            raise QuoteRefused(
                "values cannot be quoted safely in nested backquotes; use $(...) instead"
            )
        for f in self.stack:
            if f.kind in _BARE:
                self._command_ends(n, f, boundary=True)
        for slot, pipelines in self.value_pipelines:
            if pipelines & self.into_shell:
                raise QuoteRefused(
                    "a value in a pipeline that ends in a shell reading its script from the"
                    " pipe ('| sh') would run as code; pass it in an environment variable",
                    slot,
                )
        return "".join(self.out)

    # -- pipelines into a shell
    def _pipeline(self, frame: _Frame) -> int:
        if frame.pipeline == 0:
            self.pipelines += 1
            frame.pipeline = self.pipelines
        return frame.pipeline

    def _pipelines(self) -> frozenset[int]:
        """Every pipeline the text at this point is part of, the enclosing ``$( )`` ones too:
        what a command substitution prints is input to the command around it."""
        return frozenset(self._pipeline(f) for f in self.stack if f.kind in _BARE)

    def _command_ends(self, i: int, frame: _Frame, boundary: bool) -> None:
        """A simple command of ``frame`` ends at ``i``; ``boundary``: so does its pipeline."""
        if frame.after_pipe and reads_script_from_stdin(self.text[frame.cmd_start : i]):
            self.into_shell.add(self._pipeline(frame))
        frame.after_pipe = False
        if boundary:
            frame.pipeline = 0

    def _check_not_code_again(self, i: int, slot: int) -> None:
        """Refuse a value that a command of this line would parse as shell code again."""
        frame = next((f for f in reversed(self.stack) if f.kind in _BARE), self.stack[0])
        why = code_again(self.text[frame.cmd_start : i])
        if why:
            raise QuoteRefused(why, slot)
        if any(f.procsub == "<" and runs_as_script(f.outer) for f in self.stack):
            raise QuoteRefused(
                "a value in a process substitution that a shell reads as its script"
                " ('sh <(...)', 'source <(...)') would run as code; pass it in an"
                " environment variable",
                slot,
            )

    def _check_not_evaluated(self, i: int, end: int, slot: int, value: str) -> None:
        """Refuse a value that bash would evaluate as a name or arithmetic (see
        ``evaluated_again``) unless it is an integer or a plain name."""
        frame = next((f for f in reversed(self.stack) if f.kind in _BARE), self.stack[0])
        line_end = self.text.find("\n", end)
        after = self.text[end : line_end if line_end >= 0 else len(self.text)]
        why = evaluated_again(self.text[frame.cmd_start : i], after, value)
        if why:
            raise QuoteRefused(why, slot)

    def _escaped(self, i: int) -> int:
        """A backslash at ``i`` escapes the next character; before a value it is refused."""
        m = _PLACEHOLDER.match(self.text, i + 1)
        if m and m[1] == self.nonce:
            raise QuoteRefused(_AFTER_BACKSLASH, int(m[2]))
        return self._emit(i, 2)

    def _emit(self, i: int, count: int = 1) -> int:
        self.out.append(self.text[i : i + count])
        return i + count

    def _close_backquote(self, i: int) -> None:
        while self.stack[-1].kind != "bt":
            self.stack.pop()
        self._command_ends(i, self.stack[-1], boundary=True)
        self.stack.pop()

    def _comment(self, i: int) -> int:
        if self.text[i] == "\n":
            self.stack.pop()
            return self._newline(i)
        return self._emit(i)

    def _single(self, i: int) -> int:
        c = self.text[i]
        if c == "\\" and self.stack[-1].kind == "ansi":
            return self._emit(i, 2)
        if c == "'":
            self.stack.pop()
        elif c == "`" and self._backquotes():
            self._close_backquote(i)
        return self._emit(i)

    def _double(self, i: int) -> int:
        text, c = self.text, self.text[i]
        if c == "\\":
            return self._escaped(i)
        if c == '"':
            self.stack.pop()
        elif c == "`":
            if self._backquotes():
                self._close_backquote(i)
            else:
                self.stack.append(_Frame("bt", cmd_start=i + 1))
                self.word_start = True
        elif text.startswith("$((", i):
            self.stack.append(_Frame("arith"))
            return self._emit(i, 3)
        elif text.startswith("$(", i):
            self.stack.append(_Frame("sub", cmd_start=i + 2))
            self.word_start = True
            return self._emit(i, 2)
        elif text.startswith("${", i):
            self.stack.append(_Frame("param"))
            return self._emit(i, 2)
        return self._emit(i)

    def _arith(self, i: int) -> int:
        text, c, top = self.text, self.text[i], self.stack[-1]
        if c == "(":
            top.parens += 1
        elif c == ")":
            if top.parens == 0 and text.startswith("))", i):
                self.stack.pop()
                return self._emit(i, 2)
            top.parens -= 1
        elif c == "`":
            if self._backquotes():
                self._close_backquote(i)
            else:
                self.stack.append(_Frame("bt", cmd_start=i + 1))
                self.word_start = True
        elif text.startswith("$((", i):
            self.stack.append(_Frame("arith"))
            return self._emit(i, 3)
        elif text.startswith("$(", i):
            self.stack.append(_Frame("sub", cmd_start=i + 2))
            self.word_start = True
            return self._emit(i, 2)
        elif text.startswith("${", i):
            self.stack.append(_Frame("param"))
            return self._emit(i, 2)
        elif c == "\\":
            return self._escaped(i)
        return self._emit(i)

    def _bare(self, i: int) -> int:
        text, c, top = self.text, self.text[i], self.stack[-1]
        word_start, self.word_start = self.word_start, False
        if c == "\\":
            if text.startswith("`", i + 1) and self._backquotes():
                self.nested_backquotes = True
            return self._escaped(i)
        if c == "'":
            self.stack.append(_Frame("sq"))
        elif c == '"':
            self.stack.append(_Frame("dq"))
        elif c == "`":
            if self._backquotes():
                self._close_backquote(i)
            else:
                self.stack.append(_Frame("bt", cmd_start=i + 1))
                self.word_start = True
        elif text.startswith("$((", i) or (word_start and text.startswith("((", i)):
            self.stack.append(_Frame("arith"))
            return self._emit(i, 3 if c == "$" else 2)
        elif c == "$":
            nxt = text[i + 1 : i + 2]
            if nxt in ("(", "{", "'"):
                kind = {"(": "sub", "{": "param", "'": "ansi"}[nxt]
                self.stack.append(_Frame(kind, cmd_start=i + 2))
                self.word_start = nxt == "("
                return self._emit(i, 2)
        elif c == "(":
            frame = _Frame("sub", cmd_start=i + 1)
            if text[i - 1 : i] in ("<", ">") and text[i - 2 : i - 1] not in ("<", ">"):
                frame.procsub = text[i - 1]
                frame.outer = text[top.cmd_start : i - 1]
                frame.outer_pipeline = self._pipeline(top)
            self.stack.append(frame)
            self.word_start = True
        elif c == ")":
            if top.case_depth == 0 and top.kind == "sub":
                self._command_ends(i, top, boundary=True)
                if top.procsub == ">" and reads_script_from_stdin(text[top.cmd_start : i]):
                    self.into_shell.add(top.outer_pipeline)  # echo {{ x }} > >(sh)
                self.stack.pop()
            self.stack[-1].cmd_start = i + 1  # what follows ( ... ) or a case pattern
            self.word_start = True
        elif c == "}" and top.kind == "param":
            self.stack.pop()
        elif c == "#" and word_start:
            self.stack.append(_Frame("comment"))
        elif c == "<" and text.startswith("<<", i):
            return self._heredoc_operator(i)
        elif c == "\n":
            self.word_start = True
            self._command_ends(i, top, boundary=True)
            self.stack[-1].cmd_start = i + 1
            return self._newline(i)
        elif c in _WORD_BREAK:
            self.word_start = True
            if c == "|" and "|" not in (text[i - 1 : i], text[i + 1 : i + 2]):
                self._command_ends(i, top, boundary=False)  # a pipe: same pipeline
                top.after_pipe = True
            elif c in ";&|" and text[i - 1 : i] != c:
                self._command_ends(i, top, boundary=True)
            if c in ";&|":
                top.cmd_start = i + 1
        return self._emit(i)

    def _word(self, word: str, end: int) -> None:
        """Count ``case``/``esac`` so a pattern's ``)`` is not taken to close ``$(``."""
        if (
            self.word_start
            and word in ("case", "esac")
            and (end == len(self.text) or self.text[end] in _WORD_BREAK)
        ):
            top = self.stack[-1]
            top.case_depth = max(0, top.case_depth + (1 if word == "case" else -1))
        self.word_start = False

    def _heredoc_operator(self, i: int) -> int:
        text, n = self.text, len(self.text)
        if text.startswith("<<<", i):  # a here-string: an ordinary word follows
            self.word_start = True
            return self._emit(i, 3)
        j = i + 2
        strip_tabs = text.startswith("-", j)
        j += strip_tabs
        while j < n and text[j] in " \t":
            j += 1
        delimiter: list[str] = []
        quoted = False
        while j < n and text[j] not in _WORD_BREAK:
            c = text[j]
            if c in "'\"":
                end = text.find(c, j + 1)
                end = n if end < 0 else end
                delimiter.append(
                    text[j + 1 : end].replace("\\", "") if c == '"' else text[j + 1 : end]
                )
                quoted, j = True, end + 1
            elif c == "\\":
                delimiter.append(text[j + 1 : j + 2])
                quoted, j = True, j + 2
            else:
                delimiter.append(c)
                j += 1
        word = text[i:j]
        if "\x00" in word:
            raise QuoteRefused("a here-document delimiter cannot come from a template value")
        frame = next((f for f in reversed(self.stack) if f.kind in _BARE), self.stack[0])
        script = feeds_a_shell(text[frame.cmd_start : i])
        self.pending.append(
            _Heredoc(
                "".join(delimiter),
                strip_tabs,
                quoted,
                self._backquotes(),
                script,
                self._pipelines(),
            )
        )
        self.word_start = True
        return self._emit(i, j - i)

    def _newline(self, i: int) -> int:
        """After the line holding ``<<WORD``, read each pending here-document body."""
        i = self._emit(i)
        text, n = self.text, len(self.text)
        for doc in self.pending:
            kind = "heredoc-quoted" if doc.quoted else "heredoc"
            while i < n:
                end = text.find("\n", i)
                end = n if end < 0 else end + 1
                line = text[i:end]
                body = line.rstrip("\n")
                if "\x00" not in line:
                    self.out.append(line)
                    i = end
                    if (body.lstrip("\t") if doc.strip_tabs else body) == doc.delimiter:
                        break
                    continue
                if doc.script:
                    m = next(m for m in _PLACEHOLDER.finditer(line) if m[1] == self.nonce)
                    raise QuoteRefused(
                        "a value in a here-document that a shell reads as its script would"
                        " run as code; pass it in an environment variable instead",
                        int(m[2]),
                    )
                if not doc.quoted:
                    _check_before_values(line, self.nonce)
                for m in _PLACEHOLDER.finditer(line):
                    if m[1] == self.nonce:
                        self.value_pipelines.append((int(m[2]), doc.pipelines))
                filled = _PLACEHOLDER.sub(
                    lambda m, kind=kind, doc=doc: (
                        self._escape(self.values[int(m[2])], kind, doc.backquotes)
                        if m[1] == self.nonce
                        else m[0]
                    ),
                    line,
                )
                for physical in filled.rstrip("\n").split("\n"):
                    if (physical.lstrip("\t") if doc.strip_tabs else physical) == doc.delimiter:
                        raise QuoteRefused(
                            f"a value would end the here-document early (a line '{doc.delimiter}');"
                            " choose another delimiter"
                        )
                self.out.append(filled)
                i = end
        self.pending.clear()
        return i


def _check_before_values(line: str, nonce: str) -> None:
    """In an unquoted here-document ``\\`` and ``$`` act as in double quotes: refuse a value
    right after an unescaped one."""
    for m in _PLACEHOLDER.finditer(line):
        if m[1] != nonce:
            continue
        before = line[: m.start()]
        slashes = len(before) - len(before.rstrip("\\"))
        if slashes % 2:
            raise QuoteRefused(_AFTER_BACKSLASH, int(m[2]))
        if before.endswith("$"):
            ahead = before[:-1]
            if (len(ahead) - len(ahead.rstrip("\\"))) % 2 == 0:
                raise QuoteRefused(_AFTER_DOLLAR, int(m[2]))
