"""What orch decides to re-run: nothing missed, nothing counted twice, every plan settles.

Each test is a case of one fault kind (a fact the fingerprint missed or over-counted, a
plan that never settled, ...), run through the real CLI on a real repository.
"""

from __future__ import annotations

from tests.conftest import Repo, workflow


def settled(repo: Repo) -> None:
    """Apply, then the plan must say every step is up to date."""
    r = repo.apply()
    assert r["ok"], r
    plan = repo.plan()
    assert all(a == "up-to-date" for a, _ in plan.values()), plan


# --------------------------------------------------------------------------- fingerprint


def test_env_read_through_get_is_fingerprinted(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - name: greet\n"
            "      run: echo {{ env.get('ORCH_T_GREETING', 'none') }} > out.txt\n"
            "      outputs: [out.txt]\n",
        ),
    )
    settled(repo)
    p = repo.orch("plan", "--json", env={"ORCH_T_GREETING": "hello"})
    assert '"definition changed (environ: ORCH_T_GREETING)"' in p.stdout
    r = repo.orch("apply", env={"ORCH_T_GREETING": "hello"})
    assert r.returncode == 0, r.stderr
    assert repo.read("out.txt") == "hello\n"


def test_env_read_by_a_computed_name_counts_the_whole_environment(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - name: greet\n"
            "      run: echo {{ env[params.var] | default('none') }} > out.txt\n"
            "      outputs: [out.txt]\n",
            "  params: {var: ORCH_T_NAME}\n",
        ),
    )
    settled(repo)
    plan = repo.plan()  # no witness short cut: the same environment is still up to date
    assert plan[("w", "greet")] == ("up-to-date", [])
    p = repo.orch("plan", "--json", env={"ORCH_T_NAME": "x"})
    assert '"definition changed (environ)"' in p.stdout


def test_spacing_comments_block_style_and_input_order_rerun_nothing(repo: Repo) -> None:
    repo.write("a.txt", "a\n")
    repo.write("b.txt", "b\n")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: one
      run: |
        cat a.txt b.txt > {{params.out}}
      inputs: [a.txt, b.txt]
      when: "{{params.go}}"
      env: {WHO: "{{params.out}}"}
""",
            "  params: {out: out.txt, go: true}\n",
        ),
    )
    settled(repo)
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: one
      run: |-
        cat a.txt b.txt > {{ params.out }}{# the joined file #}
      inputs: [b.txt, a.txt, a.txt]
      when: "{{ params.go }}"
      env: {WHO: '{{ params.out }}'}
""",
            "  params: {out: out.txt, go: true}\n",
        ),
    )
    assert repo.plan()[("w", "one")] == ("up-to-date", [])
    # what the command renders to still counts
    repo.write("wf.yaml", repo.read("wf.yaml").replace("cat a.txt b.txt", "cat b.txt a.txt"))
    assert repo.plan()[("w", "one")] == ("run", ["definition changed (run)"])


def test_subscript_with_a_constant_key_counts_as_the_attribute(repo: Repo) -> None:
    """``params["x"]`` renders what ``params.x`` renders, so switching between them re-runs
    nothing; ``env["X"]``/``env.X`` and ``steps.a.outputs["k"]``/``.k`` alike. A key that is
    also a method (``params["items"]`` against ``params.items``) renders otherwise and
    counts."""
    before = """\
    - name: a
      run: echo "k=v" >> "$ORCH_OUTPUT"
    - name: b
      run: echo {{ params["x"] }} {{ env["HOME"] }} {{ steps.a.outputs["k"] }} {{ params['items'] }}
"""
    extra = "  params: {x: 1, items: 2}\n"
    repo.write("wf.yaml", workflow("w", before, extra))
    settled(repo)
    after = before.replace('params["x"]', "params.x").replace('env["HOME"]', "env.HOME")
    after = after.replace('outputs["k"]', "outputs.k")
    repo.write("wf.yaml", workflow("w", after, extra))
    assert repo.plan()[("w", "b")] == ("up-to-date", [])
    method = after.replace("params['items']", "params.items")
    repo.write("wf.yaml", workflow("w", method, extra))
    assert repo.plan()[("w", "b")] == ("run", ["definition changed (run)"])


def test_project_values_a_template_reads_are_fingerprinted(repo: Repo) -> None:
    """``{{ project.params.x }}`` reads the project's params as ``{{ params.x }}`` does: a
    change there re-runs the step (it was a missed change); a step that reads nothing of
    the project does not re-run."""
    repo.write(
        "p/project.yaml",
        "apiVersion: orch/v1\nkind: Project\nmetadata: {name: p}\nspec:\n  path: p\n"
        "  params: {x: 1, other: a}\n",
    )
    repo.write(
        "p/wf.yaml",
        "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: w, project: p}\nspec:\n"
        "  steps:\n"
        "    - {name: reads, run: 'echo {{ project.params.x }} > out.txt', outputs: [out.txt]}\n"
        "    - {name: plain, run: 'true'}\n",
    )
    settled(repo)
    repo.write("p/project.yaml", repo.read("p/project.yaml").replace("x: 1", "x: 2"))
    plan = repo.plan()
    assert plan[("w", "reads")] == ("run", ["definition changed (project)"])
    assert plan[("w", "plain")] == ("up-to-date", [])
    settled(repo)
    assert repo.read("p/out.txt") == "2\n"


def test_one_path_spelled_two_ways_reruns_nothing(repo: Repo) -> None:
    """``./src/a.txt`` and ``src/a.txt``, ``src//`` and ``src/``, ``workdir: ./`` and
    ``.`` name the same files, as the plan reads them: changing the spelling re-runs
    nothing. A different path still counts."""
    repo.write("src/a.txt", "a\n")
    step = (
        '    - {{name: a, run: "mkdir -p out", inputs: [{ins}], outputs: ["{out}"],'
        ' workdir: "{wd}"}}\n'
    )
    repo.write(
        "wf.yaml", workflow("w", step.format(ins='./src/a.txt, "src//"', out="./out/", wd="./"))
    )
    settled(repo)
    repo.write(
        "wf.yaml", workflow("w", step.format(ins='src/a.txt, "./src/"', out="out//", wd="."))
    )
    assert repo.plan()[("w", "a")] == ("up-to-date", [])
    repo.write("wf.yaml", workflow("w", step.format(ins='src/a.txt, "src/"', out="out/x/", wd=".")))
    assert repo.plan()[("w", "a")][0] == "run"


# --------------------------------------------------------------------------- shell


def test_a_failing_first_line_fails_the_step_and_shell_chooses_otherwise(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: strict
      run: |
        false
        echo went on > strict.txt
    - name: lenient
      shell: sh
      run: |
        false
        echo went on > lenient.txt
    - name: piped
      shell: bash -eo pipefail
      run: |
        false | cat
        echo went on > piped.txt
""",
        ),
    )
    r = repo.apply()
    assert r["by_step"]["strict"]["status"] == "failed" and not repo.exists("strict.txt")
    assert r["by_step"]["lenient"]["status"] == "succeeded" and repo.exists("lenient.txt")
    assert r["by_step"]["piped"]["status"] == "failed" and not repo.exists("piped.txt")
    # the shell is part of the definition
    repo.write("wf.yaml", repo.read("wf.yaml").replace("shell: sh\n", "shell: sh -e\n"))
    assert repo.plan()[("w", "lenient")] == ("run", ["definition changed (shell)"])


def test_workflow_default_shell_and_a_shell_that_cannot_be_run(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - {name: a, run: 'false; echo ok > a.txt'}\n"
            "    - {name: b, run: 'echo', shell: \"no-such-shell-x -e\"}\n"
            "    - {name: c, run: 'echo', shell: \"sh '-e\"}\n",
            "  defaults: {shell: sh}\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if not line.startswith("orch: ")]
    assert len(lines) == 2, p.stderr
    assert lines[0].startswith("wf.yaml:8:37: spec.steps[1].shell: shell program 'no-such-shell-x'")
    assert lines[1].startswith("wf.yaml:9:37: spec.steps[2].shell: shell ")
    repo.write(
        "wf.yaml",
        workflow(
            "w", "    - {name: a, run: 'false; echo ok > a.txt'}\n", "  defaults: {shell: sh}\n"
        ),
    )
    assert repo.apply()["by_step"]["a"]["status"] == "succeeded" and repo.exists("a.txt")


# --------------------------------------------------------------------------- conditions


def test_a_condition_and_its_negation_never_both_skip(repo: Repo) -> None:
    """A yes/no output value (false, 0, no, off, true...) is a boolean in expressions, by
    the same rule `when:` applies to text: `not flag` is true when `flag` reads false."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: a
      run: echo flag=false >> "$ORCH_OUTPUT"; echo on=yes >> "$ORCH_OUTPUT"
    - name: pos
      run: touch pos
      when: "{{ steps.a.outputs.flag }}"
    - name: neg
      run: touch neg
      when: "{{ not steps.a.outputs.flag }}"
    - name: eq
      run: touch eq
      when: "{{ steps.a.outputs.flag == false and steps.a.outputs.on == true }}"
    - name: text
      run: echo "{{ steps.a.outputs.flag }}{% if not steps.a.outputs.flag %} no{% endif %}" > text.txt
      outputs: [text.txt]
""",
        ),
    )
    r = repo.apply()
    status = {s: r["by_step"][s]["status"] for s in ("pos", "neg", "eq", "text")}
    assert status == {"pos": "skipped", "neg": "succeeded", "eq": "succeeded", "text": "succeeded"}
    assert repo.exists("neg") and repo.exists("eq") and not repo.exists("pos")
    assert repo.read("text.txt") == "false no\n"  # printed, a value is its text


def test_text_filters_and_methods_keep_a_yes_no_value_a_yes_no(repo: Repo) -> None:
    """``flag | trim``, ``flag | lower`` and ``flag.strip()`` of a yes/no value are still a
    yes/no: a condition written with them and its negation never both skip."""
    conds = [
        "steps.a.outputs.flag | trim",
        "steps.a.outputs.flag | lower",
        "steps.a.outputs.flag.strip()",
        "steps.a.outputs.flag | replace('x', 'y')",
    ]
    steps = '    - name: a\n      run: echo "flag=Off" >> "$ORCH_OUTPUT"\n'
    for i, c in enumerate(conds):
        steps += f'    - {{name: p{i}, run: "true", when: "{{{{ {c} }}}}"}}\n'
        steps += f'    - {{name: n{i}, run: "true", when: "{{{{ not ({c}) }}}}"}}\n'
    repo.write("wf.yaml", workflow("w", steps))
    r = repo.apply()
    for i in range(len(conds)):
        got = (r["by_step"][f"p{i}"]["status"], r["by_step"][f"n{i}"]["status"])
        assert got == ("skipped", "succeeded"), conds[i]


# --------------------------------------------------------------------------- plans settle


def test_a_steps_own_outputs_are_never_its_inputs(repo: Repo) -> None:
    repo.write("site/page.md", "# hi\n")
    repo.write("dist/a.txt", "a\n")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: render
      run: cat site/*.md > site/index.html
      inputs: ["site/**"]
      outputs: [site/index.html]
    - name: pack
      run: tar cf dist/pack.tar dist/a.txt
      inputs: [dist/]
      outputs: [dist/pack.tar]
""",
        ),
    )
    settled(repo)
    assert repo.apply()["ran"] == []
    repo.write("site/page.md", "# changed\n")
    assert repo.plan()[("w", "render")] == ("run", ["input changed: site/page.md"])
    settled(repo)


def test_a_step_skipped_by_when_settles(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: deploy
      run: echo shipped > shipped.txt
      when: "{{ params.deploy }}"
      outputs: [shipped.txt]
""",
            "  params: {deploy: false}\n",
        ),
    )
    assert repo.apply()["by_step"]["deploy"]["status"] == "skipped"
    assert repo.plan()[("w", "deploy")] == ("up-to-date", [])
    assert repo.orch("plan", "--check").returncode == 0
    repo.write("wf.yaml", repo.read("wf.yaml").replace("deploy: false", "deploy: true"))
    assert repo.plan()[("w", "deploy")][0] == "run"
    assert repo.apply()["by_step"]["deploy"]["status"] == "succeeded"
    assert repo.read("shipped.txt") == "shipped\n"


def test_a_blocked_step_keeps_its_last_good_record_and_early_cutoff_applies(repo: Repo) -> None:
    repo.write("src.txt", "v1\n")
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: build
      run: test ! -e broken && cp src.txt built.txt
      inputs: [src.txt]
      outputs: [built.txt]
    - name: test
      run: cat built.txt >> tested.log
      inputs: [built.txt]
""",
        ),
    )
    settled(repo)
    repo.write("broken", "")
    repo.write("src.txt", "v2\n")
    r = repo.apply()
    assert r["by_step"]["build"]["status"] == "failed"
    assert r["by_step"]["test"]["status"] == "blocked"
    # the fix puts everything back as it was: build re-runs, test is cut off
    (repo.path / "broken").unlink()
    repo.write("src.txt", "v1\n")
    plan = repo.plan()
    assert plan[("w", "build")][0] == "run"
    assert plan[("w", "test")][0] == "may-run"
    r = repo.apply()
    assert r["by_step"]["build"]["status"] == "succeeded"
    assert r["by_step"]["test"]["status"] == "up-to-date"
    assert repo.read("tested.log") == "v1\n"


# --------------------------------------------------------------------------- across workflows


def test_files_written_by_one_workflow_and_read_by_another_leave_nothing_stale(
    repo: Repo,
) -> None:
    repo.write("src.txt", "v1\n")
    repo.write(
        "a.yaml",
        workflow(
            "a",
            "    - name: gen\n"
            "      run: sleep 0.3; mkdir -p gen; cp src.txt gen/data.txt\n"
            "      inputs: [src.txt]\n"
            "      outputs: [gen/data.txt]\n",
        ),
    )
    repo.write(
        "b.yaml",
        workflow(
            "b",
            "    - name: use\n"
            "      run: cat gen/data.txt > used.txt\n"
            "      inputs: [gen/data.txt]\n"
            "      outputs: [used.txt]\n"
            "    - name: after\n"
            "      run: cp used.txt final.txt\n"
            "      inputs: [used.txt]\n"
            "      outputs: [final.txt]\n",
        ),
    )
    repo.write("gen/data.txt", "old\n")  # a stale copy the reader must not settle on
    settled(repo)
    assert repo.read("final.txt") == "v1\n"
    repo.write("src.txt", "v2\n")
    plan = repo.plan()
    assert plan[("a", "gen")][0] == "run"
    assert plan[("b", "use")] == ("may-run", ["upstream will run: a/gen"])
    settled(repo)
    assert repo.read("final.txt") == "v2\n"
    # the producer failing blocks the reader in the other workflow
    repo.write("a.yaml", repo.read("a.yaml").replace("sleep 0.3;", "false;"))
    repo.write("src.txt", "v3\n")
    r = repo.apply()
    assert r["by_step"]["gen"]["status"] == "failed"
    assert r["by_step"]["use"]["status"] == "blocked"
    assert repo.read("final.txt") == "v2\n"
