"""The second line of defence: a rendered command is read back, and a value that did not
land as literal text of the words its sentinel marks is refused (issue 11, kind 1)."""

from __future__ import annotations

import pytest

from runner.shellwords import landed_literally, words
from runner.templating import render_command

S = ["orchSENTv0z", "orchSENTv1z"]


@pytest.mark.parametrize(
    "with_sentinels,final,value",
    [
        ('echo "orchSENTv0z"', 'echo "$(touch pwned)"', "$(touch pwned)"),
        ("echo orchSENTv0z", "echo a; touch pwned", "a; touch pwned"),
        ("echo orchSENTv0z", "echo 'a' b", "a b"),
        ("echo $orchSENTv0z", "echo $HOME", "HOME"),
        ("echo \\orchSENTv0z", "echo \\'x; touch pwned'", "'x; touch pwned'"),
        (
            "cat <<EOF\n\\orchSENTv0z\nEOF\n",
            "cat <<EOF\n\\\\$(touch pwned)\nEOF\n",
            "$(touch pwned)",
        ),
        ("echo `echo orchSENTv0z`", "echo `echo $(touch pwned)`", "$(touch pwned)"),
        ("echo $(( orchSENTv0z ))", "echo $(( a[$(touch pwned)] ))", "a[$(touch pwned)]"),
        ("echo 'orchSENTv0z'", "echo ''; touch pwned; ''", "; touch pwned; "),
        ("echo ok # orchSENTv0z", "echo ok # a\ntouch pwned", "a\ntouch pwned"),
        ('echo "orchSENTv0z', 'echo "unterminated', "unterminated"),
    ],
)
def test_a_value_that_did_not_land_literally_is_caught(
    with_sentinels: str, final: str, value: str
) -> None:
    assert landed_literally(with_sentinels, final, S[:1], [value]) is not None


@pytest.mark.parametrize(
    "template",
    [
        "echo {{ a }} {{ b }}",
        "echo \"x{{ a }}y\" '{{ b }}'",
        "echo $(printf '%s' {{ a }}) `printf '%s' {{ b }}`",
        "cat <<EOF\n{{ a }}\nEOF\ncat <<'Q'\n{{ b }}\nQ\n",
        "echo $(( {{ n }} + 1 )) {{ a }}",
    ],
)
def test_correct_quoting_reads_back_as_the_values(template: str) -> None:
    values = {"a": "$(touch pwned) 'q' \"d\" `x` \\ \n end", "b": "*; ${HOME}", "n": 7}
    render_command(template, values)  # raises if the read-back disagreed


def test_words_marks_expansions_and_keeps_literal_text() -> None:
    assert words("echo \"a$B\" 'c$d' e\\$f $(g h) # i") == [
        ("w", "echo"),
        ("w", "a\x01$B\x02"),
        ("w", "c$d"),
        ("w", "e$f"),
        ("w", "g"),
        ("w", "h"),
        ("w", "\x01$(\x02"),
    ]


def test_refusals_never_show_the_value() -> None:
    from runner.templating import TemplateError

    secret = "s3cr3t-t0ken; touch pwned"
    why = landed_literally('echo "orchSENTv0z"', 'echo "$(x)"', S[:1], [secret])
    assert why is not None and "s3cr3t" not in why
    for template in ["echo $(( {{ v }} ))", 'echo "${{ v }}"', "eval {{ v }}", "echo {{ v }} | sh"]:
        try:
            render_command(template, {"v": secret})
        except TemplateError as exc:
            assert "s3cr3t" not in exc.message, template
        else:
            raise AssertionError(f"{template} was not refused")
