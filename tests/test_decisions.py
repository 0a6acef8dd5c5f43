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
    assert '"definition changed (environ)"' in p.stdout
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
