"""Every verb explains itself: help for every argument, an examples section, and examples
that the parser accepts as written."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys

import pytest


def _all_parsers() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """orch itself, every group (workflow, task...) and every verb."""
    from runner.cli.main import build_parser

    out = []

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        out.append((path, p))
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, (*path, name))

    walk(build_parser(), ())
    return out


def test_every_argument_has_help() -> None:
    missing = [
        f"orch {' '.join(path)}: {'/'.join(a.option_strings) or a.dest}"
        for path, p in _all_parsers()
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction)
        and (not a.help or a.help == argparse.SUPPRESS)
    ]
    assert missing == []
    # and every verb says what it does in the list of its group
    for _path, p in _all_parsers():
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in a._choices_actions}
                assert set(helps) == set(a.choices) and all(helps.values()), helps


@pytest.mark.parametrize(
    "path", [path for path, _ in _all_parsers()], ids=lambda p: " ".join(p) or "orch"
)
def test_every_verb_help_ends_with_examples(path: tuple[str, ...]) -> None:
    """Through the real entry point: ``orch VERB --help`` exits 0 and shows examples of
    that very verb."""
    p = subprocess.run(
        [sys.executable, "-m", "runner", *path, "--help"], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    head, sep, examples = p.stdout.partition("\nexamples:\n")
    assert sep, p.stdout
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    assert lines
    verb = " ".join(("orch", *path))
    assert any(line.startswith(verb) for line in lines), lines


def _example_commands() -> list[list[str]]:
    out = []
    for _path, p in _all_parsers():
        for line in (p.epilog or "").splitlines()[1:]:
            cmd = re.split(r"\s{2,}", line.strip())[0]  # the description column goes
            cmd = re.split(r" (?:\||>|&&) ", cmd)[0]  # and what the shell does after
            words = shlex.split(cmd)
            if words[:1] == ["orch"] and "VERB" not in words:
                out.append(words[1:])
    return out


@pytest.mark.parametrize("argv", _example_commands(), ids=" ".join)
def test_every_example_parses(argv: list[str]) -> None:
    """An example the parser would refuse teaches the wrong thing."""
    from runner.cli.main import build_parser, verb_parser

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    assert extra == []
    assert getattr(args, "target", None), argv
    assert verb_parser(parser, args) is not parser or not argv
