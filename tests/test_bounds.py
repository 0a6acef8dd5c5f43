"""Bounds past the YAML parser: template values, template nesting, file reads (fault kind 10)."""

from __future__ import annotations

import os
import subprocess

import pytest

from runner.manifests.yamlsrc import MAX_BYTES
from runner.sandbox import MAX_ITERATIONS, MAX_SIZE
from runner.templating import TemplateError, check_syntax, render_command, render_text
from tests.conftest import Repo, workflow


def errors(p: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in p.stderr.splitlines() if not line.startswith("orch: ")]


HUGE = [
    "{{ 9**(9**9) }}",
    "{{ 2**100000 }}",
    "{{ (10**2000) * (10**2000) }}",
    "{{ 'a' * 10**9 }}",
    "{{ 10**9 * 'a' }}",
    "{{ [1] * 10**9 }}",
    "{{ ('a' * 1000000) + ('b' * 1000000) }}",
    "{{ 'x' | center(10**9) }}",
    "{{ 'x' | indent(10**9, true) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'.zfill(10**9) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%.999999999f' % 1.0 }}",
    "{{ '%999999999d' | format(1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '{:{}}'.format(1, 10**9) }}",
    "{{ (['x' * 1000000] * 1000) | join }}",
    "{{ ','.join(['x' * 1000000] * 1000) }}",
    "{{ ('ab' * 500000) | replace('a', 'x' * 100) }}",
    "{{ range(10**9) | list }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in range(1100) %}{{ 'x' * 1000 }}{% endfor %}",
    "{{ (('a' * 1000000) ~ ('b' * 1000000)) | length }}",
    "{% set ns = namespace(s='ab' * 300000) %}{% for i in range(9) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "{{ lipsum(20000) | length }}",
    "{{ lipsum(1, min=10**9, max=10**9) | length }}",
    "{{ [1] | batch(10**7, 0) | list | length }}",
    "{{ [1] | slice(10**7) | list | length }}",
    "{{ ('\\t' * 100000).expandtabs(100) | length }}",
]


@pytest.mark.parametrize("source", HUGE)
def test_a_value_too_big_to_build_is_a_template_error(source: str) -> None:
    assert check_syntax(source) is None  # nothing is computed while checking
    with pytest.raises(TemplateError):
        render_text(source, {})
    with pytest.raises(TemplateError):
        render_command("echo " + source, {})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 2**40 }} {{ 2**4000 > 0 }}", f"{2**40} true"),
        ("{{ 'ab' * 3 }}{{ [0] * 2 }}", "ababab[0, 0]"),
        ("{{ '%05d' % 42 }} {{ '%.2f' | format(1.5) }} {{ '{:>4}'.format(7) }}", "00042 1.50    7"),
        (
            "{{ 'x' | center(5) }}|{{ 'x'.rjust(3) }}|{{ 'a-b' | replace('-', '+') }}",
            "  x  |  x|a+b",
        ),
        (
            "{% for i in range(3) %}{% for j in range(2) %}{{ i }}{{ j }},{% endfor %}{% endfor %}",
            "00,01,10,11,20,21,",
        ),
        ("{{ ['a', 'b'] | join('/') }} {{ '-'.join(['c', 'd']) }}", "a/b c-d"),
        ("{{ 'a' ~ 1 ~ none ~ true }} {{ lipsum(2, html=false) | length > 0 }}", "a1NoneTrue true"),
    ],
)
def test_ordinary_values_are_not_limited(source: str, expected: str) -> None:
    assert render_text(source, {}) == expected


def test_the_limits_are_generous_for_real_templates() -> None:
    assert len(render_text("{{ 'x' * " + str(MAX_SIZE) + " }}", {})) == MAX_SIZE
    loops = "{% for i in range(100000) %}{% endfor %}ok"
    assert render_text(loops, {}) == "ok"


def test_the_loop_budget_is_per_rendering() -> None:
    outer = MAX_ITERATIONS * 2 // 3 // 1000
    source = (
        f"{{% for i in range({outer}) %}}{{% for j in range(999) %}}{{% endfor %}}{{% endfor %}}ok"
    )
    assert render_text(source, {}) == "ok"
    assert render_text(source, {}) == "ok"  # the count starts again


@pytest.mark.parametrize(
    "source",
    [
        "{{ " + "(" * 100 + "1" + ")" * 100 + " }}",
        "{{ " + "[" * 100 + "]" * 100 + " }}",
        "{{ " + "-" * 500 + "1 }}",
        "{% if x %}" * 100 + "y" + "{% endif %}" * 100,
        "{% for x in y %}" * 30 + "{% endfor %}" * 30,
    ],
)
def test_a_template_nested_too_deeply_is_a_template_error(source: str) -> None:
    err = check_syntax(source)
    assert isinstance(err, TemplateError)
    assert "nested too deeply" in err.message


def test_runaway_recursion_at_render_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="nested too deeply"):
        render_text("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", {})


def test_validate_never_computes_a_huge_constant(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - name: a\n      run: echo {{ 9**(9**9) }}\n"))
    p = repo.orch("validate", timeout=60)
    assert p.returncode == 0, p.stderr
    p = repo.orch("apply", timeout=60)
    assert p.returncode == 1
    assert "bits" in p.stderr and "internal error" not in p.stderr


def test_deep_template_is_one_positioned_diagnostic(repo: Repo) -> None:
    deep = "(" * 100 + "1" + ")" * 100
    repo.write("wf.yaml", workflow("w", f"    - name: a\n      run: echo {{{{ {deep} }}}}\n"))
    p = repo.orch("validate")
    assert p.returncode == 1
    (line,) = errors(p)
    assert line.startswith("wf.yaml:7:12: spec.steps[0].run: template error:")
    assert "nested too deeply" in line


def test_a_manifest_linked_to_a_device_is_refused_not_read(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'true'}\n"))
    os.symlink("/dev/zero", repo.path / "zero.yaml")
    repo.commit()
    for verb in ("validate", "plan"):
        p = repo.orch(verb, timeout=60)
        assert p.returncode == 1
        (line,) = errors(p)
        assert line.startswith("zero.yaml: "), line


def test_a_manifest_linked_to_a_fifo_inside_the_repository_never_blocks(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'true'}\n"))
    (repo.path / "data").mkdir()
    os.mkfifo(repo.path / "data" / "fifo")  # git never lists a FIFO; the link is committed
    os.symlink("data/fifo", repo.path / "pipe.yaml")
    repo.commit()
    for verb in ("validate", "plan"):
        p = repo.orch(verb, timeout=60)
        assert p.returncode == 1
        (line,) = errors(p)
        assert line.startswith("pipe.yaml: not a regular file"), line


def test_a_fifo_named_as_a_manifest_never_blocks(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'true'}\n"))
    os.mkfifo(repo.path / "pipe.yaml")
    p = repo.orch("validate", str(repo.path / "pipe.yaml"), timeout=60)
    assert p.returncode == 1
    (line,) = errors(p)
    assert line.startswith("pipe.yaml: not a regular file"), line


def test_a_config_linked_to_a_device_is_refused(repo: Repo) -> None:
    (repo.path / ".orch/config.yaml").unlink()
    os.symlink("/dev/zero", repo.path / ".orch/config.yaml")
    p = repo.orch("validate", timeout=60)
    assert p.returncode == 1
    assert ".orch/config.yaml" in p.stderr and "internal error" not in p.stderr


def test_a_huge_manifest_at_a_revision_is_refused_by_its_size(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'true'}\n"))
    repo.write("big.yaml", "# orch/v1\n" + "x" * (MAX_BYTES + 10))
    repo.commit()
    p = repo.orch("validate", "--ref", "HEAD")
    assert p.returncode == 1
    (line,) = errors(p)
    assert line.startswith("big.yaml: file is 8.0 MiB, over the 8 MiB limit"), line


# -- every other repository file orch reads ---------------------------------------------


def test_orch_output_replaced_by_a_fifo_fails_the_step_and_never_blocks(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow("w", '    - name: a\n      run: rm -f "$ORCH_OUTPUT"; mkfifo "$ORCH_OUTPUT"\n'),
    )
    p = repo.orch("apply", timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "not a regular file" in p.stdout + p.stderr
    assert "internal error" not in p.stderr


def test_a_template_file_over_the_limit_or_not_regular_is_refused(repo: Repo) -> None:
    repo.write(
        ".orch/config.yaml",
        "apiVersion: orch/v1\nkind: Config\nmanifests: ['.']\ntemplates: tmpl\n",
    )
    repo.write("tmpl/big/template.yaml", "kind: workflow\n")
    with open(repo.path / "tmpl/big/data.bin", "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: costs no disk
    p = repo.orch("workflow", "create", "w", "--template", "big", "--path", "jobs", timeout=60)
    assert p.returncode == 1
    (line,) = p.stderr.splitlines()
    assert "tmpl:workflow/big/data.bin: larger than" in line, line
    assert not (repo.path / "jobs").exists()
    (repo.path / "tmpl/big/data.bin").unlink()
    os.mkfifo(repo.path / "tmpl/big/data.bin")
    p = repo.orch("workflow", "create", "w", "--template", "big", "--path", "jobs", timeout=60)
    assert p.returncode == 1
    assert "tmpl:workflow/big/data.bin: templates hold regular files only" in p.stderr


def test_a_fifo_input_or_output_is_never_opened(repo: Repo) -> None:
    """A FIFO (or a link inside the repository to one) where a step reads or writes files
    is not content (git does not track one): it is known by its type, never opened, so
    plan and apply never block on it."""
    (repo.path / "src").mkdir()
    (repo.path / "data").mkdir()
    os.mkfifo(repo.path / "data" / "pipe")
    os.symlink("../data/pipe", repo.path / "src" / "p")
    os.mkfifo(repo.path / "lit")
    repo.write("src/x.txt", "x\n")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            '    - {name: a, run: "true", inputs: ["src/", lit]}\n'
            "    - {name: b, run: mkfifo out.fifo, outputs: [out.fifo]}\n",
        ),
    )
    p = repo.orch("apply", timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert all(a == "up-to-date" for a, _ in repo.plan().values())
    repo.write("src/x.txt", "y\n")
    assert repo.plan()[("w", "a")] == ("run", ["input changed: src/x.txt"])


def test_a_condition_is_bounded_as_a_template_is() -> None:
    from runner.templating import evaluate_when

    with pytest.raises(TemplateError, match="at most"):
        evaluate_when("{{ (('a' * 1000000) ~ ('b' * 1000000)) | length > 0 }}", {})
    assert evaluate_when("{{ ('a' ~ 'b') == 'ab' }}", {}) is True
