"""$ORCH_OUTPUT parsing: the formats users know, and hostile files that must not work."""

from __future__ import annotations

import json

import pytest

from runner.execute.outputs import MAX_BYTES, OutputError, parse_outputs, read_outputs


def error_of(text: str) -> OutputError:
    with pytest.raises(OutputError) as info:
        parse_outputs(text)
    return info.value


def test_key_value_lines() -> None:
    text = "wheel=dist/a-1.0.whl\nempty=\nurl=http://x/?a=1&b=2\n\nver.sion-2_x=3\n"
    assert parse_outputs(text) == {
        "wheel": "dist/a-1.0.whl",
        "empty": "",
        "url": "http://x/?a=1&b=2",
        "ver.sion-2_x": "3",
    }


def test_empty_and_blank_files_have_no_outputs() -> None:
    assert parse_outputs("") == {}
    assert parse_outputs("\n  \n\t\n") == {}


def test_crlf_line_endings() -> None:
    assert parse_outputs("a=1\r\nb<<EOF\r\nx\r\ny\r\nEOF\r\n") == {"a": "1", "b": "x\ny"}


def test_heredoc_keeps_lines_blank_lines_and_spaces() -> None:
    text = "notes<<EOF\nfirst line\n\n  indented\nEOF\nafter=1\n"
    assert parse_outputs(text) == {"notes": "first line\n\n  indented", "after": "1"}


def test_empty_heredoc_is_an_empty_value() -> None:
    assert parse_outputs("a<<END\nEND\n") == {"a": ""}


def test_heredoc_delimiter_must_be_the_whole_line() -> None:
    text = "a<<EOF\nEOF is not alone here\n EOF\nEOF\n"
    assert parse_outputs(text) == {"a": "EOF is not alone here\n EOF"}


def test_value_keeps_later_equals_and_heredoc_markers() -> None:
    assert parse_outputs("a=b=c\nd=e<<F\n") == {"a": "b=c", "d": "e<<F"}


def test_json_object() -> None:
    text = json.dumps({"s": "text", "n": 3, "f": 1.5, "b": True, "z": None, "l": [1, "x"]})
    assert parse_outputs("  \n" + text + "\n") == {
        "s": "text",
        "n": "3",
        "f": "1.5",
        "b": "true",
        "z": "null",
        "l": '[1, "x"]',
    }


# --- hostile input: a value can never add or overwrite another key -----------------


@pytest.mark.parametrize(
    "text, line",
    [
        ("a=1\nb=2\na=3\n", 3),
        ("a=1\na<<EOF\nx\nEOF\n", 2),
        ("a<<EOF\nx\nEOF\na=2\n", 4),
    ],
)
def test_a_key_written_twice_is_an_error_not_last_wins(text: str, line: int) -> None:
    err = error_of(text)
    assert err.line == line
    assert "'a'" in str(err) and str(err).startswith(f"line {line}:")


def test_json_duplicate_key_is_an_error() -> None:
    err = error_of('{"a": "1",\n "a": "2"}')
    assert "'a'" in str(err)
    assert err.line == 2


def test_unterminated_heredoc_is_an_error() -> None:
    err = error_of("ok=1\nkey<<EOF\nx\ny=2\n")
    assert err.line == 2
    assert "EOF" in str(err)


def test_heredoc_swallows_lookalike_lines_as_literal_text() -> None:
    text = "body<<EOF\nx\ny=1\nz<<EOF2\nEOF\n"
    assert parse_outputs(text) == {"body": "x\ny=1\nz<<EOF2"}


def test_heredoc_with_empty_delimiter_is_an_error() -> None:
    assert error_of("a<<\nx\n\n").line == 1
    assert error_of("a<<   \nx\n   \n").line == 1


@pytest.mark.parametrize(
    "line",
    [
        "just some text",
        "1abc=2",
        "-a=1",
        "a b=1",
        " a=1",
        "a =1",
        "ä=1",
        "=value",
        "a<EOF",
        "[1, 2]",
        "$(touch pwned)=1",
        "{{ 7*7 }}=49",
    ],
)
def test_a_line_of_neither_form_is_an_error(line: str) -> None:
    err = error_of(f"ok=1\n{line}\n")
    assert err.line == 2


def test_values_are_never_evaluated() -> None:
    text = "cmd=$(rm -rf ~)\ntpl={{ 7*7 }}\nbq=`id`\nvar=${HOME}\nq=\"'\\n\n"
    assert parse_outputs(text) == {
        "cmd": "$(rm -rf ~)",
        "tpl": "{{ 7*7 }}",
        "bq": "`id`",
        "var": "${HOME}",
        "q": "\"'\\n",
    }


@pytest.mark.parametrize(
    "sep", ["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"]
)
def test_unicode_line_separators_do_not_split_a_value(sep: str) -> None:
    assert parse_outputs(f"a=x{sep}b=1\n") == {"a": f"x{sep}b=1"}


def test_a_lone_carriage_return_does_not_split_a_value() -> None:
    assert parse_outputs("a=x\rb=1\n") == {"a": "x\rb=1"}


def test_nul_is_an_error() -> None:
    assert error_of("a=1\nb=x\0y\n").line == 2


def test_over_one_mebibyte_is_an_error() -> None:
    assert parse_outputs("a=" + "x" * (MAX_BYTES - 3) + "\n")["a"] == "x" * (MAX_BYTES - 3)
    err = error_of("a=" + "x" * MAX_BYTES)
    assert "1 MiB" in str(err)


def test_the_cap_counts_bytes_not_characters() -> None:
    err = error_of("a=" + "€" * (MAX_BYTES // 3 + 1))  # 3 bytes each in UTF-8
    assert "1 MiB" in str(err)


def test_json_must_be_an_object_with_valid_keys() -> None:
    assert error_of('{"a b": 1}').line == 0
    assert "not a valid key" in str(error_of('{"a b": 1}'))
    assert "not a valid key" in str(error_of('{"": 1}'))


def test_invalid_json_names_the_line() -> None:
    err = error_of('{"a": 1,\n "b": }')
    assert err.line == 2


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    with pytest.raises(OutputError):
        parse_outputs('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}")


def test_json_text_inside_a_value_is_not_parsed() -> None:
    assert parse_outputs('a={"b": 1}\n') == {"a": '{"b": 1}'}


# --- reading the file --------------------------------------------------------------


def test_read_outputs_missing_file_means_none(tmp_path) -> None:
    assert read_outputs(tmp_path / "nope") == {}


def test_read_outputs_parses_the_file(tmp_path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"a=\xc3\xa9\n")
    assert read_outputs(path) == {"a": "é"}


def test_read_outputs_rejects_invalid_utf8_with_its_line(tmp_path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"a=1\nb=\xff\n")
    with pytest.raises(OutputError) as info:
        read_outputs(path)
    assert info.value.line == 2


def test_read_outputs_rejects_a_huge_file(tmp_path) -> None:
    path = tmp_path / "out"
    with open(path, "wb") as f:
        f.truncate(50 * MAX_BYTES)  # sparse: costs nothing to make or to reject
    with pytest.raises(OutputError, match="1 MiB"):
        read_outputs(path)
