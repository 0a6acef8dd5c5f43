"""Which commands run a word of their command line as code again: best-effort reads of
the command a template value lands in, for ``runner.shellquote``.

Quoting makes a value one literal word for the shell that reads the command; it cannot
help when the command then hands that word to another interpreter: ``sh -c WORD``,
``eval``, ``bash <<EOF``, ``x | sh``, ``[[ $x -eq WORD ]]``, ``declare WORD``... These
functions say so from the words before the value (split as sh would, as far as ``shlex``
can), so ``shellquote`` can refuse the value instead of running it.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish"})
_RESERVED = frozenset({"!", "{", "if", "then", "else", "elif", "do", "while", "until", "time"})
_WRAPPERS = frozenset({"command", "builtin", "exec"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_C_OPTION = re.compile(r"-[A-Za-z]*c[A-Za-z]*")


def code_again(prefix: str) -> str | None:
    """Why a value after ``prefix`` (the current simple command up to the value) would be
    read as shell code a second time, or None.

    Quoting makes a value one literal word for the shell that runs ``run``; these commands
    hand that word to a shell again: ``eval WORDS``, ``trap WORD``, and the command string
    of ``sh -c WORD`` (also bash, dash, zsh..., ``-lc``, ``-ec``, behind ``xargs``,
    ``sudo``, ``docker exec`` and the like). Arguments after the command string are
    ``$0``, ``$1``... of that shell and are safe.
    """
    words = _words(prefix)
    if words is None:
        return None
    done, _partial = words
    head = [w for w in done if not _ASSIGNMENT.match(w)]
    while head and head[0] in _RESERVED:
        head.pop(0)
    while head and head[0] in _WRAPPERS:
        head.pop(0)
    if head and head[0] == "eval":
        return (
            "a value given to eval would run as shell code; use the value directly,"
            " or pass it in an environment variable"
        )
    if len(head) == 1 and head[0] == "trap":
        return "a value as trap's command would run as shell code; put the command in the run"
    if "<<<" in done:  # bash <<< {{ x }}: the here-string is the shell's script
        k = done.index("<<<")
        if reads_script_from_stdin(" ".join(shlex.quote(w) for w in done[:k] + done[k + 2 :])):
            return (
                "a value in a here-string that a shell reads as its script would run as"
                " code; pass it in an environment variable"
            )
    at = next((k for k, w in enumerate(head) if w.rsplit("/", 1)[-1] in SHELLS), None)
    if at is not None and _command_string_next(head[at + 1 :]):
        return (
            f"a value inside the command string of '{head[at]} -c' would be parsed as"
            " shell code again; pass it as an argument instead: sh -c 'echo \"$1\"' sh {{ x }}"
        )
    runner = next((w for w in head if w.rsplit("/", 1)[-1] in _RUN_C), None)
    if runner and head[-1] != runner and (head[-1] == "--command" or _C_OPTION.fullmatch(head[-1])):
        return (
            f"a value as the command of '{runner} -c' would be parsed as shell code again;"
            " put the command in the run, and pass the value as its argument"
        )
    if any(w.rsplit("/", 1)[-1] == "watch" for w in head) and not {"-x", "--exec"} & set(head):
        return (
            "watch runs its arguments through sh -c, so a value there would be parsed as"
            " shell code again; use watch -x, or a loop"
        )
    return None


_RUN_C = frozenset({"su", "runuser", "flock", "script", "sg"})  # -c CMD runs CMD in a shell
_OPTARG = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})


def _command_string_next(rest: list[str]) -> bool:
    """Whether, after a shell's name, the words ``rest`` are options only, one of them
    ``-c`` (in any cluster: ``-ec``, ``-lc``): then the next word is the command string,
    also after ``--`` or more options (``sh -c -- CMD``, ``bash -c -e CMD``)."""
    seen_c = False
    k = 0
    while k < len(rest):
        w = rest[k]
        if w in _OPTARG:
            k += 2
            continue
        if not w.startswith(("-", "+")) or w in ("-", "+"):
            return False  # an operand: the command string (or a script) came already
        seen_c = seen_c or bool(_C_OPTION.fullmatch(w))
        k += 1
    return seen_c


_INERT = re.compile(r"[-+]?[A-Za-z0-9_]*")  # an integer or a plain name: nothing to expand
_ARITH_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_NAME_TESTS = frozenset({"-v", "-R"})
_DECLARE = frozenset({"declare", "typeset", "local", "readonly", "export"})
_NAMES = frozenset({"read", "mapfile", "readarray", "let"})
_READ_OPTARGS = frozenset({"-p", "-d", "-i", "-t", "-n", "-N", "-u", "-C", "-c", "-O", "-s"})
_SUBSCRIPT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[[^\]]*\Z")
_EVALUATED = (
    "bash evaluates this spot as a variable name or arithmetic, and runs any $( ) in an"
    " array subscript of the value; only an integer or a plain name can go there: compare"
    " or assign the value another way (case, [ = ], a plain assignment)"
)


def evaluated_again(prefix: str, after: str, value: str) -> str | None:
    """Why bash (also ksh and zsh; ``/bin/sh`` is bash on some systems) would evaluate a
    value at this spot a second time, or None. Quoting keeps a value one literal word, but
    bash then reads some words as a variable name or an arithmetic expression, and either
    may name an array element whose subscript it expands: ``a[$(touch pwned)]`` runs
    ``touch`` as an operand of ``[[ -eq ]]``, after ``[[ -v``/``test -v``, in ``let``,
    ``declare -i X=``, ``declare -n X=``, a ``declare NAME=`` name, ``printf -v``,
    ``read``/``mapfile`` names, an assignment's subscript ``a[...]=`` and ``$[ ]``.
    ``prefix`` is the simple command up to the value, ``after`` the rest of the line.
    (Source: the bash manual, "Shell Arithmetic" and "Arrays"; the pattern is known as
    arithmetic-expansion injection.)"""
    if _INERT.fullmatch(value):
        return None
    if prefix.rfind("$[") > prefix.rfind("]"):
        return _EVALUATED
    words = _words(prefix)
    if words is None:
        return None
    done, partial = words
    current = re.split(r"\s", prefix)[-1] if partial else ""
    head = [w for w in done if not _ASSIGNMENT.match(w)]
    while head and head[0] in _RESERVED | _WRAPPERS:
        head.pop(0)
    if not head:  # before the command word: a[{{ x }}]=... has an arithmetic subscript
        return _EVALUATED if _SUBSCRIPT.match(current) else None
    cmd, last = head[0], done[-1] if done else ""
    if last in ("<<<", "<", ">", ">>", "<>", ">|", "&>", "2>"):
        return None  # the word of a redirection: a file name or a here-string, text
    if "[[" in done and "]]" not in done[done.index("[[") :]:
        following = after.split()[:1]
        if last in _ARITH_TESTS | _NAME_TESTS or (following and following[0] in _ARITH_TESTS):
            return _EVALUATED
        return None
    if cmd in ("test", "[") and last in _NAME_TESTS:
        return _EVALUATED
    if cmd in ("printf", "wait") and last in ("-v", "-p"):
        return _EVALUATED
    if cmd in _NAMES:
        if cmd == "read" and last in _READ_OPTARGS:
            return None  # read -p PROMPT: text, not a name
        return _EVALUATED
    if cmd in _DECLARE:
        options = "".join(w[1:] for w in head[1:] if w.startswith(("-", "+")))
        if "=" not in current or "i" in options or "n" in options:
            return _EVALUATED
    return None


_STDIN = frozenset({"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})


def runs_as_script(prefix: str) -> bool:
    """Whether the command ``prefix`` (up to a ``<( )``) reads what follows as its
    script: ``sh <(...)``, ``bash -e <(...)``, ``sh < <(...)``, ``source <(...)``."""
    words = _words(prefix + " ")
    if words is None:
        return False
    head = _command_head(words[0])
    if not head:
        return False
    if head[0] in ("source", "."):
        return len(head) == 1
    if head[0].rsplit("/", 1)[-1] not in SHELLS:
        return False
    return all(w.startswith(("-", "+")) or w == "<" for w in head[1:])


def _command_head(words: list[str]) -> list[str]:
    head = [w for w in words if not _ASSIGNMENT.match(w)]
    while head and head[0].rsplit("/", 1)[-1] in ("env", "sudo", "nohup", *_WRAPPERS):
        head.pop(0)
    return head


def reads_script_from_stdin(command: str) -> bool:
    """Whether a simple command is a shell that reads its script from standard input:
    ``sh``, ``bash -s``, ``sudo dash -e``, ``source /dev/stdin``, not ``sh file.sh``,
    ``sh -c CMD`` or ``sh < f``."""
    words = _words(command + " ")
    if words is None:
        return False
    head = _command_head(words[0])
    if len(head) == 2 and head[0] in ("source", ".") and head[1] in _STDIN:
        return True
    if not head or head[0].rsplit("/", 1)[-1] not in SHELLS:
        return False
    for w in head[1:]:
        if w == "-":
            continue
        if not w.startswith(("-", "+")) or "<" in w or _C_OPTION.fullmatch(w):
            return False
    return True


def feeds_a_shell(prefix: str) -> bool:
    """Whether the command holding a here-document (``prefix``: up to its ``<<``) is a
    shell, which reads the document as a script: ``sh <<EOF``, ``ssh host bash -s <<EOF``."""
    words = _words(prefix)
    return words is not None and any(w.rsplit("/", 1)[-1] in SHELLS for w in words[0])


def _words(prefix: str) -> tuple[list[str], bool] | None:
    """The words before the current one, as the shell splits them (best effort), and
    whether the current word has begun; None if the text cannot be split."""
    for closing in ("", '"', "'"):
        try:
            lexer = shlex.shlex(prefix + closing, posix=True)
            lexer.whitespace_split = True
            lexer.commenters = ""
            words = list(lexer)
        except ValueError:
            continue
        partial = bool(closing) or (bool(prefix) and not prefix[-1].isspace())
        return (words[:-1] if partial and words else words), partial
    return None


def shell_command_string(argv: list[Any] | tuple[Any, ...]) -> int | None:
    """Index of the command string in an argv that starts a shell with ``-c``, else None.

    ``[sh, -c, CMD, ...]``, ``[/bin/bash, -euo, pipefail, -c, CMD]``, ``[bash, -lc, CMD]``,
    ``[env, X=1, zsh, -c, CMD]``: the shell parses CMD itself, so a value templated into it
    is shell code again, and orch does not quote list items (each is one argument).
    """
    words = [a if isinstance(a, str) else "" for a in argv]
    names = [w.rsplit("/", 1)[-1] for w in words]
    runner = next((k for k, n in enumerate(names) if n in _RUN_C), None)
    if runner is not None:  # [su, -c, CMD, user], [flock, FILE, -c, CMD]
        c = next(
            (k for k in range(runner + 1, len(words)) if words[k] in ("-c", "--command")), None
        )
        return c + 1 if c is not None and c + 1 < len(words) else None
    # the shell may come after any launcher: env, sudo, xargs, timeout 5, nice -n 1...
    i = next((k for k, n in enumerate(names) if n in SHELLS), len(words))
    if i >= len(words):
        return None
    i += 1
    command = False
    while i < len(words):
        w = words[i]
        if w == "--":  # the end of the options: the command string follows
            return i + 1 if command and i + 1 < len(words) else None
        if not w.startswith(("-", "+")) or w in ("-", "+"):
            return i if command else None
        if not w.startswith("--"):
            command = command or "c" in w[1:]
            if w[-1] in "oO":  # -o NAME, -O NAME take the next word
                i += 1
        i += 1
    return None
