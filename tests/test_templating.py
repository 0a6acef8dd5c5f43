"""Templating: values reach shell commands as literal text, templates fail as TemplateErrors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.templating import (
    TemplateError,
    check_syntax,
    evaluate_when,
    is_templated,
    references,
    render_argv,
    render_command,
    render_text,
)

SHELLS = [sh for sh in ("/bin/sh", "/bin/bash") if Path(sh).exists()]

HOSTILE = [
    "$(touch pwned)",
    "; touch pwned",
    "`touch pwned`",
    "'quoted'",
    '"double"',
    "a\ntouch pwned",
    "{{ 7*7 }}",
    "{% if true %}touch pwned{% endif %}",
    "' ; touch pwned ; '",
    '" ; touch pwned ; "',
    '\\" ; touch pwned ; echo "',
    "\\'; touch pwned #",
    "$HOME ${HOME} $((1+1))",
    "* ? [a]",
    "a b\tc",
    "",
    "-n",
    ") ; touch pwned ; (",
    "} ; touch pwned",
    "esac; touch pwned; case x in x)",
    "# not a comment",
    "\\",
    "trailing backslash \\",
    "x\n\ttouch pwned\n",
]

# (template, what the shell prints for value v)
CONTEXTS = [
    ("printf '%s' {{ v }}", lambda v: v),
    ("printf '%s' x{{ v }}y", lambda v: f"x{v}y"),
    ("printf '%s' \"{{ v }}\"", lambda v: v),
    ("printf '%s' \"a {{ v }} b\"", lambda v: f"a {v} b"),
    ("printf '%s' '{{ v }}'", lambda v: v),
    ("printf '%s' 'a{{ v }}b'\"{{ v }}\"{{ v }}", lambda v: f"a{v}b{v}{v}"),
    ("printf '%s' \"<$(printf '%s' {{ v }})>\"", lambda v: f"<{v.rstrip(chr(10))}>"),
    ("printf '%s' \"<$(printf '%s' \"{{ v }}\")>\"", lambda v: f"<{v.rstrip(chr(10))}>"),
    ("printf '%s' \"<`printf '%s' {{ v }}`>\"", lambda v: f"<{v.rstrip(chr(10))}>"),
    ("printf '%s' `printf '%s' \"{{ v }}\"`|cat", lambda v: "".join(v.split())),
    ("(printf '%s' {{ v }})", lambda v: v),
    ("case x in x) printf '%s' {{ v }};; esac", lambda v: v),
    ("printf '%s' ok # {{ v }}", lambda v: "ok"),
    ("cat <<EOF\n{{ v }}\nEOF", lambda v: f"{v}\n"),
    ("cat <<'EOF'\n{{ v }}\nEOF\nprintf '%s' {{ v }}", lambda v: f"{v}\n{v}"),
    ("cat <<-EOF\n\t{{ v }}\n\tEOF", lambda v: f"{v}\n"),
    ("cat <<A; cat <<'B'\n{{ v }}\nA\n'{{ v }}'\nB", lambda v: f"{v}\n'{v}'\n"),
    ("printf '%s' $((1 << 2)) \"$((2<<1))\"\nprintf '%s' {{ v }}", lambda v: f"44{v}"),
]


def _sh(shell: str, command: str, cwd: Path) -> str:
    done = subprocess.run(
        [shell, "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("template,expect", CONTEXTS, ids=[c[0] for c in CONTEXTS])
def test_hostile_values_arrive_literal_in_every_shell_context(
    shell: str, template: str, expect, tmp_path: Path
) -> None:
    for value in HOSTILE:
        if "\t" in template and value.startswith("x\n\t"):
            continue  # <<- strips leading tabs from the value's lines too, as it should
        command = render_command(template, {"v": value})
        out = _sh(shell, command, tmp_path)
        assert out == expect(value), (value, command)
        assert not (tmp_path / "pwned").exists(), (value, command)


def test_values_in_a_shell_command_are_one_argument_each(tmp_path: Path) -> None:
    ctx = {"params": {"outdir": "my dir", "n": 3, "on": True, "off": False, "none": None}}
    command = render_command(
        "printf '[%s]' {{ params.outdir }} {{ params.n }} {{ params.on }} {{ params.off }}"
        " {{ params.none }} {{ 'a b' }}",
        ctx,
    )
    assert _sh("/bin/sh", command, tmp_path) == "[my dir][3][true][false][][a b]"


def test_quoting_leaves_glob_and_operators_of_the_template_alone(tmp_path: Path) -> None:
    (tmp_path / "my dir").mkdir()
    (tmp_path / "my dir" / "x.whl").write_text("")
    command = render_command(
        'ls {{ d }}/*.whl && echo "wheel=$(ls {{ d }}/*.whl)"', {"d": "my dir"}
    )
    assert _sh("/bin/sh", command, tmp_path) == "my dir/x.whl\nwheel=my dir/x.whl\n"


def test_raw_opts_out_of_quoting_visibly(tmp_path: Path) -> None:
    ctx = {"cmd": "touch made; printf '%s' done", "flag": True}
    command = render_command("{{ cmd | raw }} {{ flag | raw }}", ctx)
    assert command == "touch made; printf '%s' done true"
    assert _sh("/bin/sh", command, tmp_path) == "donetrue"
    assert (tmp_path / "made").exists()
    assert render_command("echo {{ cmd | raw | upper }}", {"cmd": "a b"}) == "echo 'A B'"
    assert render_text("{{ cmd | raw }}", {"cmd": None}) == ""


def test_a_macro_or_set_block_is_one_value_quoted_once(tmp_path: Path) -> None:
    """What a macro or a ``{% set %}`` block renders is one value: its own values become
    text inside it, and the whole is quoted once (never a placeholder left in the command:
    that was an ``embedded null byte`` at start)."""
    ctx = {"params": {"x": "a b; touch pwned"}}
    for template in (
        "{% macro m() %}<{{ params.x }}>{% endmacro %}printf '%s' {{ m() }}",
        "{% set v %}<{{ params.x }}>{% endset %}printf '%s' {{ v }}",
    ):
        command = render_command(template, ctx)
        assert "\x00" not in command, template
        assert _sh("/bin/sh", command, tmp_path) == "<a b; touch pwned>", template
        assert not (tmp_path / "pwned").exists()


def test_a_set_block_holds_its_text_for_comparisons_in_a_run_string() -> None:
    """In a ``run`` string a ``{% set %}`` block is the text its values render to, as in
    any other field: ``{% if v == 'a' %}`` compares that text."""
    source = "{% set v %}{{ x }}{% endset %}{% if v == 'a b' %}echo yes {{ v }}{% endif %}"
    assert render_command(source, {"x": "a b"}) == "echo yes 'a b'"
    upper = "{% set v | upper %}{{ x }}{% endset %}{% if v == 'A B' %}echo {{ v }}{% endif %}"
    assert render_command(upper, {"x": "a b"}) == "echo 'A B'"


def test_command_without_values_is_returned_as_is() -> None:
    assert render_command("echo 'a' \"$X\" # {x}", {}) == "echo 'a' \"$X\" # {x}"
    assert render_command("echo hi{# note #}\n", {}) == "echo hi\n"
    assert render_command("{% for i in range(2) %}echo {{ i }};{% endfor %}", {}) == (
        "echo 0;echo 1;"
    )


@pytest.mark.parametrize(
    "template",
    [
        "echo ${X:-{{ v }}}",
        'echo "${X:-{{ v }}}"',
        "echo $'{{ v }}'",
        "echo `echo \\`echo {{ v }}\\``",
        "cat <<{{ v }}\nx\n",
    ],
)
def test_spots_that_cannot_be_quoted_portably_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        render_command(template, {"v": "x"})


def test_only_integers_go_into_arithmetic(tmp_path: Path) -> None:
    command = render_command(
        "printf '%s,' $(( {{ n }} + 1 )) \"$(( ({{ n }}) << 1 ))\" {{ n }}", {"n": -3}
    )
    assert _sh("/bin/sh", command, tmp_path) == "-2,-6,-3,"
    for value in ["a[$(touch pwned)]", "1; touch pwned", "x", "1 + 1"]:
        with pytest.raises(TemplateError, match="integer"):
            render_command("echo $(( {{ v }} ))", {"v": value})


@pytest.mark.parametrize("value", ["EOF", "a\nEOF\ntouch pwned", "\tEOF"])
def test_a_value_cannot_end_a_here_document(value: str) -> None:
    for template in ["cat <<EOF\n{{ v }}\nEOF", "cat <<'EOF'\n{{ v }}\nEOF"]:
        if value == "\tEOF":
            template = template.replace("<<", "<<-")
        with pytest.raises(TemplateError, match="here-document"):
            render_command(template, {"v": value})
    assert render_command("cat <<EOF\n{{ v }}x\nEOF", {"v": "EO"}) == "cat <<EOF\nEOx\nEOF"
    with pytest.raises(TemplateError):
        render_command("cat <<EOF\n{{ v }}F\nEOF", {"v": "EO"})


def test_render_text_formats_values_like_yaml_and_never_quotes() -> None:
    ctx = {"t": True, "f": False, "n": None, "i": 7, "l": ["a", 1], "d": {"k": None}}
    out = render_text("{{ t }} {{ f }} {{ n }}|{{ i }} {{ l }} {{ d }} {{ 'a b' }}", ctx)
    assert out == 'true false |7 ["a", 1] {"k": null} a b'
    assert render_text("{{ v }}\n", {"v": "$(x) {{ 7*7 }}"}) == "$(x) {{ 7*7 }}\n"
    assert render_text("plain {not} $(x)", {}) == "plain {not} $(x)"


def test_render_argv_keeps_each_item_one_argument(tmp_path: Path) -> None:
    ctx = {"params": {"msg": "a b; touch pwned", "n": False}}
    argv = render_argv(["printf", "[%s]", "{{ params.msg }}", "{{ params.n }}", "x"], ctx)
    assert argv == ["printf", "[%s]", "a b; touch pwned", "false", "x"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout == "[a b; touch pwned][false][x]"
    assert not (tmp_path / "pwned").exists()


def test_params_named_like_dict_methods_are_the_params() -> None:
    ctx = {"params": {"items": ["a", "b"], "keys": "k"}}
    src = "{% for x in params.items %}{{ x }},{% endfor %}{{ params.keys }}"
    assert render_text(src, ctx) == "a,b,k"


def test_undefined_names_the_whole_path_and_what_is_there() -> None:
    ctx = {"steps": {"build": {"outputs": {"wheel": "w", "version": "1"}}}, "params": {}}
    with pytest.raises(TemplateError) as err:
        render_command("echo ok\necho {{ steps.build.outputs.whl }}", ctx)
    assert err.value.message == "'steps.build.outputs.whl' is undefined (known: version, wheel)"
    assert err.value.lineno == 2
    with pytest.raises(TemplateError) as err:
        render_text("{{ params.a | default('x') }}{{ stepz.build }}", ctx)
    assert err.value.message == "'stepz' is undefined (known: params, steps)"
    with pytest.raises(TemplateError) as err:
        render_text("{{ steps['build'].nope.x }}", ctx)
    assert err.value.message == "'steps.build.nope' is undefined (known: outputs)"
    with pytest.raises(TemplateError) as err:
        render_text("{{ params.x }}", ctx)
    assert err.value.message == "'params.x' is undefined (known: none)"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ params.__class__ }}",
        "{{ params.l.append(1) }}",
        "{{ range.__self__ }}",
        "{% include '/etc/passwd' %}",
        "{{ 1 / 0 }}",
    ],
)
def test_sandbox_escapes_and_runtime_failures_are_template_errors(template: str) -> None:
    ctx = {"params": {"l": []}}
    for render in (render_text, render_command):
        with pytest.raises(TemplateError):
            render(template, ctx)
    assert ctx == {"params": {"l": []}}


def test_syntax_errors_carry_the_line_number() -> None:
    assert check_syntax("echo {{ params.a | default('x') }}\n{% if x %}y{% endif %}") is None
    assert check_syntax("no template here {") is None
    err = check_syntax("line one\nline two\necho {{ x + }}")
    assert isinstance(err, TemplateError) and err.lineno == 3
    err = check_syntax("{% for x in y %}\n{{ x }}")
    assert isinstance(err, TemplateError) and err.lineno == 2
    assert isinstance(check_syntax("{{ x | no_such_filter }}"), TemplateError)
    with pytest.raises(TemplateError) as raised:
        render_command("a\n{{ x +", {"x": 1})
    assert raised.value.lineno == 2


def test_is_templated_is_cheap_and_does_not_import_jinja() -> None:
    assert is_templated("echo {{ x }}") and is_templated("{% if a %}{% endif %}")
    assert not is_templated("echo ${HOME} {x} %}")
    code = (
        "import sys, runner.templating as t\n"
        "assert t.is_templated('{{ a }}') and not t.is_templated('b')\n"
        "assert t.render_text('plain', {}) == 'plain'\n"
        "print('jinja2' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_references_follow_attributes_items_filters_and_loops() -> None:
    src = (
        "{{ steps.build.outputs.wheel }} {{ steps['a-b'].outputs.x | default('') }}"
        " {{ params.outdir ~ '/' }} {{ params.flags | join(' ') }} {{ steps }}"
        "{% for x in params.items %}{{ x.name }}{{ loop.index }}{% endfor %}"
        "{% set out = params.out %}{{ out.y }}"
        "{% for i in range(params.n) if i > params.min %}{{ i }}{% endfor %}"
        "{% macro m(arg) %}{{ arg.z }}{{ workflow.name }}{% endmacro %}{{ m(1) }}"
        "{{ steps[params.which].outputs.v }}{{ params.list[0].q }}"
    )
    assert references(src) == {
        ("steps", "build", "outputs", "wheel"),
        ("steps", "a-b", "outputs", "x"),
        ("params", "outdir"),
        ("params", "flags"),
        ("steps",),
        ("params", "items"),
        ("params", "out"),
        ("params", "n"),
        ("params", "min"),
        ("workflow", "name"),
        ("params", "which"),
        ("params", "list"),
    }


def test_references_of_loop_variables_and_plain_text_are_none() -> None:
    assert references("{% for s in steps %}{{ s.outputs.x }}{% endfor %}") == {("steps",)}
    assert references("plain {text}") == set()
    assert references("{% set a = 1 %}{{ a.b }}{{ cycler }}{{ dict(x=1) }}") == set()
    with pytest.raises(TemplateError):
        references("{{ broken")


@pytest.mark.parametrize(
    "source,expected",
    [
        (True, True),
        (False, False),
        ("{{ params.run_tests | default(true) }}", True),
        ("{{ params.on }}", True),
        ("{{ params.off }}", False),
        ("{{ params.text_false }}", False),
        ("{{ params.text_no }}", False),
        ("{{ params.zero }}", False),
        ("{{ params.empty_list }}", False),
        ("{{ params.none }}", False),
        ("{{ params.n > 2 }}", True),
        ("{{ params.off }}{{ params.off }}", True),
        ("{% if params.on %}off{% endif %}", False),
        ("OFF", False),
        ("0", False),
        ("", False),
        ("yes", True),
    ],
)
def test_evaluate_when(source: str | bool, expected: bool) -> None:
    ctx = {
        "params": {
            "on": True,
            "off": False,
            "text_false": " False ",
            "text_no": "No",
            "zero": 0,
            "empty_list": [],
            "none": None,
            "n": 3,
        }
    }
    assert evaluate_when(source, ctx) is expected


def test_evaluate_when_undefined_without_default_is_an_error() -> None:
    with pytest.raises(TemplateError, match="'params.run_tests' is undefined"):
        evaluate_when("{{ params.run_tests }}", {"params": {}})


def test_compiled_templates_are_reused() -> None:
    from runner import templating

    source = "echo {{ v }} # reuse-check"
    render_command(source, {"v": 1})
    before = templating._compiled.cache_info().hits
    for i in range(5):
        assert render_command(source, {"v": f"x {i}"}) == f"echo 'x {i}' # reuse-check"
    assert templating._compiled.cache_info().hits == before + 5


def test_values_never_rendered_twice_even_through_raw() -> None:
    ctx = {"v": "{{ 7*7 }}"}
    assert render_command("{{ v | raw }}", ctx) == "{{ 7*7 }}"
    assert render_command("{{ v }}", ctx) == "'{{ 7*7 }}'"
