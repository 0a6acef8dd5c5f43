"""Local caches as data: JSON that can only ever become values, never run code.

Whoever can write ``.orch/`` must not get to run code in every later ``orch``: a pickle,
``marshal`` or ``shelve`` file there would be exactly that (``pickle.load`` calls whatever
the file names). So caches are JSON, and reading one can only build plain values and the
dataclasses its caller lists. Anything else -- a foreign, truncated, hand-edited or
older-format file, an unknown class, a field the class does not have -- reads as a miss
(``None``), and the caller rebuilds what it needs; a cache is never an error.

Encoding (compact, a JSON object only where JSON has no type of its own)::

    str int float bool None list     as themselves
    tuple                            {"~t": [...]}
    set, frozenset                   {"~s": [...]}
    dict with str keys               {...}   (keys starting with "~" take the next form)
    any other dict                   {"~d": [[key, value], ...]}  (a tuple key as a list)
    dataclass                        {"~c": "Name", "f": {field: value}}  (init fields only;
                                     one left at its default is left out; one declared
                                     tuple[...] is a plain list)
    pathlib path                     {"~p": "text"}

A class can leave out fields it derives from others (``derived``) and rebuild them on
read (``rebuild``), which keeps the file lean: ``Workflow.by_name`` repeats every step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any

MAGIC = "orch-cache"


class Codec:
    """JSON for values built from the listed dataclasses; ``loads`` never raises."""

    def __init__(
        self,
        classes: Iterable[type],
        derived: dict[type, tuple[str, ...]] | None = None,
        rebuild: dict[type, Callable[[dict[str, Any]], None]] | None = None,
    ) -> None:
        derived = derived or {}
        self._by_name = {c.__name__: c for c in classes}
        if self._by_name:  # the no-op witness codec has no classes: it skips this import
            import dataclasses
        self._fields: dict[type, tuple[str, ...]] = {}
        self._defaults: dict[str, dict[str, Any]] = {}
        for c in self._by_name.values():
            own = [f for f in dataclasses.fields(c) if f.init and f.name not in derived.get(c, ())]
            self._fields[c] = tuple(f.name for f in own)
            self._defaults[c.__name__] = {
                f.name: f.default for f in own if f.default is not dataclasses.MISSING
            }
        self._rebuild = {c.__name__: fn for c, fn in (rebuild or {}).items()}
        self._known = {
            c.__name__: frozenset(f.name for f in dataclasses.fields(c)) for c in self._fields
        }
        # fields declared ``tuple[...]`` travel as plain lists: the class says what they are,
        # which saves a tagged object per tuple (the bulk of a manifest cache)
        self._tuples = {
            c.__name__: frozenset(
                f.name for f in dataclasses.fields(c) if str(f.type).startswith("tuple[")
            )
            for c in self._fields
        }

    # -- writing
    def _enc(self, o: Any) -> Any:
        t = type(o)
        if t is str or t is int or t is float or t is bool or o is None:
            return o
        if t is list:
            return [self._enc(x) for x in o]
        if t is dict:
            if all(type(k) is str and not k.startswith("~") for k in o):
                return {k: self._enc(v) for k, v in o.items()}
            return {"~d": [[_enc_key(self._enc, k), self._enc(v)] for k, v in o.items()]}
        if t is tuple:
            return {"~t": [self._enc(x) for x in o]}
        names = self._fields.get(t)
        if names is not None:
            skip = self._defaults[t.__name__]
            tuples = self._tuples[t.__name__]
            fields = {}
            for n in names:  # a field left at its plain default is not written
                v = getattr(o, n)
                if n in skip and v == skip[n] and type(v) is type(skip[n]):
                    continue
                if n in tuples and type(v) is tuple:
                    fields[n] = [self._enc(x) for x in v]
                else:
                    fields[n] = self._enc(v)
            return {"~c": t.__name__, "f": fields}
        if t is set or t is frozenset:
            return {"~s": [self._enc(x) for x in o]}
        if isinstance(o, PurePath):
            return {"~p": str(o)}
        raise TypeError(f"cannot cache a {t.__name__}")

    def dumps(self, value: Any, stamp: Any = None) -> bytes:
        """``value`` as cache bytes; ``stamp`` (any encodable value) must match on read."""
        doc = [MAGIC, self._enc(stamp), self._enc(value)]
        # ASCII escapes keep file names that are not valid UTF-8 (lone surrogates) writable
        return json.dumps(doc, separators=(",", ":")).encode()

    # -- reading
    def _hook(self, d: dict[str, Any]) -> Any:
        if len(d) > 2:
            return d
        if "~t" in d:
            return tuple(d["~t"])
        if "~c" in d:
            return self._build(d["~c"], d["f"])
        if "~d" in d:
            return {_key(k): v for k, v in d["~d"]}
        if "~s" in d:
            return set(d["~s"])
        if "~p" in d:
            return Path(d["~p"])
        return d

    def _build(self, name: str, fields: dict[str, Any]) -> Any:
        """An instance made as pickle makes one, without calling ``__init__``: default
        factories are not called for fields the file gives, and frozen classes need no
        ``object.__setattr__`` per field. A field the class does not have is a miss."""
        cls = self._by_name[name]
        values = dict(self._defaults[name])
        values.update(fields)
        for n in self._tuples[name]:
            if type(values.get(n)) is list:
                values[n] = tuple(values[n])
        rebuild = self._rebuild.get(name)
        if rebuild is not None:
            rebuild(values)
        if not values.keys() <= self._known[name]:
            raise TypeError(f"{name} has no field {sorted(values.keys() - self._known[name])}")
        if len(values) != len(self._known[name]):
            raise TypeError(f"{name}: fields missing")
        obj = object.__new__(cls)
        obj.__dict__.update(values)
        return obj

    def loads(self, data: bytes, stamp: Any = None) -> Any | None:
        """The value, or None for anything that is not a cache this code wrote with ``stamp``."""
        try:
            doc = json.loads(data, object_hook=self._hook)
            if type(doc) is not list or len(doc) != 3 or doc[0] != MAGIC or doc[1] != stamp:
                return None
            return doc[2]
        except Exception:  # noqa: BLE001 - unknown class, wrong field, bad JSON: all a miss
            return None

    def read(self, path: Path, stamp: Any = None) -> Any | None:
        """``loads`` of a file; a missing or unreadable file is a miss too, and so is
        anything but a regular file up to ``READ_LIMIT`` bytes: a FIFO put in its place
        would block the read for ever, ``/dev/zero`` behind a link would never end."""
        from runner.fsutil import read_regular

        try:
            data, size = read_regular(path, READ_LIMIT)
        except OSError:  # NotRegularFile too
            return None
        if size > READ_LIMIT:
            return None
        return self.loads(data, stamp)


READ_LIMIT = 1 << 30  # bytes: far above any catalog's cache, far below a full memory


def _enc_key(enc: Callable[[Any], Any], k: Any) -> Any:
    """A dict key written: a tuple of plain values as a list (keys are tuples when not
    strings: ``(workflow, step)``), which ``_key`` turns back."""
    if type(k) is tuple and all(type(x) in (str, int, float, bool) or x is None for x in k):
        return list(k)
    return enc(k)


def _key(k: Any) -> Any:
    """A dict key read back: JSON has no tuples, and a key must be hashable."""
    return tuple(k) if type(k) is list else k
