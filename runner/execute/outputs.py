"""Parse the file a step wrote to ``$ORCH_OUTPUT`` into its output values.

The format is GitHub Actions' ``$GITHUB_OUTPUT``, which users already know::

    key=value                 one line, the value is everything after the first '='
    key<<DELIM                a multi-line value: every line up to a line that is
    line one                  exactly DELIM
    DELIM

or the whole file one JSON object (string values kept as they are, any other value
re-serialised with ``json.dumps``).

Step outputs flow into later steps' commands, so this parser is a trust boundary: a value
can never add or overwrite another key. Anything ambiguous is an error rather than a guess:
a key written twice (never last-wins), an unterminated heredoc, a line of neither form, a
NUL, a file over 1 MiB. A value is never parsed any further: ``$(rm -rf ~)``, ``{{ 7*7 }}``
and ``x=1`` inside a heredoc stay literal text.

Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped, for files written on
Windows). ``str.splitlines`` would also split on ``\\x0b``, ``\\x1c``, ``\\u2028`` and
friends, which would let a one-line value such as ``a=x\\u2028b=1`` smuggle in key ``b``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

MAX_BYTES = 1024 * 1024

KEY_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]*"
_LINE = re.compile(rf"({KEY_PATTERN})(=|<<)(.*)", re.DOTALL)
_KEY = re.compile(rf"{KEY_PATTERN}\Z")


class OutputError(ValueError):
    """The output file cannot be trusted as it is; the message names the line."""

    def __init__(self, message: str, line: int = 0):
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


def read_outputs(path: Path) -> dict[str, str]:
    """Parse the output file at ``path``; a missing file means no outputs.

    Reads at most one byte past the cap, so a step that writes gigabytes costs nothing,
    and only a regular file (``fsutil.read_regular``): a step that replaced the file with
    a FIFO or a link to ``/dev/zero`` fails, and never blocks or fills the runner's memory.
    """
    from runner.fsutil import NotRegularFile, read_regular

    try:
        data, _size = read_regular(path, MAX_BYTES)
    except FileNotFoundError:
        return {}
    except NotRegularFile:
        raise OutputError("not a regular file (a device, FIFO or socket)") from None
    except OSError as e:  # made unreadable by the step (chmod 000)
        raise OutputError(f"cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise OutputError(f"the file is larger than {MAX_BYTES} bytes (1 MiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise OutputError(f"not valid UTF-8 (byte {e.start})", line) from None
    return parse_outputs(text)


def parse_outputs(text: str) -> dict[str, str]:
    """The outputs in ``text``; raises OutputError naming the first problem."""
    if len(text) > MAX_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise OutputError(f"the file is larger than {MAX_BYTES} bytes (1 MiB)")
    if "\0" in text:
        raise OutputError("contains a NUL character", text.count("\n", 0, text.index("\0")) + 1)
    if text.lstrip().startswith("{"):
        return _parse_json(text)
    return _parse_lines(text)


def _parse_lines(text: str) -> dict[str, str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    found: dict[str, str] = {}
    first_line: dict[str, int] = {}
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise OutputError(
                f"expected key=value, key<<DELIMITER or a JSON object, got {_clip(line)!r}"
                " (keys match " + KEY_PATTERN + ")",
                lineno,
            )
        key, op, rest = m.groups()
        if op == "=":
            value = rest
        else:
            delimiter = rest
            if not delimiter.strip():
                raise OutputError(f"heredoc for {key!r} has an empty delimiter", lineno)
            body: list[str] = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise OutputError(
                    f"heredoc for {key!r} is never closed: no line is exactly {delimiter!r}",
                    lineno,
                )
            i += 1  # the delimiter line
            value = "\n".join(body)
        if key in found:
            raise OutputError(
                f"key {key!r} written twice (first on line {first_line[key]});"
                " a key may be written only once",
                lineno,
            )
        found[key] = value
        first_line[key] = lineno
    return found


def _parse_json(text: str) -> dict[str, str]:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {}
        for k, v in pairs:
            if k in obj:
                raise _DuplicateKey(k)
            obj[k] = v
        return obj

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise OutputError(f"not valid JSON: {e.msg} (column {e.colno})", e.lineno) from None
    except _DuplicateKey as e:
        raise OutputError(
            f"JSON key {e.key!r} written twice; a key may be written only once",
            _second_line(text, json.dumps(e.key)),
        ) from None
    except RecursionError:
        raise OutputError("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise OutputError("the JSON value is not an object", 1)
    found: dict[str, str] = {}
    for key, value in data.items():
        if not _KEY.match(key):
            raise OutputError(
                f"JSON key {_clip(key)!r} is not a valid key (keys match {KEY_PATTERN})"
            )
        if isinstance(value, str):
            found[key] = value
        else:
            try:
                found[key] = json.dumps(value)
            except (RecursionError, ValueError):
                raise OutputError(f"JSON value of {key!r} cannot be serialised") from None
    return found


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key
        super().__init__(key)


def _second_line(text: str, needle: str) -> int:
    """The line of the second ``needle`` in ``text``, or 0 (unknown) if it is spelt otherwise."""
    first = text.find(needle)
    second = text.find(needle, first + 1) if first >= 0 else -1
    return text.count("\n", 0, second) + 1 if second >= 0 else 0


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
