"""The run-wide set of secret values, and the one way every sink hides them.

Masking is a property of the data, not of one sink: the values of every variable a step
declares under ``secrets:`` (in any workflow of the catalog, set in the environment) form
one ``Secrets`` set for the whole run, and every string orch prints, stores, puts in JSON,
JUnit or an MCP reply, or passes to an error message goes through it first. A secret is
also recognised in the forms tools commonly re-encode it into, so ``echo $TOK | base64``
does not leak it either (GitHub Actions masks the same forms):

    as is · each non-blank line of a multi-line secret · base64 (standard and URL-safe,
    at each of the three byte alignments inside a longer encoded text) · URL-encoded
    (``%20`` and ``+`` for space, ``/`` escaped or kept) · hex (lower and upper case) ·
    JSON-escaped (``/`` as ``\\/`` too) · each line of a long secret's base64 wrapped at
    76 or 64 columns and of its hex wrapped at 60 (``base64``, PEM, ``xxd -p``)

A leaf module (no imports of ours): the executor masks its byte stream with
``StreamMasker``, the store masks before it writes, clients mask their replies.

Secrets never enter a cache or a fingerprint as they are, nor as a plain hash (a short
secret falls to a dictionary of guesses): where orch must tell whether an environment
value changed, it keeps ``keyed_digest(repository_key(...), value)``, a BLAKE2b MAC under
a random per-repository key in ``.orch/fingerprint.key`` (created on first use, mode 0600,
never committed: ``.orch/.gitignore`` ignores it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPLACEMENT = "***"
MIN_ENCODED = 6  # a re-encoded form shorter than this is not masked: too many false hits


def encoded_forms(secret: str) -> set[bytes]:
    """Every byte string that stands for ``secret`` in output (see the module docstring)."""
    from urllib.parse import quote, quote_plus

    forms: set[bytes] = set()
    if not secret:
        return forms
    pieces = {secret, *(line for line in secret.splitlines() if line.strip())}
    for piece in pieces:
        raw = piece.encode("utf-8", "surrogateescape")
        forms.add(raw)
        encoded = {
            quote(piece, safe="").encode(),
            quote_plus(piece, safe="").encode(),
            quote(piece).encode(),  # quote()'s default keeps "/" (a URL path): AWS keys hold one
            quote_plus(piece, safe="/").encode(),
            raw.hex().encode(),
            raw.hex().upper().encode(),
            json.dumps(piece, ensure_ascii=False)[1:-1].encode("utf-8", "surrogateescape"),
            json.dumps(piece)[1:-1].encode(),
            json.dumps(piece)[1:-1].replace("/", "\\/").encode(),  # PHP, some JSON writers
            *_base64_cores(raw),
            *_wrapped(raw),
        }
        forms.update(f for f in encoded if f != raw and len(f) >= MIN_ENCODED)
    forms.discard(b"")
    return forms


_WRAP = {"base64": (76, 64), "hex": (60,)}  # coreutils base64 and PEM; xxd -p


def _wrapped(raw: bytes) -> set[bytes]:
    """The lines of ``raw`` encoded alone and wrapped as tools wrap them: base64 at 76
    columns (coreutils ``base64``) and 64 (PEM, ``openssl base64``), hex at 60 (``xxd
    -p``). A long secret comes out over several lines, none of which holds a whole form."""
    import base64

    lines: set[bytes] = set()
    for text, widths in (
        (base64.b64encode(raw), _WRAP["base64"]),
        (raw.hex().encode(), _WRAP["hex"]),
    ):
        for width in widths:
            if len(text) > width:
                lines.update(text[k : k + width] for k in range(0, len(text), width))
    return lines


def _base64_cores(raw: bytes) -> set[bytes]:
    """The base64 characters that depend on ``raw`` alone, for ``raw`` at byte offset
    0, 1 or 2 of a longer text (``user:TOKEN`` encoded whole still shows them)."""
    import base64

    cores: set[bytes] = set()
    n = len(raw)
    for k in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            text = enc(b"\0" * k + raw)
            start = -(-8 * k // 6)  # the first character with no bit of the prefix
            end = 8 * (k + n) // 6  # the last character with no bit of what follows
            cores.add(text[start:end])
            if k == 0:
                cores.add(text)  # the secret encoded alone, padding included
    return cores


class Secrets:
    """An immutable set of secret values; ``mask`` hides every form of every one.

    Construct from the values (``Secrets(["s3cr3t"])``) or from a catalog's declarations
    (``Secrets.declared(names, os.environ)``). An empty set masks nothing and costs a
    truth test.
    """

    def __init__(self, values: Iterable[str] = ()):
        self.values: tuple[str, ...] = tuple(sorted({v for v in values if v}))
        forms: set[bytes] = set()
        for v in self.values:
            forms |= encoded_forms(v)
        ordered = sorted(forms, key=len, reverse=True)  # the longest form at a spot wins
        self.forms: tuple[bytes, ...] = tuple(ordered)
        self._bytes = re.compile(b"|".join(re.escape(f) for f in ordered)) if ordered else None
        self._text = (
            re.compile("|".join(re.escape(f.decode("utf-8", "surrogateescape")) for f in ordered))
            if ordered
            else None
        )

    @classmethod
    def declared(cls, names: Iterable[str], environ: Mapping[str, str] | None = None) -> Secrets:
        """The values of the variables ``names`` that are set in ``environ`` (os.environ)."""
        env = os.environ if environ is None else environ
        return cls(env[n] for n in set(names) if env.get(n))

    def __bool__(self) -> bool:
        return self._text is not None

    def mask(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***``."""
        return self._text.sub(REPLACEMENT, text) if self._text is not None and text else text

    def mask_bytes(self, data: bytes) -> bytes:
        return self._bytes.sub(REPLACEMENT.encode(), data) if self._bytes is not None else data

    @property
    def overlap(self) -> int:
        """Bytes a reader of one part of a text (a page, a chunk) also reads on each side
        of it, so a secret the part's edge cuts is seen whole: the longest form, less one."""
        return max((len(f) for f in self.forms), default=1) - 1

    def mask_span(self, window: bytes, start: int, end: int) -> tuple[bytes, int]:
        """``window[start:end]`` masked as it reads inside the whole ``window``, and where
        that part ends once a secret its end cuts is taken whole: (masked bytes, end).

        For readers of a text in parts (the UI's log pages, a live tail): read ``overlap``
        bytes more on each side of the part into ``window``. A secret that starts in the
        part is replaced whole (the part grows to the secret's end); one that starts
        before is the previous part's, and its bytes here are left out. Parts cut this way
        and put back together read as the whole text masked at once (no secret shows as
        two unmasked halves, as it did when each part was masked alone)."""
        if self._bytes is None:
            return window[start:end], end
        out: list[bytes] = []
        pos = start
        for m in self._bytes.finditer(window):
            if m.end() <= start:
                continue
            if m.start() >= end:
                break
            if m.start() > pos:
                out.append(window[pos : m.start()])
            if m.start() >= start:
                out.append(REPLACEMENT.encode())
            pos = max(pos, m.end())
        if pos < end:
            out.append(window[pos:end])
        return b"".join(out), max(pos, end)

    def contains(self, text: str) -> bool:
        return self._text is not None and self._text.search(text) is not None

    def mask_any(self, value: object) -> object:
        """A JSON-like value (dicts, lists, strings) with every string masked, keys too."""
        if not self:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask_any(k): self.mask_any(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.mask_any(v) for v in value)
        return value


class StreamMasker:
    """Masks a byte stream that arrives in arbitrary chunks (a task's output pipe).

    Holds back the last ``len(longest form) - 1`` bytes of each chunk, so a secret split
    across two reads is still caught whole.
    """

    def __init__(self, secrets: Secrets | Iterable[str]):
        self.secrets = secrets if isinstance(secrets, Secrets) else Secrets(secrets)
        self._hold = max((len(f) for f in self.secrets.forms), default=1) - 1
        self._pattern = self.secrets._bytes
        self._pending = b""

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def mask(self, data: bytes) -> bytes:
        """``data`` with every secret replaced, for text that is complete."""
        return self.secrets.mask_bytes(data)

    def mask_text(self, text: str) -> str:
        return self.secrets.mask(text)

    def feed(self, chunk: bytes) -> bytes:
        """What of the stream so far can be released, masked."""
        out, self._pending = _release(self._pending + chunk, self._pattern, self._hold)
        return out

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self.mask(rest)


class TextStreamMasker:
    """``StreamMasker`` for a stream of text (a log file followed as it grows, read in
    text mode): what each ``feed`` returns is masked and never ends inside a secret."""

    def __init__(self, secrets: Secrets):
        self.secrets = secrets
        self._hold = secrets.overlap  # bytes: at least as many characters as a form has
        self._pending = ""

    def feed(self, chunk: str) -> str:
        """What of the text so far can be released, masked."""
        out, self._pending = _release(self._pending + chunk, self.secrets._text, self._hold)
        return out

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return self.secrets.mask(rest)


def _release(buf: Any, pattern: re.Pattern | None, hold: int) -> tuple[Any, Any]:
    """(what of ``buf`` can go out, masked; what is held back): the last ``hold``
    characters wait for the next chunk, unless a match starting before them ends there.
    A match starting before the cut is complete: the longest form fits after it."""
    if pattern is None:
        return buf, buf[:0]
    replacement = REPLACEMENT if isinstance(buf, str) else REPLACEMENT.encode()
    cut = len(buf) - hold
    out = []
    pos = 0
    for m in pattern.finditer(buf):
        if m.start() >= cut:
            break
        out += (buf[pos : m.start()], replacement)
        pos = m.end()
    if pos < cut:
        out.append(buf[pos:cut])
        pos = cut
    return buf[:0].join(out), buf[pos:]


NAMES_FILE = "cache/secret-names.json"
_NAMES_LIMIT = 1 << 20


def remembered_names(orch_dir: Path) -> set[str]:
    """The names of the variables declared under ``secrets:`` by the manifests of past
    applies (``remember_names``): a reader masks with them too, so a secret stays masked
    while the manifests do not load or after its declaration was removed. Names are not
    secret; a missing, foreign or broken file is no names."""
    from runner.fsutil import read_regular

    try:
        data, size = read_regular(orch_dir / NAMES_FILE, _NAMES_LIMIT)
        names = json.loads(data) if size <= _NAMES_LIMIT else None
    except (OSError, ValueError):
        return set()
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and n}


def remember_names(orch_dir: Path, names: Iterable[str]) -> None:
    """Add ``names`` to the remembered ones (a write failure only loses the memory)."""
    from runner.fsutil import atomic_write

    known = remembered_names(orch_dir)
    every = known | set(names)
    if every == known:
        return
    with contextlib.suppress(OSError):
        atomic_write(orch_dir / NAMES_FILE, json.dumps(sorted(every)))


KEY_FILE = "fingerprint.key"
_KEY_BYTES = 32
_keys: dict[Path, bytes] = {}


def repository_key(orch_dir: Path, create: bool = True) -> bytes | None:
    """The repository's random key for ``keyed_digest``; made on first use when
    ``create``, else None while there is none; where ``.orch/`` cannot be written, a key for
    this process only. Two processes creating it at once agree:
    the file appears whole through ``os.link`` (which never replaces), and both read it."""
    path = orch_dir / KEY_FILE
    if path in _keys:
        return _keys[path]
    from runner.fsutil import NotRegularFile, read_regular

    try:
        key = read_regular(path, _KEY_BYTES)[0]
    except NotRegularFile:  # a FIFO would block the read for ever: damaged, as below
        key = b""
    except FileNotFoundError:
        if not create:
            return None
        try:
            if not orch_dir.is_dir():  # only init and apply create .orch/, never a read
                raise NotADirectoryError(orch_dir)
            tmp = orch_dir / f".{KEY_FILE}.{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError:
            # a read-only or missing .orch/ (plan, status): a key for this process alone; nothing is
            # recorded under it, and steps that read env values cannot be shown unchanged
            _keys[path] = os.urandom(_KEY_BYTES)
            return _keys[path]
        try:
            os.write(fd, os.urandom(_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another orch was first: use its key
        finally:
            os.unlink(tmp)
        key = read_regular(path, _KEY_BYTES)[0]
    if len(key) != _KEY_BYTES:  # damaged: a new key only costs one re-run of env readers
        os.unlink(path)
        return repository_key(orch_dir, create)
    _keys[path] = key
    return key


def keyed_digest(key: bytes, text: str) -> str:
    """BLAKE2b in its keyed (MAC) mode, 16 bytes, hex: equal for equal ``text`` under one
    key, and useless to a dictionary attack without the key (RFC 7693, section 2.9)."""
    return hashlib.blake2b(
        text.encode("utf-8", "surrogateescape"), key=key, digest_size=16
    ).hexdigest()
