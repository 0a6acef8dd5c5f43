"""The YAML layer: YAML 1.2 scalars, positions, duplicate keys and hard bounds."""

from __future__ import annotations

import time

import pytest

from runner.manifests.yamlsrc import MAX_BYTES, MAX_DEPTH, decode, load_text


def one(text: str):
    docs, diags = load_text(text, "f.yaml")
    assert not diags, diags
    return docs[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("on", "on"),
        ("yes", "yes"),
        ("no", "no"),
        ("off", "off"),
        ("1:30", "1:30"),
        ("010", 10),
        ("0o17", 15),
        ("0x1F", 31),
        ("2026-12-31", "2026-12-31"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("1.5e3", 1500.0),
        ("-7", -7),
        ('"42"', "42"),
    ],
)
def test_yaml_12_core_scalars(text: str, expected: object) -> None:
    assert one(f"v: {text}\n").data == {"v": expected}


def test_on_key_stays_a_string_as_github_actions_users_expect() -> None:
    assert list(one("on: {failure: []}\n").data) == ["on"]


def test_every_value_and_key_has_its_line_and_column() -> None:
    doc = one("a: 1\nlist:\n  - name: x\n    run: echo\n")
    assert doc.where(("list", 0, "run")) == (4, 10)
    assert doc.where(("list", 0, "run"), key=True) == (4, 5)
    assert doc.where(("list", 0, "missing")) == (3, 5)  # nearest known parent


def test_several_documents_keep_their_own_positions() -> None:
    docs, diags = load_text("a: 1\n---\nb: 2\n---\nc: [1, 2]\n", "f.yaml")
    assert not diags
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}, {"c": [1, 2]}]
    assert docs[2].where(("c", 1)) == (5, 8)


def test_duplicate_key_is_an_error_naming_both_lines() -> None:
    _docs, diags = load_text("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert [(d.line, d.what, d.hint) for d in diags] == [
        (3, "duplicate key 'a'", "first defined at line 1")
    ]


def test_python_tags_are_refused() -> None:
    _docs, diags = load_text("x: !!python/object/apply:os.system ['touch pwned']\n", "f.yaml")
    assert diags and "unsupported tag" in diags[0].what


def test_alias_bomb_is_an_error_in_milliseconds() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.process_time()
    _docs, diags = load_text("\n".join(lines) + "\n", "bomb.yaml")
    assert diags and "expands to more than" in diags[0].what
    assert time.process_time() - start < 1.0  # bounded work, not a timing claim about speed


def test_deep_flow_nesting_is_one_positioned_diagnostic() -> None:
    # Either our depth check or libyaml's own (newer PyYAML builds refuse deep flow nesting
    # in the scanner) may stop this first; the contract is one positioned YAML diagnostic,
    # never a RecursionError or a crash, whoever words it.
    _docs, diags = load_text("[" * 100_000 + "]" * 100_000, "deep.yaml")
    assert len(diags) == 1
    d = diags[0]
    assert (d.path, d.where, d.line) == ("deep.yaml", "yaml", 1)
    assert d.col > 1 and d.what


def test_deep_block_nesting_is_refused_at_our_depth_limit() -> None:
    text = "a:\n" + "".join("  " * i + "b:\n" for i in range(1, MAX_DEPTH + 10))
    _docs, diags = load_text(text, "deep.yaml")
    assert len(diags) == 1
    assert diags[0].where == "yaml" and diags[0].line == MAX_DEPTH + 1
    assert f"nested deeper than {MAX_DEPTH}" in diags[0].what


def test_oversize_binary_and_non_utf8_files_get_one_clear_line() -> None:
    _t, d = decode(b"a" * (MAX_BYTES + 1), "big.yaml")
    assert d is not None and "over the" in d.what
    _t, d = decode(b"\x00\x01binary", "bin.yaml")
    assert d is not None and "NUL" in d.what
    _t, d = decode(b"a: 1\nb: \xff\n", "latin.yaml")
    assert d is not None and (d.line, d.what) == (2, "not valid UTF-8")


def test_syntax_error_has_position() -> None:
    _docs, diags = load_text("a: [1, 2\nb: 3\n", "f.yaml")
    assert diags and diags[0].line >= 2 and diags[0].where == "yaml"


def test_every_duplicate_key_is_reported_and_the_first_value_stands() -> None:
    docs, diags = load_text("a: 1\nb: {x: 1, x: 2}\na: [3]\nc: 4\n", "f.yaml")
    assert [(d.line, d.what) for d in diags] == [
        (2, "duplicate key 'x'"),
        (3, "duplicate key 'a'"),
    ]
    assert docs[0].data == {"a": 1, "b": {"x": 1}, "c": 4}
