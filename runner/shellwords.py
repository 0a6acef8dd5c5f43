"""The second line of defence for quoting: did each value land as literal text of one word?

``runner.shellquote`` escapes each value for the spot it finds it in. This module checks
the result independently, the way a reader would: it splits the final command into words
after quote removal (POSIX sh, "Token Recognition" and "Quote Removal"), marking which
characters came from an expansion (``$x``, ``${..}``, ``$(..)``, backquotes, ``$((..))``,
``$'..'``) rather than from literal text, and compares that with the same template
rendered with harmless sentinel words in place of the values::

    template  echo "{{ v }}" >> {{ f }}
    sentinels echo "orchA0Z" >> orchA1Z        -> words: echo | orchA0Z | > | > | orchA1Z
    final     echo "a\\$b" >> 'my file'        -> words: echo | a$b     | > | > | my file

Every sentinel must sit in literal text (or, for an integer, inside ``$(( ))``), and the
final command's words must be exactly the sentinel render's with each sentinel replaced
by its value. Anything else -- a value that became an expansion, ended a quote, split
into two words or vanished -- means the quoting went wrong, and the command is refused
rather than run. The decoder is deliberately simpler than a shell (no aliases, no ``case``
patterns inside ``$( )``); it is applied to both renders alike, so what it does not model
cancels out.
"""

from __future__ import annotations

import re

LIT_OPEN, LIT_CLOSE = "\x01", "\x02"  # around text that came from an expansion
ARITH_OPEN, ARITH_CLOSE = "\x03", "\x04"  # around the inside of $(( ))
_OPS = frozenset(";&|()<>\n")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]")
_INTEGER = re.compile(r"\s*[-+]?[0-9]+\s*")


class Undecodable(Exception):
    """The decoder could not follow the text (unbalanced quotes and the like)."""


def words(text: str) -> list[tuple[str, str]]:
    """Tokens of a command: ("w", word after quote removal), ("op", char) or
    ("doc", here-document body); expansions kept in marker brackets."""
    d = _Decoder(text)
    d.command(0, None)
    return d.tokens


class _Decoder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        self.pending: list[tuple[str, bool, bool]] = []  # here-docs: delimiter, quoted, strip

    # -- commands
    def command(self, i: int, end: str | None) -> int:
        """Decode from ``i`` until ``end`` (``)`` of ``$(``) at depth 0, or the text's end."""
        text, n = self.text, len(self.text)
        word: list[str] | None = None
        depth = 0
        while i < n:
            c = text[i]
            if c in " \t":
                word = self._flush(word)
                i += 1
            elif c == "#" and word is None:
                while i < n and text[i] != "\n":
                    i += 1
            elif c == ")" and end == ")" and depth == 0:
                self._flush(word)
                return i + 1
            elif c == "<" and text.startswith("<<<", i):  # a here-string: a word follows
                word = self._flush(word)
                self.tokens.append(("op", "<<<"))
                i += 3
            elif c == "<" and text.startswith("<<", i):
                word = self._flush(word)
                i = self._heredoc_operator(i)
            elif c in _OPS:
                word = self._flush(word)
                depth += (c == "(") - (c == ")")
                self.tokens.append(("op", c))
                i += 1
                if c == "\n":
                    i = self._bodies(i)
            else:
                word = word if word is not None else []
                i = self._word_part(i, word, quoted=False)
        if end is not None:
            raise Undecodable("unterminated $(")
        self._flush(word)
        return i

    def _flush(self, word: list[str] | None) -> None:
        if word is not None:
            self.tokens.append(("w", "".join(word)))
        return None

    def _word_part(self, i: int, word: list[str], quoted: bool) -> int:
        """One piece of a word at ``i``: appends its decoded text, returns the next index."""
        text, c = self.text, self.text[i]
        if c == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt != "\n":
                word.append(nxt)
            return i + 2
        if c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise Undecodable("unterminated '")
            word.append(text[i + 1 : j])
            return j + 1
        if c == '"':
            return self._double(i + 1, word)
        if c == "$" or c == "`":
            return self._expansion(i, word)
        word.append(c)
        return i + 1

    def _double(self, i: int, word: list[str]) -> int:
        text, n = self.text, len(self.text)
        while i < n:
            c = text[i]
            if c == '"':
                return i + 1
            if c == "\\" and text[i + 1 : i + 2] in ('"', "\\", "$", "`", "\n"):
                if text[i + 1] != "\n":
                    word.append(text[i + 1])
                i += 2
            elif c == "$" or c == "`":
                i = self._expansion(i, word)
            else:
                word.append(c)
                i += 1
        raise Undecodable('unterminated "')

    # -- expansions
    def _expansion(self, i: int, word: list[str]) -> int:
        text = self.text
        if text[i] == "`":
            j = i + 1
            while j < len(text) and text[j] != "`":
                j += 2 if text[j] == "\\" else 1
            if j >= len(text):
                raise Undecodable("unterminated `")
            inner = re.sub(r"\\([$`\\])", r"\1", text[i + 1 : j])
            word.append(LIT_OPEN + "`" + LIT_CLOSE)
            sub = _Decoder(inner)
            sub.command(0, None)
            self.tokens.extend(sub.tokens)
            return j + 1
        if text.startswith("$((", i):
            j, depth = i + 3, 0
            while j < len(text):
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    if depth == 0 and text.startswith("))", j):
                        word.append(ARITH_OPEN + text[i + 3 : j] + ARITH_CLOSE)
                        return j + 2
                    depth -= 1
                j += 1
            raise Undecodable("unterminated $((")
        if text.startswith("$(", i):
            word.append(LIT_OPEN + "$(" + LIT_CLOSE)
            return self.command(i + 2, ")")
        if text.startswith("${", i):
            j, depth = i + 2, 1
            while j < len(text) and depth:
                depth += (text[j] == "{") - (text[j] == "}")
                j += 1
            if depth:
                raise Undecodable("unterminated ${")
            word.append(LIT_OPEN + text[i:j] + LIT_CLOSE)
            return j
        if text.startswith("$'", i):
            j = i + 2
            while j < len(text) and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            word.append(LIT_OPEN + text[i : j + 1] + LIT_CLOSE)
            return j + 1
        m = _NAME.match(text, i + 1)
        if m:
            word.append(LIT_OPEN + "$" + m[0] + LIT_CLOSE)
            return m.end()
        word.append("$")
        return i + 1

    # -- here-documents
    def _heredoc_operator(self, i: int) -> int:
        text, n = self.text, len(self.text)
        j = i + 2
        strip = text.startswith("-", j)
        j += strip
        while j < n and text[j] in " \t":
            j += 1
        start = j
        while j < n and text[j] not in " \t" and text[j] not in _OPS:
            j += 1
        raw = text[start:j]
        quoted = any(q in raw for q in "'\"\\")
        delimiter = re.sub(r"\\(.)", r"\1", raw.replace("'", "").replace('"', ""))
        self.tokens.append(("op", "<<-" if strip else "<<"))
        self.tokens.append(("w", delimiter))
        self.pending.append((delimiter, quoted, strip))
        return j

    def _bodies(self, i: int) -> int:
        text, n = self.text, len(self.text)
        for delimiter, quoted, strip in self.pending:
            lines: list[str] = []
            while i < n:
                end = text.find("\n", i)
                end = n if end < 0 else end + 1
                line = text[i:end]
                i = end
                if (line.rstrip("\n").lstrip("\t") if strip else line.rstrip("\n")) == delimiter:
                    break
                lines.append(line.lstrip("\t") if strip else line)
            body = "".join(lines)
            self.tokens.append(("doc", body if quoted else self._expand_body(body)))
        self.pending = []
        return i

    def _expand_body(self, body: str) -> str:
        sub = _Decoder(body)
        out: list[str] = []
        i = 0
        while i < len(body):
            c = body[i]
            if c == "\\" and body[i + 1 : i + 2] in ("$", "`", "\\", "\n"):
                if body[i + 1] != "\n":
                    out.append(body[i + 1])
                i += 2
            elif c == "$" or c == "`":
                i = sub._expansion(i, out)
            else:
                out.append(c)
                i += 1
        self.tokens.extend(sub.tokens)
        return "".join(out)


def landed_literally(
    template_text: str, final: str, sentinels: list[str], values: list[str]
) -> str | None:
    """None if every value of ``final`` is literal text where its sentinel stands in
    ``template_text`` (the render with sentinels); else what went wrong, for the error."""
    try:
        expected_tokens = words(template_text)
        actual = words(final)
    except (Undecodable, IndexError) as exc:
        return f"the rendered command cannot be read back ({exc})"
    expected: list[tuple[str, str]] = []
    for kind, tok in expected_tokens:
        present = [(s, v) for s, v in zip(sentinels, values, strict=True) if s in tok]
        for s, v in present:  # judged on the sentinel render, before any value goes in
            if not _literal_at(tok, s, v):
                k = sentinels.index(s) + 1  # values are not shown: one may be a secret
                return f"value #{k} of the template is not literal text in the command"
        for s, v in present:
            tok = tok.replace(s, v)
        expected.append((kind, tok))
    if expected != actual:
        return "a value changed the command's words"
    return None


def _literal_at(tok: str, sentinel: str, value: str) -> bool:
    """Each occurrence of ``sentinel`` in ``tok`` is outside expansion brackets (or inside
    ``$(( ))`` with an integer value)."""
    start = 0
    while True:
        k = tok.find(sentinel, start)
        if k < 0:
            return True
        before = tok[:k]
        in_exp = before.count(LIT_OPEN) > before.count(LIT_CLOSE)
        in_arith = before.count(ARITH_OPEN) > before.count(ARITH_CLOSE)
        if in_exp or (in_arith and not _INTEGER.fullmatch(value)):
            return False
        start = k + len(sentinel)
