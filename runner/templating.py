"""Jinja templates for step fields: sandboxed, strict, and shell-safe by default.

Values flow between steps as text a step printed to ``$ORCH_OUTPUT``, so a value is data
from outside the manifest and must never become shell code. ``render_command`` therefore
quotes every ``{{ expr }}`` for the spot of the command it lands in, and only ``| raw``
(visible in review) opts out::

    run:    echo "wheel: {{ w }}" && ls {{ d }}/*.whl
    render: the expression outputs become placeholders, the text around them is scanned
            like sh does (quotes, $( ), backquotes, comments, here-documents), and each
            placeholder is replaced by its value escaped for that spot:
            echo "wheel: a\\$b" && ls 'my dir'/*.whl

Where a value cannot be escaped portably (inside ``${...}``, ``$'...'``, nested
backquotes, a here-document delimiter, anything but an integer inside ``$(( ))``, a
value that would end a here-document) rendering fails with a ``TemplateError`` instead
of guessing. Values are never rendered twice, so ``{{ 7*7 }}`` in a value stays literal.

Jinja is imported inside functions only, so ``orch --version`` never pays for it.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import shlex
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    """A template the user wrote cannot be parsed or rendered; ``lineno`` is 1-based in it."""

    def __init__(self, message: str, lineno: int | None = None):
        super().__init__(message)
        self.message = message
        self.lineno = lineno


def is_templated(source: str) -> bool:
    """Cheap test so plain strings skip Jinja entirely (and never import it)."""
    return "{{" in source or "{%" in source or "{#" in source


# --------------------------------------------------------------------------- values


class _Raw(str):
    """Marks a value the user let through unquoted with ``| raw``."""


def _format(value: Any) -> str:
    """Text for a value as YAML users expect it: ``true``/``false``, ``null`` as empty."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _raw_filter(value: Any) -> _Raw:
    return _Raw(_format(value))


@dataclass
class _Slots:
    """Values of one ``render_command`` call, kept out of the text until it is scanned."""

    nonce: str = field(default_factory=lambda: secrets.token_hex(8))
    values: list[str] = field(default_factory=list)

    def add(self, value: str) -> str:
        self.values.append(value)
        return f"\x00{self.nonce}{len(self.values) - 1}\x00"


_SLOTS: ContextVar[_Slots] = ContextVar("orch_template_slots")


def _finalize_text(value: Any) -> str:
    return _format(value)


def _finalize_shell(context: Any, value: Any) -> str:
    # Takes the context only so that Jinja calls it at render time: with a plain function
    # Jinja would finalize constant expressions once at compile time, outside any render.
    if isinstance(value, _Raw):
        return str(value)
    return _SLOTS.get().add(_format(value))


# --------------------------------------------------------------------------- environments


@functools.cache
def _env(shell: bool) -> Any:
    from jinja2 import StrictUndefined, pass_context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Environment(ImmutableSandboxedEnvironment):
        """Keys win over methods, so a param named ``items`` or ``keys`` is the param."""

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, Mapping) and attribute in obj:
                return obj[attribute]
            return super().getattr(obj, attribute)

    env = Environment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=pass_context(_finalize_shell) if shell else _finalize_text,
    )
    env.filters["raw"] = _raw_filter
    return env


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, shell: bool) -> Any:
    """The same command template is rendered for every run of every step: compile once."""
    return _env(shell).from_string(source)


@functools.lru_cache(maxsize=1024)
def _compiled_expression(expression: str) -> Any:
    return _env(False).compile_expression(expression, undefined_to_none=False)


def _template(source: str, shell: bool) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        return _compiled(source, shell)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None


def check_syntax(source: str) -> TemplateError | None:
    """Parse and compile without rendering, so validation finds every broken field at once."""
    if not is_templated(source):
        return None
    try:
        _template(source, False)
    except TemplateError as exc:
        return exc
    return None


# --------------------------------------------------------------------------- rendering


def _render(source: str, context: dict[str, Any], shell: bool) -> str:
    template = _template(source, shell)
    try:
        return template.render(context)
    except TemplateError:
        raise
    except Exception as exc:  # any failure inside a user's template is the user's to fix
        raise _runtime_error(exc, source, context) from None


def render_text(source: str, context: dict[str, Any]) -> str:
    """For env values, paths and params: values go in as they are."""
    if not is_templated(source):
        return source
    return _render(source, context, shell=False)


def render_argv(items: list[str], context: dict[str, Any]) -> list[str]:
    """For ``run`` given as a list: each item is one argv entry, so no shell and no quoting."""
    return [render_text(item, context) for item in items]


def render_command(source: str, context: dict[str, Any]) -> str:
    """For ``run`` as a shell string: each value is escaped for where it lands (see module doc)."""
    if not is_templated(source):
        return source
    slots = _Slots()
    token = _SLOTS.set(slots)
    try:
        text = _render(source, context, shell=True)
    finally:
        _SLOTS.reset(token)
    if not slots.values:
        return text
    return _ShellScan(text, slots).run()


_FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})
_ONE_EXPRESSION = re.compile(r"\A\s*\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|%\}|\{#).)*)\}\}\s*\Z", re.S)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)


def evaluate_when(source: str | bool, context: dict[str, Any]) -> bool:
    """A step's ``when``: one expression is judged by its value, anything else by its text.

    Strings ``false``, ``0``, ``no``, ``off`` and empty are false, in any case, because
    a step output or a YAML 1.2 param arrives as exactly such text.
    """
    if isinstance(source, bool):
        return source
    if not is_templated(source):
        return _truthy(source)
    match = _ONE_EXPRESSION.match(source)
    if match is None:
        return _truthy(render_text(source, context))
    from jinja2 import TemplateSyntaxError

    try:
        expression = _compiled_expression(match["expr"].strip())
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None
    try:
        return _truthy(expression(**context))
    except Exception as exc:
        raise _runtime_error(exc, source, context) from None


# --------------------------------------------------------------------------- errors


_UNDEFINED_NAME = re.compile(r"^'(?P<name>[^']+)' is undefined$")
_MISSING_MEMBER = re.compile(r"has no (?:attribute|element) '?(?P<name>.*?)'?$")


def _template_lineno(exc: BaseException) -> int | None:
    """Jinja rewrites tracebacks so frames of the template carry its own line numbers."""
    lineno = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _runtime_error(exc: Exception, source: str, context: Mapping[str, Any]) -> TemplateError:
    from jinja2 import UndefinedError
    from jinja2.exceptions import TemplateError as JinjaError

    lineno = _template_lineno(exc)
    if isinstance(exc, UndefinedError):
        message = _explain_undefined(str(exc), source, context) or str(exc)
    elif isinstance(exc, JinjaError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
    return TemplateError(message, lineno)


def _explain_undefined(message: str, source: str, context: Mapping[str, Any]) -> str | None:
    """Name the whole dotted path that is missing and what exists next to it.

    Jinja only says ``'dict object' has no attribute 'whl'``; walking the template's own
    references through the context finds which one that was, cheaply, on the error path only.
    """
    match = _UNDEFINED_NAME.match(message) or _MISSING_MEMBER.search(message)
    if match is None:
        return None
    missing = match["name"]
    try:
        chains = _reference_list(source)
    except TemplateError:
        return None
    env = _env(False)
    from jinja2 import Undefined

    for chain in chains:
        value: Any = context
        for depth, part in enumerate(chain):
            if isinstance(value, Mapping):
                known: list[str] | None = sorted(str(k) for k in value)
                found = value[part] if part in value else Undefined()
            else:
                known = None
                found = env.getattr(value, part)
            if isinstance(found, Undefined):
                if part != missing:
                    break
                path = ".".join(chain[: depth + 1])
                if known is None:
                    return f"'{path}' is undefined"
                listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
                return f"'{path}' is undefined (known: {listed or 'none'})"
            value = found
    return None


# --------------------------------------------------------------------------- references


def references(source: str) -> set[tuple[str, ...]]:
    """Attribute/item chains rooted at a free variable, for DAG edges and param checks.

    A dynamic part ends the chain (``steps[name].x`` gives ``("steps",)``); loop variables,
    ``set`` names, macro arguments and Jinja's own globals (``range``, ``dict``...) are not
    references.
    """
    if not is_templated(source):
        return set()
    return set(_reference_list(source))


@functools.lru_cache(maxsize=4096)
def _reference_list(source: str) -> tuple[tuple[str, ...], ...]:
    from jinja2 import TemplateSyntaxError

    env = _env(False)
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None
    found: list[tuple[str, ...]] = []
    _RefWalker(found, frozenset(env.globals)).visit(ast, set())
    return tuple(dict.fromkeys(found))


class _RefWalker:
    """Walks a Jinja AST in order, tracking which names the template binds itself."""

    def __init__(self, found: list[tuple[str, ...]], globals_: frozenset[str]):
        self.found = found
        self.globals = globals_

    def visit(self, node: Any, bound: set[str]) -> None:
        from jinja2 import nodes

        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            self._chain(node, bound)
        elif isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name not in bound and node.name not in self.globals:
                self.found.append((node.name,))
        elif isinstance(node, nodes.For):
            self.visit(node.iter, bound)
            inner = bound | _stored_names(node.target) | {"loop"}
            if node.test is not None:
                self.visit(node.test, inner)
            self._body(node.body, set(inner))
            self._body(node.else_, set(bound))
        elif isinstance(node, (nodes.Assign, nodes.AssignBlock)):
            if isinstance(node, nodes.Assign):
                self.visit(node.node, bound)
            else:
                self._body(node.body, set(bound))
            bound |= _stored_names(node.target)
        elif isinstance(node, (nodes.Macro, nodes.CallBlock)):
            for default in node.defaults:
                self.visit(default, bound)
            if isinstance(node, nodes.CallBlock):
                self.visit(node.call, bound)
            inner = bound | {a.name for a in node.args} | {"caller", "varargs", "kwargs"}
            self._body(node.body, inner)
            if isinstance(node, nodes.Macro):
                bound.add(node.name)
        elif isinstance(node, nodes.With):
            for value in node.values:
                self.visit(value, bound)
            inner = set(bound)
            for target in node.targets:
                inner |= _stored_names(target)
            self._body(node.body, inner)
        elif isinstance(node, (nodes.Import, nodes.FromImport)):
            self.visit(node.template, bound)
            if isinstance(node, nodes.Import):
                bound.add(node.target)
            else:
                bound.update(n if isinstance(n, str) else n[-1] for n in node.names)
        else:
            for child in node.iter_child_nodes():
                self.visit(child, bound)

    def _body(self, body: list[Any], bound: set[str]) -> None:
        for child in body:
            self.visit(child, bound)

    def _chain(self, node: Any, bound: set[str]) -> None:
        from jinja2 import nodes

        links = []
        base = node
        while isinstance(base, (nodes.Getattr, nodes.Getitem)):
            links.append(base)
            base = base.node
        links.reverse()
        for link in links:
            if isinstance(link, nodes.Getitem):
                self.visit(link.arg, bound)
        if not (isinstance(base, nodes.Name) and base.ctx == "load"):
            self.visit(base, bound)
            return
        if base.name in bound or base.name in self.globals:
            return
        chain = [base.name]
        for link in links:
            if isinstance(link, nodes.Getattr):
                chain.append(link.attr)
            elif isinstance(link.arg, nodes.Const) and isinstance(link.arg.value, str):
                chain.append(link.arg.value)
            else:
                break
        self.found.append(tuple(chain))


def _stored_names(target: Any) -> set[str]:
    from jinja2 import nodes

    return {n.name for n in target.find_all(nodes.Name)} | (
        {target.name} if isinstance(target, nodes.Name) else set()
    )


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
_ESCAPE_DQ = re.compile(r'([\\$`"])')
_ESCAPE_EXPANDING = re.compile(r"([\\$`])")


@dataclass
class _Frame:
    kind: str  # top | sub ($( or ( ) | bt (`) | param (${) | arith ($(( or (( ) | dq | sq
    #            | ansi ($') | comment
    case_depth: int = 0
    parens: int = 0


@dataclass
class _Heredoc:
    delimiter: str
    strip_tabs: bool
    quoted: bool
    backquotes: int


class _ShellScan:
    """Replaces value placeholders in a rendered command with values quoted for their spot.

    It follows the parts of the POSIX shell grammar that change how text is read: quotes,
    backslashes, ``$( )``/``( )``, backquotes, ``case`` patterns, comments and
    here-documents. Anything it does not model that holds a value is refused, not guessed.
    """

    def __init__(self, text: str, slots: _Slots):
        self.text = text
        self.values = slots.values
        self.nonce = slots.nonce
        self.out: list[str] = []
        self.stack = [_Frame("top")]
        self.pending: list[_Heredoc] = []
        self.word_start = True
        self.nested_backquotes = False

    # -- escaping
    def _backquotes(self) -> int:
        return sum(1 for f in self.stack if f.kind == "bt")

    def _escape(self, value: str, kind: str, backquotes: int) -> str:
        if kind in _UNSAFE or any(f.kind in _UNSAFE for f in self.stack):
            raise TemplateError(
                "a value inside ${...} or $'...' cannot be quoted safely;"
                " move the {{ }} out of it (or use | raw)"
            )
        if kind == "arith":
            # sh expands and then evaluates $(( )); only a plain integer is inert there
            if not _INTEGER.fullmatch(value):
                raise TemplateError(
                    f"only an integer can go into $(( )), not {value!r}; compute it outside"
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
                    self.out.append(self._escape(value, top.kind, self._backquotes()))
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
            raise TemplateError(
                "values cannot be quoted safely in nested backquotes; use $(...) instead"
            )
        return "".join(self.out)

    def _emit(self, i: int, count: int = 1) -> int:
        self.out.append(self.text[i : i + count])
        return i + count

    def _close_backquote(self) -> None:
        while self.stack[-1].kind != "bt":
            self.stack.pop()
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
            self._close_backquote()
        return self._emit(i)

    def _double(self, i: int) -> int:
        text, c = self.text, self.text[i]
        if c == "\\":
            return self._emit(i, 2)
        if c == '"':
            self.stack.pop()
        elif c == "`":
            if self._backquotes():
                self._close_backquote()
            else:
                self.stack.append(_Frame("bt"))
                self.word_start = True
        elif text.startswith("$((", i):
            self.stack.append(_Frame("arith"))
            return self._emit(i, 3)
        elif text.startswith("$(", i):
            self.stack.append(_Frame("sub"))
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
                self._close_backquote()
            else:
                self.stack.append(_Frame("bt"))
                self.word_start = True
        elif text.startswith("$((", i):
            self.stack.append(_Frame("arith"))
            return self._emit(i, 3)
        elif text.startswith("$(", i):
            self.stack.append(_Frame("sub"))
            self.word_start = True
            return self._emit(i, 2)
        elif text.startswith("${", i):
            self.stack.append(_Frame("param"))
            return self._emit(i, 2)
        elif c == "\\":
            return self._emit(i, 2)
        return self._emit(i)

    def _bare(self, i: int) -> int:
        text, c, top = self.text, self.text[i], self.stack[-1]
        word_start, self.word_start = self.word_start, False
        if c == "\\":
            if text.startswith("`", i + 1) and self._backquotes():
                self.nested_backquotes = True
            return self._emit(i, 2)
        if c == "'":
            self.stack.append(_Frame("sq"))
        elif c == '"':
            self.stack.append(_Frame("dq"))
        elif c == "`":
            if self._backquotes():
                self._close_backquote()
            else:
                self.stack.append(_Frame("bt"))
                self.word_start = True
        elif text.startswith("$((", i) or (word_start and text.startswith("((", i)):
            self.stack.append(_Frame("arith"))
            return self._emit(i, 3 if c == "$" else 2)
        elif c == "$":
            nxt = text[i + 1 : i + 2]
            if nxt in ("(", "{", "'"):
                self.stack.append(_Frame({"(": "sub", "{": "param", "'": "ansi"}[nxt]))
                self.word_start = nxt == "("
                return self._emit(i, 2)
        elif c == "(":
            self.stack.append(_Frame("sub"))
            self.word_start = True
        elif c == ")":
            if top.case_depth == 0 and top.kind == "sub":
                self.stack.pop()
            self.word_start = True
        elif c == "}" and top.kind == "param":
            self.stack.pop()
        elif c == "#" and word_start:
            self.stack.append(_Frame("comment"))
        elif c == "<" and text.startswith("<<", i):
            return self._heredoc_operator(i)
        elif c == "\n":
            self.word_start = True
            return self._newline(i)
        elif c in _WORD_BREAK:
            self.word_start = True
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
            raise TemplateError("a here-document delimiter cannot come from a template value")
        self.pending.append(_Heredoc("".join(delimiter), strip_tabs, quoted, self._backquotes()))
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
                        raise TemplateError(
                            f"a value would end the here-document early (a line '{doc.delimiter}');"
                            " choose another delimiter"
                        )
                self.out.append(filled)
                i = end
        self.pending.clear()
        return i
