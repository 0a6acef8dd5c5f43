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

The scanning and escaping live in ``runner.shellquote``; where a value cannot be escaped
portably, rendering fails with a ``TemplateError`` instead of guessing. Values are never
rendered twice, so ``{{ 7*7 }}`` in a value stays literal.

Jinja is imported inside functions only, so ``orch --version`` never pays for it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from runner.shellquote import QuoteRefused, Slots, placeholders_to, quote_values


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
    """Text for a value as YAML users expect it: ``true``/``false``, ``null`` as empty.

    Always a plain ``str``: filters such as ``| e``, ``| safe`` and ``| tojson`` return
    ``markupsafe.Markup``, whose ``+`` HTML-escapes the other side, so the shell quotes
    added around it later would turn into ``&#39;`` and the value would run as code.
    """
    if isinstance(value, str):
        # plain text: a Flag's truth (or a Markup's escaping) stays inside expressions
        return value if type(value) is str else str.__str__(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _raw_filter(value: Any) -> _Raw:
    return _Raw(_format(value))


_SLOTS: ContextVar[Slots] = ContextVar("orch_template_slots")


_UNSLOT = "_orch_block_text"


def _unslot(value: Any) -> Any:
    """A ``{% set %}`` block's content in a ``run`` string: the text its values render
    to (their placeholders replaced), so comparing it compares text; printed later, it is
    one value, quoted once."""
    slots = _SLOTS.get(None)
    if slots is None or not isinstance(value, str) or "\x00" not in value:
        return value
    from runner.shellquote import placeholders_to

    return placeholders_to(value, slots, slots.values)


def _blocks_as_text(ast: Any) -> Any:
    """Run every ``{% set %}...{% endset %}`` block's content through ``_unslot`` before
    its own filters (``{% set v | upper %}``)."""
    from jinja2 import nodes

    for block in ast.find_all(nodes.AssignBlock):
        ours = nodes.Filter(None, _UNSLOT, [], [], None, None, lineno=block.lineno)
        if block.filter is None:
            block.filter = ours
            continue
        inner = block.filter
        while inner.node is not None:
            inner = inner.node
        inner.node = ours
    return ast


def _finalize_text(value: Any) -> str:
    return _format(value)


def _finalize_shell(context: Any, value: Any) -> str:
    # Takes the context only so that Jinja calls it at render time: with a plain function
    # Jinja would finalize constant expressions once at compile time, outside any render.
    if isinstance(value, _Raw):
        return str(value)
    slots = _SLOTS.get()
    text = _format(value)
    if "\x00" in text:
        # a macro's or a {% set %} block's output, holding its own values' placeholders:
        # they become its text, and the whole is one value, quoted once where it lands
        from runner.shellquote import placeholders_to

        text = placeholders_to(text, slots, slots.values)
    return slots.add(text)


# --------------------------------------------------------------------------- environments


@functools.cache
def _env(shell: bool) -> Any:
    from jinja2 import StrictUndefined, pass_context
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from runner import sandbox

    class Environment(ImmutableSandboxedEnvironment):
        """Keys win over methods, so a param named ``items`` or ``keys`` is the param.
        Values are bounded (``runner.sandbox``): operators are intercepted, so they are
        checked at render time and never folded as constants at compile time."""

        intercepted_binops = frozenset({"**", "*", "+", "%"})

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, Mapping) and attribute in obj:
                return obj[attribute]
            return super().getattr(obj, attribute)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            sandbox.binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            sandbox.method_call(__obj, args, kwargs)
            out = super().call(__context, __obj, *args, **kwargs)
            if type(out) is str and isinstance(getattr(__obj, "__self__", None), Flag):
                return _flagged(out)  # flag.strip(), flag.lower(): still a yes/no
            return out

    env = Environment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=pass_context(_finalize_shell) if shell else _finalize_text,
    )
    env.filters["raw"] = _raw_filter
    env.filters[_UNSLOT] = _unslot
    sandbox.bounded_filters(env.filters)
    for name, f in env.filters.items():
        env.filters[name] = _keeps_flag(f)
    env.globals[sandbox.LOOP_GLOBAL] = sandbox.bounded_loop
    env.globals[sandbox.CONCAT_GLOBAL] = sandbox.bounded_concat
    env.globals["lipsum"] = sandbox.bounded_lipsum
    return env


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, shell: bool) -> Any:
    """The same command template is rendered for every run of every step: compile once."""
    from runner.sandbox import bound_ast

    env = _env(shell)
    ast = bound_ast(env.parse(source))
    return env.from_string(_blocks_as_text(ast) if shell else ast)


@functools.lru_cache(maxsize=1024)
def _compiled_expression(expression: str) -> Any:
    """``Environment.compile_expression``, with the expression bounded as templates are
    (``sandbox.bound_ast``: a ``~`` in a ``when:`` builds no more than any other text)."""
    from jinja2 import TemplateSyntaxError, nodes
    from jinja2.environment import TemplateExpression
    from jinja2.parser import Parser

    from runner.sandbox import bound_ast

    env = _env(False)
    parser = Parser(env, expression, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    expr.set_environment(env)
    body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
    template = env.from_string(bound_ast(nodes.Template(body, lineno=1)))
    return TemplateExpression(template, False)


def _template(source: str, shell: bool) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        return _compiled(source, shell)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None
    except (RecursionError, MemoryError, SyntaxError):  # Jinja's parser and Python's compiler
        raise TemplateError(_TOO_DEEP) from None


def check_syntax(source: str) -> TemplateError | None:
    """Parse and compile without rendering, so validation finds every broken field at once."""
    if not is_templated(source):
        return None
    try:
        _template(source, False)
    except TemplateError as exc:
        return exc
    return None


def check_shell_spots(source: str) -> TemplateError | None:
    """See ``_shell_spots``; cached: every instance of a fan-out step has the same text."""
    if "{{" not in source:
        return None
    return _shell_spots(source)


@functools.lru_cache(maxsize=4096)
def _shell_spots(source: str) -> TemplateError | None:
    """Where a shell ``run`` puts a ``{{ }}`` that no quoting can make safe, found statically.

    Each ``{{ }}`` of the template (but ``| raw`` ones) becomes a placeholder for the
    integer ``0``, ``{% %}`` tags and comments are dropped, and the text is scanned as
    ``render_command`` does. Only refusals about one value's spot are reported (right after
    ``$`` or ``\\``, inside ``${...}`` or ``$'...'``), with that value's template line, so
    ``orch validate`` shows them before anything runs; rendering checks again with the real
    text, since ``{% if %}`` branches can put a ``$`` before a value too.
    """
    if "{{" not in source:
        return None
    from jinja2 import TemplateSyntaxError

    slots = Slots()
    parts: list[str] = []
    lines: list[int] = []
    expr: list[str] | None = None
    try:
        for lineno, kind, value in _env(False).lex(source):
            if kind == "data" and expr is None:
                parts.append(value)
            elif kind == "variable_begin":
                expr, start = [], lineno
            elif kind == "variable_end" and expr is not None:
                raw = expr[-2:] == ["|", "name:raw"]
                parts.append("0" if raw else slots.add("0"))
                if not raw:
                    lines.append(start)
                expr = None
            elif expr is not None and kind != "whitespace":
                expr.append(f"name:{value}" if kind == "name" else value)
    except TemplateSyntaxError:
        return None  # reported by check_syntax
    try:
        quote_values("".join(parts), slots)
    except QuoteRefused as exc:
        if exc.slot is not None:
            return TemplateError(exc.message, lines[exc.slot])
    return None


# --------------------------------------------------------------------------- rendering


_TOO_DEEP = "the template is nested too deeply (split it, or compute the value in a step)"


def _render(source: str, context: dict[str, Any], shell: bool) -> str:
    from runner.sandbox import MAX_SIZE, count_iterations, stop_counting

    template = _template(source, shell)
    token = count_iterations()
    try:
        out: list[str] = []
        size = 0
        for chunk in template.generate(text_truth(context)):  # the whole text is bounded too
            size += len(chunk)
            if size > MAX_SIZE:
                raise TemplateError(f"the rendered text is over {MAX_SIZE:,} characters")
            out.append(chunk)
        return "".join(out)
    except TemplateError:
        raise
    except Exception as exc:  # any failure inside a user's template is the user's to fix
        raise _runtime_error(exc, source, context) from None
    finally:
        stop_counting(token)


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
    slots = Slots()
    token = _SLOTS.set(slots)
    try:
        text = _render(source, context, shell=True)
    finally:
        _SLOTS.reset(token)
    if not slots.values:
        return text
    from runner.sandbox import MAX_SIZE

    if len(text) + sum(len(v) for v in slots.values) > MAX_SIZE:
        raise TemplateError(f"the rendered text is over {MAX_SIZE:,} characters")
    try:
        final = quote_values(text, slots)
    except QuoteRefused as exc:
        raise TemplateError(exc.message) from None
    _check_landed(text, final, slots)
    return final


def _check_landed(text: str, final: str, slots: Slots) -> None:
    """The second line of defence (``runner.shellwords``): each value must read back as
    literal text of the words where harmless sentinels stand in the same template."""
    from runner.shellwords import landed_literally

    sentinels = [f"orch{slots.nonce}v{k}z" for k in range(len(slots.values))]
    with_sentinels = placeholders_to(text, slots, sentinels)
    why = landed_literally(with_sentinels, final, sentinels, slots.values)
    if why:
        raise TemplateError(
            f"refusing to run a command whose quoting did not hold: {why}; please report"
            " this template (it is a bug in orch), or use | raw where you mean it"
        )


_FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})


class Flag(str):
    """Text from outside the manifest that reads as a yes/no (``false``, ``0``, ``no``,
    ``off``, ``true``...): still that text when printed or compared with text, but a
    boolean to ``not``, ``and``, ``or``, ``if`` and ``== true``/``== false``, by the same
    rule ``when:`` applies to text. Without it ``{{ not steps.a.outputs.flag }}`` with
    ``flag=false`` is ``not "false"``: false, so a condition and its negation both skip."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return self.strip().lower() not in _FALSE_WORDS

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return bool(self) is other
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


_FLAG_WORDS = _FALSE_WORDS | _TRUE_WORDS
_TEXT_ROOTS = ("params", "env", "steps")


def _flagged(value: Any) -> Any:
    if type(value) is str:
        return Flag(value) if value.strip().lower() in _FLAG_WORDS else value
    if isinstance(value, dict):
        return {k: _flagged(v) for k, v in value.items()}
    return value


def _keeps_flag(f: Any) -> Any:
    """A filter whose text result, from a yes/no value (a ``Flag``), is a yes/no too when
    its text is one: ``flag | trim``, ``flag | lower`` read as ``flag`` does, so ``not``
    of them is never false alongside them."""
    import functools

    @functools.wraps(f)  # keeps Jinja's pass_context/pass_environment marks
    def kept(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        if type(out) is str and any(isinstance(a, Flag) for a in args[:2]):
            return _flagged(out)
        return out

    return kept


_LAST_ENV: list[Any] = [None, None]  # (environment mapping, its flagged copy)


def text_truth(context: dict[str, Any]) -> dict[str, Any]:
    """``context`` with every yes/no text under params, env and steps made a ``Flag``.

    The environment is the one big mapping (every variable) and the same object for every
    step of an apply, which never changes it: its flagged copy is kept, so a render costs
    what its params and direct upstream outputs cost, not what the environment does."""
    out = dict(context)
    for root in _TEXT_ROOTS:
        if root not in out:
            continue
        value = out[root]
        if root == "env" and isinstance(value, dict):
            if _LAST_ENV[0] is not value or len(_LAST_ENV[1]) != len(value):
                _LAST_ENV[:] = [value, _flagged(value)]
            out[root] = _LAST_ENV[1]
        else:
            out[root] = _flagged(value)
    return out


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
    except (RecursionError, MemoryError, SyntaxError):
        raise TemplateError(_TOO_DEEP) from None
    try:
        return _truthy(expression(**text_truth(context)))
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

    from runner.sandbox import TooBig

    lineno = _template_lineno(exc)
    if isinstance(exc, TooBig):
        message = str(exc)
    elif isinstance(exc, (RecursionError, MemoryError)):
        message = _TOO_DEEP
    elif isinstance(exc, UndefinedError):
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
                if chain[0] == "env" and depth == 1:  # never list the environment's names
                    return f"'{path}' is not set in the environment (to allow that, read env.get('{part}', ''))"
                if known is None:
                    return f"'{path}' is undefined"
                listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
                return f"'{path}' is undefined (known: {listed or 'none'})"
            value = found
    return None


# --------------------------------------------------------------------------- canonical text


@functools.lru_cache(maxsize=4096)  # the instances of a fan-out step share their text
def canonical(source: str) -> str:
    """The template as the renderer sees it, for fingerprints: spacing inside ``{{ }}`` and
    ``{% %}``, comments and the quoting of string literals do not change what a command
    renders to, so they do not change this text either (DESIGN.md: the command after
    rendering is what counts). A template that does not parse is returned as it is."""
    if not is_templated(source):
        return source
    from jinja2 import TemplateSyntaxError

    try:
        tokens = list(_env(False).lexer.tokeniter(source, None))
    except TemplateSyntaxError:
        return source
    out: list[tuple[str, str]] = []
    for _line, kind, value in tokens:
        if kind == "whitespace" or kind.startswith(("comment", "linecomment")):
            continue
        if kind == "string":
            value = json.dumps(_literal(value))
        if kind == "data" and out and out[-1][0] == "data":  # text around a comment
            out[-1] = ("data", out[-1][1] + value)
        elif value or kind != "data":
            out.append((kind, value))
    return "\x1e".join(f"{kind}\x1f{value}" for kind, value in _attributes(out))


# names after which "[" opens a list, not a subscript
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "elif",
        "else",
        "for",
        "set",
        "with",
        "do",
        "import",
        "include",
        "extends",
        "from",
        "as",
        "print",
        "call",
        "filter",
        "macro",
        "block",
        "recursive",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
    ]
)
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def _attributes(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``x["k"]`` written as ``x.k``: Jinja looks a constant key up the same way both
    ways (``getattr`` falls back to the item, the subscript to the attribute), so they
    render the same. Not for a key that is a ``dict``, ``str`` or ``list`` attribute
    (``params["items"]`` is the param, ``params.items`` the method) nor one that is not a
    plain name. ``x.get("k")`` stays apart: it renders a missing key as empty (or its
    default) where ``x.k`` is an error."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if (
            value == "["
            and out
            and (out[-1][1] in (")", "]") or (out[-1][0] == "name" and out[-1][1] not in _KEYWORDS))
            and i + 2 < len(tokens)
            and tokens[i + 1][0] == "string"
            and tokens[i + 2][1] == "]"
        ):
            key = json.loads(tokens[i + 1][1])
            if _IDENT.match(key) and not any(hasattr(t, key) for t in (dict, str, list)):
                out += [("operator", "."), ("name", key)]
                i += 3
                continue
        out.append((kind, value))
        i += 1
    return out


def _literal(text: str) -> str:
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text


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
    found: list[tuple[str, ...]] = []
    try:
        ast = env.parse(source)
        _RefWalker(found, frozenset(env.globals)).visit(ast, set())
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None
    except (RecursionError, MemoryError):
        raise TemplateError(_TOO_DEEP) from None
    return tuple(dict.fromkeys(found))


class _RefWalker:
    """Walks a Jinja AST in order, tracking which names the template binds itself."""

    def __init__(self, found: list[tuple[str, ...]], globals_: frozenset[str]):
        self.found = found
        self.globals = globals_

    def visit(self, node: Any, bound: set[str]) -> None:
        from jinja2 import nodes

        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            self._method_call(node, bound)
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
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

    def _method_call(self, node: Any, bound: set[str]) -> None:
        """``x.get('k', d)`` reads ``x.k``; any other method (``items()``, ``get(name)``
        with a computed name) reads all of ``x``: the chain ends before the method, so a
        caller fingerprinting what a template reads fails closed."""
        from jinja2 import nodes

        for child in (*node.args, *node.kwargs):
            self.visit(child, bound)
        for extra in (node.dyn_args, node.dyn_kwargs):
            if extra is not None:
                self.visit(extra, bound)
        method = node.node
        key = node.args[0] if node.args else None
        start = len(self.found)
        self.visit(method.node, bound)
        if len(self.found) == start + 1 and isinstance(
            method.node, (nodes.Name, nodes.Getattr, nodes.Getitem)
        ):
            chain = self.found[-1]
            if method.attr == "get" and isinstance(key, nodes.Const) and isinstance(key.value, str):
                self.found[-1] = (*chain, key.value)

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
