"""Bounds on what a template may compute: no number, text or list too big to be a value.

Jinja's sandbox stops templates from reaching Python internals, but not from asking for
a value that takes hours or gigabytes to build (``{{ 9**(9**9) }}``, ``{{ 'a' * 10**9 }}``,
``{{ 'x' | center(10**9) }}``). A manifest is repository content, reviewed like code but
run by every ``orch validate``, so each such value is refused *before* it is built, with
an error that says which limit it broke:

- numbers: an integer result is at most ``MAX_INT_BITS`` bits (about 1,200 digits);
- text and lists: at most ``MAX_SIZE`` characters or items, whether built by ``+``, ``*``,
  ``%``-formatting, ``str.format``, a string method (``ljust``, ``zfill``...) or a filter
  (``center``, ``indent``, ``wordwrap``, ``format``);
- ``range()``: at most 100,000 items (Jinja's sandbox), and all the loops of one rendering
  together at most ``MAX_ITERATIONS`` iterations (nested loops multiply).

The sandbox also keeps operators out of compile-time constant folding (Jinja does that
for every operator in ``intercepted_binops``), so ``orch validate`` never computes them.
Jinja is imported by the caller (``runner.templating``); this module only subclasses it.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

MAX_SIZE = 1 << 20  # characters of text or items of a list a template may build
MAX_INT_BITS = 4096  # bits of an integer a template may compute
MAX_ITERATIONS = 1_000_000  # loop iterations in one rendering, all loops together

_SIZED = (str, list, tuple, bytes)
_PERCENT_SPEC = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)(\{?)")
# string methods and filters whose integer arguments are sizes of the text (or lists) they
# return
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "batch", "slice"})
_ITERATIONS: ContextVar[list[int]] = ContextVar("orch_template_iterations")


class TooBig(Exception):
    """A template asked for a value over a limit (the message names it)."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


def _over(what: str, n: int) -> TooBig:
    return TooBig(f"{what} would be {n:,} long (templates build at most {MAX_SIZE:,})")


def check_size(value: Any, what: str) -> Any:
    """``value`` itself, if its size is within ``MAX_SIZE``; else TooBig."""
    if _size(value) > MAX_SIZE:
        raise _over(what, _size(value))
    return value


def _check_width(n: Any, what: str) -> None:
    if isinstance(n, int) and not isinstance(n, bool) and n > MAX_SIZE:
        raise _over(what, n)


def check_percent_format(fmt: str, what: str) -> None:
    """Refuse a %-format whose width or precision is over the limit, or given by ``*``."""
    for m in _PERCENT_SPEC.finditer(fmt):
        for g in m.groups():
            if g == "*":
                raise TooBig(f"{what}: a '*' width is not allowed in templates")
            if g:
                _check_width(int(g), what)


def check_brace_format(fmt: str, what: str) -> None:
    """The same for ``str.format`` fields (``{:>999999999}``, nested ``{:{w}}``)."""
    for m in _BRACE_SPEC.finditer(fmt):
        if m.group(2):
            raise TooBig(f"{what}: a width given by a nested field is not allowed in templates")
        for n in re.findall(r"\d+", m.group(1)):
            _check_width(int(n), what)


def binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left operator right`` before computing it if the result would be too big."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**" and ints and right > 0 and abs(left) > 1:
        bits = math.log2(abs(left)) * right
        if bits > MAX_INT_BITS:
            raise TooBig(
                f"{left} ** {right} would have about {bits:,.0f} bits "
                f"(templates compute integers of at most {MAX_INT_BITS:,} bits)"
            )
    elif operator == "*":
        if ints:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise TooBig(f"a product of more than {MAX_INT_BITS:,} bits")
        elif isinstance(right, int) and _size(left) * right > MAX_SIZE:
            raise _over("repeating", _size(left) * right)
        elif isinstance(left, int) and _size(right) * left > MAX_SIZE:
            raise _over("repeating", _size(right) * left)
    elif operator == "+" and _size(left) + _size(right) > MAX_SIZE:
        raise _over("joining", _size(left) + _size(right))
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, "%-formatting")


def _check_join(sep: str, items: Any, what: str) -> None:
    if isinstance(items, (list, tuple)):
        n = sum(len(x) for x in items if isinstance(x, str)) + len(sep) * len(items)
        if n > MAX_SIZE:
            raise _over(what, n)


def _check_replace(s: str, old: Any, new: Any, what: str) -> None:
    if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        n = len(s) + (s.count(old) if old else len(s) + 1) * (len(new) - len(old))
        if n > MAX_SIZE:
            raise _over(what, n)


def method_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a string method call that would build text over the limit."""
    method = getattr(obj, "__wrapped__", obj)  # Jinja wraps str.format for its sandbox
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(method, "__name__", "")
    if name in _WIDTH_METHODS:
        for a in (*args, *kwargs.values()):
            _check_width(a, f"str.{name}()")
        if name == "expandtabs":  # each tab may become the whole width
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int) and not isinstance(size, bool):
                n = len(owner) + owner.count("\t") * max(0, size - 1)
                if n > MAX_SIZE:
                    raise _over("str.expandtabs()", n)
    elif name in ("format", "format_map"):
        check_brace_format(owner, "str.format()")
    elif name == "join" and args:
        _check_join(owner, args[0], "str.join()")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], "str.replace()")


def bounded_filters(filters: dict[str, Any]) -> None:
    """Wrap the filters that can amplify text so that the size is checked first (in place)."""
    for name in (*_WIDTH_FILTERS, "format", "join", "replace"):
        if name in filters:
            filters[name] = _bounded_filter(name, filters[name])


def _bounded_filter(name: str, f: Any) -> Any:
    import functools

    @functools.wraps(f)  # keeps Jinja's pass_context/pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in (*args, *kwargs.values()) if not _is_jinja(a)]
        value = values[0] if values else None
        what = f"| {name}"
        if name in _WIDTH_FILTERS:
            for a in values[1:]:
                _check_width(a, what)
        elif name == "format" and isinstance(value, str):
            check_percent_format(value, what)
        elif name == "join" and len(values) >= 1:
            _check_join(
                values[1] if len(values) > 1 and isinstance(values[1], str) else "", value, what
            )
        elif name == "replace" and isinstance(value, str) and len(values) >= 3:
            _check_replace(value, values[1], values[2], what)
        return check_size(f(*args, **kwargs), what)

    return bounded


def _is_jinja(arg: Any) -> bool:
    """Jinja's own first argument of pass_environment/pass_eval_context filters."""
    from jinja2 import Environment
    from jinja2.nodes import EvalContext

    return isinstance(arg, (Environment, EvalContext))


def count_iterations() -> Any:
    """Start counting loop iterations for one rendering; pass the result to ``stop``."""
    return _ITERATIONS.set([0])


def stop_counting(token: Any) -> None:
    _ITERATIONS.reset(token)


def bounded_loop(iterable: Any) -> Iterator[Any]:
    """What every ``{% for %}`` iterates over: the items, counted against ``MAX_ITERATIONS``
    for the whole rendering (nested loops multiply)."""
    counter = _ITERATIONS.get(None)
    if counter is None:
        counter = [0]
    for item in iterable:
        counter[0] += 1
        if counter[0] > MAX_ITERATIONS:
            raise TooBig(f"loops ran more than {MAX_ITERATIONS:,} times in one template")
        yield item


LOOP_GLOBAL = "_orch_bounded_loop"
CONCAT_GLOBAL = "_orch_bounded_concat"
MAX_LIPSUM_WORDS = 100_000


def bounded_concat(*parts: Any) -> str:
    """``a ~ b ~ c``: the text of each part joined, as Jinja's ``str_join`` does, once
    their total length is known to be within ``MAX_SIZE`` (``~`` is no operator Jinja lets
    a sandbox intercept, so templates call this instead: ``bound_ast``)."""
    texts = [p if isinstance(p, str) else str(p) for p in parts]
    n = sum(len(t) for t in texts)
    if n > MAX_SIZE:
        raise _over("'~'", n)
    return "".join(texts)


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # noqa: A002
    """Jinja's ``lipsum()`` global, refused before it builds more than ``MAX_LIPSUM_WORDS``
    words (``lipsum(10**7)`` would run for minutes)."""
    from jinja2.utils import generate_lorem_ipsum

    words = int(n) * int(builtins.max(min, max))
    if words > MAX_LIPSUM_WORDS:
        raise TooBig(
            f"lipsum() would be {words:,} words (templates build at most {MAX_LIPSUM_WORDS:,})"
        )
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def bound_ast(ast: Any) -> Any:
    """Make every ``for`` loop of a parsed template iterate through ``bounded_loop``, and
    every ``~`` go through ``bounded_concat``."""
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    class Bound(NodeTransformer):
        def visit_For(self, node: Any) -> Any:
            node = self.generic_visit(node)
            line = node.iter.lineno
            node.iter = nodes.Call(
                nodes.Name(LOOP_GLOBAL, "load", lineno=line),
                [node.iter],
                [],
                None,
                None,
                lineno=line,
            )
            return node

        def visit_Concat(self, node: Any) -> Any:
            node = self.generic_visit(node)
            name = nodes.Name(CONCAT_GLOBAL, "load", lineno=node.lineno)
            return nodes.Call(name, list(node.nodes), [], None, None, lineno=node.lineno)

    return Bound().visit(ast)
