"""Issue 11, kind 1: the character before a value and the filters around it.

A value is quoted for where it lands; a ``$`` or ``\\`` written right before the ``{{ }}``
would take the quoted value apart again, and HTML-escaping filters return a ``Markup``
string whose concatenation undid the shell quotes. Each case here ran ``touch`` before.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner.templating import TemplateError, render_command

SHELLS = [sh for sh in ("/bin/sh", "/bin/bash", "/bin/dash") if Path(sh).exists()]


def _sh(shell: str, command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shell, "-c", command], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize(
    "template,value",
    [
        ('echo "${{ v }}"', "(touch pwned)"),
        ("echo ${{ v }}", "(touch pwned)"),
        ("echo ${{ v }}", "HOME"),
        ("echo \\{{ v }}", "'; touch pwned; '"),
        ('echo "\\{{ v }}"', "$(touch pwned)"),
        ("cat <<EOF\n\\{{ v }}\nEOF\n", "$(touch pwned)"),
        ("cat <<EOF\n${{ v }}\nEOF\n", "(touch pwned)"),
        ("echo $(( ${{ v }} ))", "1"),
        ("echo `echo ${{ v }}`", "(touch pwned)"),
        ("echo $(echo \\{{ v }})", "'; touch pwned; '"),
        ('{{ "$" | raw }}{{ v }}', "(touch pwned)"),
        ("{% if true %}${% endif %}{{ v }}", "(touch pwned)"),
    ],
)
def test_a_value_right_after_dollar_or_backslash_is_refused(
    template: str, value: str, tmp_path: Path
) -> None:
    with pytest.raises(TemplateError, match="right after"):
        render_command(template, {"v": value})


@pytest.mark.parametrize(
    "template,expect",
    [
        ("printf '%s' \\${{ v }}", "$HOME"),
        ("printf '%s' \\\\{{ v }}", "\\HOME"),
        ("printf '%s' \"\\${{ v }}\"", "$HOME"),
        ("printf '%s' '${{ v }}'", "$HOME"),
        ("printf '%s' '\\{{ v }}'", "\\HOME"),
        ("cat <<'EOF'\n${{ v }}\nEOF\n", "$HOME\n"),
        ("printf '%s' ok # ${{ v }}", "ok"),
    ],
)
def test_an_escaped_dollar_or_backslash_before_a_value_is_literal(
    template: str, expect: str, tmp_path: Path
) -> None:
    for shell in SHELLS:
        done = _sh(shell, render_command(template, {"v": "HOME"}), tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == expect


@pytest.mark.parametrize("flt", ["e", "escape", "safe", "tojson", "forceescape", "urlize"])
@pytest.mark.parametrize("value", ["'; touch pwned; '", "a; touch pwned", "$(touch pwned)"])
def test_no_filter_but_raw_changes_how_a_value_is_quoted(
    flt: str, value: str, tmp_path: Path
) -> None:
    for shell in SHELLS:
        command = render_command(f"printf '%s' {{{{ v | {flt} }}}}", {"v": value})
        _sh(shell, command, tmp_path)
        assert not (tmp_path / "pwned").exists(), command
    plain = render_command("printf '%s' {{ v | safe }}", {"v": value})
    assert _sh("/bin/sh", plain, tmp_path).stdout == value


def test_validate_names_the_line_of_a_value_after_dollar_or_backslash(repo) -> None:
    from tests.conftest import workflow

    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: evil
      run: echo 'x=(touch pwned)' >> "$ORCH_OUTPUT"
    - name: use
      run: |
        echo ok
        echo "${{ steps.evil.outputs.x }}"
    - name: doc
      run: "cat <<EOF\\n\\\\{{ steps.evil.outputs.x }}\\nEOF\\n"
    - name: fine
      run: echo \\${{ steps.evil.outputs.x }} '${{ steps.evil.outputs.x }}'
""",
            "  on:\n    failure: [{run: 'echo ${{ workflow.name }}'}]\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("wf.yaml:")]
    assert [ln.split(" ", 2)[:2] for ln in lines] == [
        ["wf.yaml:6:21:", "spec.on.failure[0].run:"],
        ["wf.yaml:11:12:", "spec.steps[1].run:"],
        ["wf.yaml:15:12:", "spec.steps[2].run:"],
    ], p.stderr
    assert "right after an unescaped '$'" in lines[0]
    assert "right after an unescaped '$'" in lines[1] and "template line 2" in lines[1]
    assert "right after an unescaped '\\'" in lines[2] and "template line 2" in lines[2]
    p = repo.orch("apply")
    assert p.returncode == 1
    assert not (repo.path / "pwned").exists()


def test_apply_refuses_a_dollar_that_only_rendering_puts_before_a_value(repo) -> None:
    from tests.conftest import workflow

    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: evil
      run: echo 'x=(touch pwned)' >> "$ORCH_OUTPUT"
    - name: use
      run: echo "{{ params.d | raw }}{{ steps.evil.outputs.x }}"
""",
            "  params: {d: $}\n",
        ),
    )
    assert repo.orch("validate").returncode == 0
    data = repo.apply()
    assert data["by_step"]["use"]["status"] == "failed"
    assert "right after an unescaped '$'" in data["by_step"]["use"]["message"]
    assert not (repo.path / "pwned").exists()


def test_a_run_list_that_starts_a_shell_on_a_template_is_warned_about(repo) -> None:
    from tests.conftest import workflow

    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: a
      run: [sh, -c, "echo {{ params.x }}"]
    - name: b
      run: [/bin/bash, -euo, pipefail, -lc, "echo {{ params.x }}"]
    - name: quiet
      run: [sh, -c, 'echo "$1"', sh, "{{ params.x }}"]
    - name: python
      run: [python3, -c, "print('{{ params.x }}')"]
""",
            "  params: {x: hi}\n  on:\n    failure: [{run: [env, dash, -c, 'echo {{ workflow.name }}']}]\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 0, p.stderr
    warned = [ln for ln in p.stderr.splitlines() if ln.startswith("orch: warning: wf.yaml:")]
    assert sorted(ln.split(" ")[2:4] for ln in warned) == [
        ["wf.yaml:10:21:", "spec.steps[0].run[2]:"],
        ["wf.yaml:12:45:", "spec.steps[1].run[4]:"],
        ["wf.yaml:7:37:", "spec.on.failure[0].run[3]:"],
    ], p.stderr
    assert all("not quoted" in ln for ln in warned)
    again = repo.orch("plan")  # the warning outlives the manifest cache
    assert len([ln for ln in again.stderr.splitlines() if "not quoted" in ln]) == 3


@pytest.mark.parametrize(
    "template",
    [
        'sh -c "echo {{ v }}"',
        "bash -lc 'echo {{ v }}'",
        "/bin/dash -ec {{ v }}",
        "printf '%s\\n' a | xargs sh -c {{ v }}",
        'echo "$(sh -c "echo {{ v }}")"',
        "eval {{ v }}",
        'if true; then X=1 eval "echo {{ v }}"; fi',
        "trap {{ v }} EXIT",
        "sh <<EOF\necho {{ v }}\nEOF\n",
        "bash -s <<'EOF'\necho {{ v }}\nEOF\n",
        "echo {{ v }} | sh",
        "printf '%s' {{ v }} | grep . | sudo bash -s",
        "echo \"$(printf '%s' {{ v }})\" | dash -e",
        "cat <<EOF | sh\n{{ v }}\nEOF\n",
    ],
)
def test_a_value_a_command_would_parse_as_shell_code_again_is_refused(
    template: str, tmp_path: Path
) -> None:
    from runner.templating import check_shell_spots

    for value in ["$(touch pwned)", "'; touch pwned; '", "x; touch pwned"]:
        with pytest.raises(TemplateError, match="shell code|run as code"):
            render_command(template, {"v": value})
    err = check_shell_spots(template)
    assert err is not None and ("shell code" in err.message or "run as code" in err.message)


@pytest.mark.parametrize(
    "template,expect",
    [
        ('sh -c \'printf "%s" "$1"\' sh {{ v }}', "{v}"),
        ("printf '%s' {{ v }} # eval {{ v }}", "{v}"),
        ("cat <<EOF\n{{ v }}\nEOF\n", "{v}\n"),
        ("printf '%s' {{ v }}; sh -c 'printf ok'", "{v}ok"),
        ("printf '%s' {{ v }} | cat; echo 'printf ok' | sh", "{v}ok"),
        ("printf '%s' {{ v }} | sh -c 'cat'", "{v}"),
    ],
)
def test_values_next_to_such_commands_stay_data(template: str, expect: str, tmp_path: Path) -> None:
    value = "$(touch pwned) 'q' \"d\""
    for shell in SHELLS:
        done = _sh(shell, render_command(template, {"v": value}), tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == expect.format(v=value)
        assert not (tmp_path / "pwned").exists()


def test_values_in_run_under_a_shell_that_is_not_posix_are_an_error(repo) -> None:
    from tests.conftest import workflow

    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: evil
      run: echo 'x=__import__("os").system("touch pwned")' >> "$ORCH_OUTPUT"
    - name: py
      shell: python3
      run: print({{ steps.evil.outputs.x }})
    - name: fine
      shell: bash -eo pipefail
      run: echo {{ steps.evil.outputs.x }}
    - name: plain
      shell: python3
      run: print("no values")
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("wf.yaml:")]
    assert [ln.split(" ")[:2] for ln in lines] == [["wf.yaml:10:12:", "spec.steps[1].run:"]]
    assert "not one" in lines[0] and "python3" in lines[0]
    assert repo.orch("apply").returncode == 1
    assert not (repo.path / "pwned").exists()


BASH = "/bin/bash" if Path("/bin/bash").exists() else None
SUBSCRIPT = "a[$(touch pwned)]"  # bash expands an array subscript wherever it reads a name


@pytest.mark.parametrize(
    "template",
    [
        "[[ {{ v }} -eq 1 ]] || true",
        '[[ 1 -lt "{{ v }}" ]] || true',
        "[[ -v {{ v }} ]] || true",
        'test -v "{{ v }}" || true',
        "[ -v {{ v }} ] || true",
        "let {{ v }} || true",
        "let n={{ v }}+1 || true",
        "declare -i n={{ v }}",
        'typeset -i n="{{ v }}"',
        "declare -n r={{ v }}; echo $r",
        'declare "{{ v }}=1"',
        "local_f() { local {{ v }}; }; local_f",
        "printf -v {{ v }} %s y",
        "read -r {{ v }} <<< hi",
        "mapfile {{ v }} < /dev/null",
        "arr=(); arr[{{ v }}]=1",
        "echo $[ {{ v }} ]",
    ],
)
def test_a_value_bash_evaluates_as_a_name_or_arithmetic_must_be_inert(
    template: str, tmp_path: Path
) -> None:
    """Quoted, the value is one literal word; bash then reads the word as a variable name
    or arithmetic, and an array subscript in it runs $( ). Each of these ran touch."""
    with pytest.raises(TemplateError, match="evaluates this spot"):
        render_command(template, {"v": SUBSCRIPT})
    for inert in ("3", "-3", "name_2"):  # an integer or a plain name is left alone
        render_command(template, {"v": inert})


@pytest.mark.skipif(BASH is None, reason="needs bash")
@pytest.mark.parametrize(
    "template,expect",
    [
        ("export V={{ v }}; printf '%s' \"$V\"", "{v}"),
        ('declare V="{{ v }}"; printf \'%s\' "$V"', "{v}"),
        ("f() { local V={{ v }}; printf '%s' \"$V\"; }; f", "{v}"),
        ("[[ {{ v }} == {{ v }} ]] && printf same", "same"),
        ("printf '%s' \"a[{{ v }}]\"", "a[{v}]"),
        ("read -r -p {{ v }} V < /dev/null || printf ok", "ok"),
    ],
)
def test_values_bash_only_reads_as_text_stay_data(
    template: str, expect: str, tmp_path: Path
) -> None:
    done = _sh(BASH, render_command(template, {"v": SUBSCRIPT}), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expect.format(v=SUBSCRIPT)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "template",
    [
        "sh -c -- {{ v }}",
        "bash -c -e {{ v }}",
        "sh -c -o errexit {{ v }}",
        "bash -c -x -- {{ v }}",
        "su -c {{ v }} nobody",
        "flock /tmp/lock -c {{ v }}",
        "script -qc {{ v }} /dev/null",
        "watch -n 1 {{ v }}",
    ],
)
def test_a_command_string_after_more_options_or_run_by_another_tool_is_refused(
    template: str,
) -> None:
    from runner.templating import check_shell_spots

    with pytest.raises(TemplateError, match="shell code"):
        render_command(template, {"v": "$(touch pwned)"})
    err = check_shell_spots(template)
    assert err is not None and "shell code" in err.message


def test_apply_refuses_an_output_used_in_bash_arithmetic(repo) -> None:
    from tests.conftest import workflow

    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: evil
      run: echo 'n=a[$(touch pwned)]' >> "$ORCH_OUTPUT"
    - name: compare
      shell: bash
      run: '[[ {{ steps.evil.outputs.n }} -gt 3 ]] && echo big || echo small'
""",
        ),
    )
    repo.commit()
    p = repo.orch("apply")
    assert p.returncode == 1
    assert "evaluates this spot" in p.stderr
    assert not repo.exists("pwned")


@pytest.mark.parametrize(
    "template",
    [
        "sh < <(echo {{ v }})",
        "bash <(echo {{ v }})",
        "source <(printf '%s' {{ v }})",
        "echo {{ v }} > >(sh)",
        "echo {{ v }} | source /dev/stdin",
        "echo {{ v }} | . /dev/fd/0",
        "bash <<< {{ v }}",
        'bash -s <<< "echo {{ v }}"',
        ". /dev/stdin <<< {{ v }}",
    ],
)
def test_a_value_a_shell_reads_as_its_script_by_another_way_is_refused(template: str) -> None:
    """Process substitutions, here-strings and ``source /dev/stdin``: each ran touch."""
    with pytest.raises(TemplateError, match="run as code"):
        render_command(template, {"v": "$(touch pwned)"})


@pytest.mark.skipif(BASH is None, reason="needs bash")
@pytest.mark.parametrize(
    "template,expect",
    [
        ("cat <<< {{ v }}", "{v}\n"),
        ('cat <<< "[{{ v }}]"', "[{v}]\n"),
        ("read -r V <<< {{ v }}; printf '%s' \"$V\"", "{v}"),
        ("cat <(printf '%s' {{ v }})", "{v}"),
        ("printf '%s' {{ v }} > >(cat)", "{v}"),
    ],
)
def test_here_strings_and_process_substitutions_of_data_work(
    template: str, expect: str, tmp_path: Path
) -> None:
    """A here-string was read as a here-document (``<<`` then ``<``), so every value in
    one was refused as a quoting bug; it is an ordinary word."""
    value = "$(touch pwned) 'q'"
    done = _sh(BASH, render_command(template, {"v": value}), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expect.format(v=value)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "argv,index",
    [
        (["sh", "-c", "--", "CMD"], 3),
        (["bash", "-e", "-c", "CMD"], 3),
        (["xargs", "sh", "-c", "CMD"], 3),
        (["timeout", "5", "bash", "-lc", "CMD"], 4),
        (["su", "-c", "CMD", "root"], 2),
        (["flock", "/tmp/lock", "-c", "CMD"], 3),
        (["sh", "-c", 'echo "$1"', "sh", "VALUE"], 2),
        (["python3", "-c", "CMD"], None),
        (["sh", "script.sh", "-c"], None),
    ],
)
def test_the_command_string_of_a_run_list_is_found_behind_launchers_and_dashes(
    argv: list[str], index: int | None
) -> None:
    """``[sh, -c, --, CMD]`` pointed at ``--`` and ``[xargs, sh, -c, CMD]`` or
    ``[su, -c, CMD]`` at nothing, so a value templated into CMD got no warning."""
    from runner.shellcode import shell_command_string

    assert shell_command_string(argv) == index
