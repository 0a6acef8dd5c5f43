"""Fan-out at its edges: odd names, odd values, and what a bad dynamic list must not break."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

DYNAMIC = workflow(
    "dyn",
    """\
    - name: list
      run: echo "files=$(cat list.json)" >> "$ORCH_OUTPUT"
      inputs: [list.json]
    - name: each
      foreach: "{{ steps.list.outputs.files }}"
      run: echo "{{ item }}"
""",
)


def test_dynamic_list_with_duplicates_is_a_plan_error_that_leaves_status_and_logs_working(
    repo: Repo,
) -> None:
    repo.write("wf.yaml", DYNAMIC)
    repo.write("list.json", '["x", "y", "x"]\n')
    first = repo.orch("apply")
    assert first.returncode == 1 and "two instances named 'each[x]'" in first.stderr
    assert "internal error" not in first.stderr
    # the recorded state stays readable: the bad list is the source's output, not the manifest
    status = repo.orch("status", "--json")
    assert status.returncode == 0, status.stderr
    assert repo.orch("logs", "dyn", "list").returncode == 0
    assert repo.orch("graph", "dyn").returncode == 0
    p = repo.orch("plan")
    assert p.returncode == 1
    assert any(x.startswith("orch: wf.yaml:10:") and "each[x]" in x for x in p.stderr.splitlines())
    repo.write("list.json", '["x", "y"]\n')  # fixing the source's input lets it run again
    fixed = repo.apply()
    assert fixed["ok"] and {"each[x]", "each[y]", "list"} <= set(fixed["ran"])


def test_dynamic_list_over_the_limit_is_a_plan_error_not_a_load_error(repo: Repo) -> None:
    repo.write(
        ".orch/config.yaml",
        'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\nmax_instances: 2\n',
    )
    repo.write("wf.yaml", DYNAMIC)
    repo.write("list.json", '["a", "b", "c"]\n')
    first = repo.orch("apply")
    assert first.returncode == 1 and "more than the limit of 2" in first.stderr
    assert repo.orch("status", "--json").returncode == 0
    repo.write("list.json", '["a", "b"]\n')
    fixed = repo.apply()
    assert fixed["ok"] and {"each[a]", "each[b]"} <= set(fixed["ran"])


def test_foreach_over_files_with_glob_characters_names_each_file_literally(repo: Repo) -> None:
    # a file a[1].txt found by the glob is that file in inputs and outputs, never a pattern
    # (which would make the output a validation error and the input match a1.txt)
    for name in ("a[1].txt", "a1.txt", "b*.txt", "c d.txt"):
        repo.write(f"books/{name}", name + "\n")
    repo.write(
        "wf.yaml",
        workflow(
            "g",
            """\
    - name: count
      foreach: "books/*.txt"
      run: mkdir -p counts && cp {{ item.path }} counts/{{ item.stem }}.n
      inputs: ["{{ item.path }}"]
      outputs: ["counts/{{ item.stem }}.n"]
    - name: upper
      foreach: "books/*.txt"
      run: mkdir -p up && tr a-z A-Z < {{ item.path }} > up/{{ item.stem | upper }}.n
      inputs: ["{{ item.path | string }}"]
      outputs: ["up/{{ item.stem | upper }}.n"]
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 0, p.stderr
    first = repo.apply()
    assert first["ok"], first
    assert repo.read("counts/a[1].n") == "a[1].txt\n" and repo.read("up/B*.n") == "B*.TXT\n"
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}
    # an edit to a1.txt re-runs its own instances, not a[1].txt's (which a glob would match)
    repo.write("books/a1.txt", "changed\n")
    assert repo.apply()["ran"] == ["count[books/a1.txt]", "upper[books/a1.txt]"]
    (repo.path / "counts/a[1].n").unlink()
    assert repo.apply()["ran"] == ["count[books/a[1].txt]"]


WAITERS = workflow(
    "dyn",
    """\
    - name: prep
      run: cp seed.txt prep.txt
      inputs: [seed.txt]
      outputs: [prep.txt]
    - name: list
      run: echo "files=$(cat list.json)" >> "$ORCH_OUTPUT"
      inputs: [list.json, prep.txt]
    - name: each
      foreach: "{{ steps.list.outputs.files }}"
      run: echo "{{ item }}"
    - name: gather
      needs: [each]
      run: echo 'G{{ steps.each.instances | length }}' >> g.txt
    - name: reader
      run: echo '{{ params.tag }}{{ steps.each.instances | length }}' >> r.txt
""",
    "  params: {tag: R}\n",
)


def test_readers_of_pending_instances_run_once_with_the_new_list(repo: Repo) -> None:
    # needs: [each] or reading steps.each.instances waits for the source's round: they
    # ran once with the old (empty) list and again with the new one
    repo.write("wf.yaml", WAITERS)
    repo.write("seed.txt", "s\n")
    repo.write("list.json", '["a", "b"]\n')
    graph = repo.orch("graph", "dyn").stdout
    assert "reader  <- list (template)" in graph, graph
    assert repo.apply()["ok"]
    assert repo.read("g.txt") == "G2\n" and repo.read("r.txt") == "R2\n"
    repo.write("list.json", '["a", "b", "c"]\n')
    grown = repo.apply()
    assert grown["ok"] and grown["by_step"]["reader"]["status"] == "succeeded"
    assert repo.read("g.txt") == "G2\nG3\n" and repo.read("r.txt") == "R2\nR3\n"


def test_a_waiting_reader_still_runs_when_its_source_is_cut_off_early(repo: Repo) -> None:
    repo.write("wf.yaml", WAITERS)
    repo.write("seed.txt", "s\n")
    repo.write("list.json", '["a"]\n')
    assert repo.apply()["ok"]
    # prep re-runs (its input's bytes changed back and forth: same output), so list may
    # run and is then up to date; reader's own definition changed: it must run
    repo.write("seed.txt", "s\n\n")
    repo.write("wf.yaml", WAITERS.replace("cp seed.txt prep.txt", "head -1 seed.txt > prep.txt"))
    p = repo.orch("apply", "--param", "tag=Q")
    assert p.returncode == 0, p.stderr
    assert repo.read("r.txt") == "R1\nQ1\n"


def test_a_param_reaches_the_instances_a_dynamic_foreach_makes_in_the_same_apply(
    repo: Repo,
) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "dyn",
            """\
    - name: list
      run: echo 'files=["a"]' >> "$ORCH_OUTPUT"
    - name: each
      foreach: "{{ steps.list.outputs.files }}"
      run: echo "{{ params.tag }}-{{ item }}" > "out-{{ item }}.txt"
      outputs: ["out-{{ item }}.txt"]
""",
            "  params: {tag: manifest}\n",
        ),
    )
    p = repo.orch("apply", "--param", "tag=cli")
    assert p.returncode == 0, p.stderr
    assert repo.read("out-a.txt") == "cli-a\n"


def test_apply_json_lists_the_instances_whose_records_it_dropped(repo: Repo) -> None:
    repo.write("in/a.txt", "a\n")
    repo.write("in/b.txt", "b\n")
    repo.write("wf.yaml", workflow("r", '    - {name: f, foreach: "in/*.txt", run: "true"}\n'))
    assert repo.apply()["removed"] == []
    (repo.path / "in/b.txt").unlink()
    assert repo.apply()["removed"] == [{"workflow": "r", "step": "f[in/b.txt]"}]
    assert repo.apply()["removed"] == []


def test_a_concurrency_1_quota_admits_one_instance_at_a_time(repo: Repo) -> None:
    # instances are steps to the quotas: three of one matrix under concurrency 1 never
    # overlap, by the task times the state recorded, though -j 4 would allow it
    repo.write(
        "q.yaml",
        "apiVersion: orch/v1\nkind: ResourceQuota\nmetadata: {name: one}\n"
        "spec: {limits: {concurrency: 1}}\n",
    )
    repo.write(
        "wf.yaml",
        workflow(
            "serial",
            '    - {name: m, matrix: {n: [1, 2, 3]}, run: "sleep 0.2"}\n'
            '    - {name: free, run: "sleep 0.2", needs: [m]}\n',
            "  quota: one\n",
        ),
    )
    p = repo.orch("apply", "-j", "4")
    assert p.returncode == 0, p.stderr
    tasks = repo.orch_json("history")[0]["tasks"]
    spans = sorted((t["started"], t["ended"]) for t in tasks if t["step"].startswith("m["))
    assert sorted(t["step"] for t in tasks if t["step"].startswith("m[")) == [
        "m[n=1]", "m[n=2]", "m[n=3]",
    ]  # fmt: skip
    assert all(start >= end for (_, end), (start, _) in zip(spans, spans[1:], strict=False)), spans


def test_a_matrix_exclude_key_the_matrix_lacks_is_an_error(repo: Repo) -> None:
    # as GitHub Actions refuses it: a misspelt key would silently exclude nothing
    repo.write(
        "wf.yaml",
        workflow(
            "mx",
            """\
    - name: b
      matrix: {os: [l, m], exclude: [{oss: l}]}
      run: echo {{ matrix.os }}
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [x for x in p.stderr.splitlines() if "oss" in x]
    assert len(lines) == 1 and lines[0].startswith("wf.yaml:7:"), p.stderr
    assert "did you mean 'os'?" in lines[0]


def test_graph_shows_a_dynamic_foreach_before_its_source_has_run(repo: Repo) -> None:
    repo.write("wf.yaml", DYNAMIC)
    repo.write("list.json", '["a"]\n')
    text = repo.orch("graph", "dyn").stdout.splitlines()
    assert text[1:3] == ["  list", "  each[*]  instances known once list has run"], text
    dot = repo.orch("graph", "dyn", "--format", "dot").stdout
    assert '"list" -> "each[*]" [style=dashed];' in dot
    mermaid = repo.orch("graph", "dyn", "--format", "mermaid").stdout
    assert '["each[*]"]' in mermaid
    assert repo.apply()["ok"]
    after = repo.orch("graph", "dyn").stdout
    assert "each[*]" not in after and "each[a]" in after


def test_an_item_starting_with_bang_is_an_output_not_an_exclusion(repo: Repo) -> None:
    # "{{ item.name }}.out" for the file !x.txt is the output !x.txt.out, never "!..." read
    # as an exclusion (which made the step's only output count for nothing)
    repo.write("books/!x.txt", "x\n")
    repo.write("books/a[1].txt", "a\n")
    repo.write(
        "wf.yaml",
        workflow(
            "t",
            """\
    - name: c
      foreach: "books/*.txt"
      run: cp {{ item.path }} {{ item.name }}.out
      inputs: ["{{ item.path }}"]
      outputs: ["{{ item.name }}.out"]
""",
        ),
    )
    assert repo.apply()["ok"]
    (repo.path / "!x.txt.out").unlink()
    (repo.path / "a[1].txt.out").unlink()
    plan = repo.plan()
    assert plan[("t", "c[books/!x.txt]")] == ("run", ["output missing: !x.txt.out"])
    assert plan[("t", "c[books/a[1].txt]")] == ("run", ["output missing: a[1].txt.out"])
    assert repo.apply()["ran"] == ["c[books/!x.txt]", "c[books/a[1].txt]"]


def test_forcing_a_step_that_waits_for_pending_instances_still_runs_it(repo: Repo) -> None:
    repo.write("wf.yaml", WAITERS)
    repo.write("seed.txt", "s\n")
    repo.write("list.json", '["a"]\n')
    first = repo.orch("apply", "--force", "each")  # no instance yet: forces none, no error
    assert first.returncode == 0, first.stderr
    assert repo.read("r.txt") == "R1\n"
    repo.write("list.json", '["a"]\n\n')  # list runs, with the same output: reader is up to date
    forced = repo.apply("--force", "reader")
    assert forced["by_step"]["reader"]["status"] == "succeeded", forced
    assert repo.read("r.txt") == "R1\nR1\n"
    repo.write("list.json", '["a"]\n\n\n')
    everything = repo.apply("--force-all")
    assert everything["by_step"]["reader"]["status"] == "succeeded"
    assert repo.read("r.txt") == "R1\nR1\nR1\n"


def test_a_template_in_a_written_matrix_or_foreach_value_is_an_error(repo: Repo) -> None:
    # values are data, as with: values are: "{{ params.x }}" ran as that literal text
    repo.write(
        "wf.yaml",
        workflow(
            "t",
            """\
    - {name: a, foreach: ["{{ params.x }}", plain], run: "echo {{ item }}"}
    - name: m
      matrix: {k: [b, "{{ params.x }}"], include: [{k: b, z: "{% if 1 %}x{% endif %}"}]}
      run: echo {{ matrix.k }}
""",
            "  params: {x: 1}\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [x for x in p.stderr.splitlines() if "data, not templates" in x]
    assert [x.split(": ")[0:2] for x in lines] == [
        ["wf.yaml:7:27", "spec.steps[0].foreach[0]"],
        ["wf.yaml:9:23", "spec.steps[1].matrix.k[1]"],
        ["wf.yaml:9:62", "spec.steps[1].matrix.include[0].z"],
    ], p.stderr


def test_a_reader_of_a_skipped_sources_instances_settles_at_once(repo: Repo) -> None:
    # a source that never succeeds (when: false) makes no instances; its readers are
    # skipped with it (the rule for dependants of a skipped step, as GitHub Actions), not
    # held for a round that never comes (each apply made 9 runs)
    repo.write(
        "wf.yaml",
        workflow(
            "t",
            """\
    - {name: list, when: false, run: "echo 'files=[1]' >> $ORCH_OUTPUT"}
    - {name: each, foreach: "{{ steps.list.outputs.files }}", run: "echo {{ item }}"}
    - {name: reader, run: "echo N{{ steps.each.instances | length }} >> n.txt"}
""",
        ),
    )
    first = repo.apply()
    assert first["ok"] and first["by_step"]["reader"]["status"] == "skipped", first
    assert not (repo.path / "n.txt").exists()
    again = repo.apply()
    assert again["run_id"] is None and again["ran"] == [], again
    assert len(repo.orch_json("history")) <= 2


def test_a_matrix_whose_keys_are_all_refused_is_not_also_called_empty(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "mx",
            """\
    - {name: g, matrix: {"k=v": [1]}, run: echo hi}
    - {name: e, matrix: {}, run: echo hi}
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = [x for x in p.stderr.splitlines() if not x.startswith("orch: ")]
    assert len(lines) == 2, p.stderr
    assert "'k=v'" in lines[0] and "spec.steps[0].matrix" in lines[0]
    assert "the matrix of step 'e' is empty" in lines[1]


SPLIT = workflow(
    "f",
    """\
    - name: split
      run: rm -rf parts && mkdir -p parts && for i in $(seq 1 {{ params.n }}); do echo "part $i" > parts/p$i.txt; done
      outputs: [parts/]
    - name: each
      foreach: "parts/*.txt"
      run: mkdir -p done && tr a-z A-Z < {{ item.path }} > done/{{ item.stem }}.txt
      inputs: ["{{ item.path }}"]
      outputs: ["done/{{ item.stem }}.txt"]
""",
    "  params: {n: 2}\n",
)


def test_a_foreach_glob_whose_source_runs_waits_for_it_when_the_source_shrinks(
    repo: Repo,
) -> None:
    # the instances found before split runs are not started: p3.txt is gone once it has
    repo.write("wf.yaml", SPLIT)
    assert repo.orch("apply", "--param", "n=3").returncode == 0
    plan = repo.orch("plan", "--param", "n=2").stdout
    assert "each[parts/p3.txt]  may run: instances known once split has run" in plan, plan
    p = repo.orch("apply", "--param", "n=2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "p3.txt" not in p.stdout.replace("removed", ""), p.stdout


def test_a_foreach_glob_whose_source_grows_runs_the_new_instances_in_the_same_apply(
    repo: Repo,
) -> None:
    repo.write("wf.yaml", SPLIT)
    p = repo.orch("apply")  # parts/ does not exist yet: the instances come after split
    assert p.returncode == 0, p.stdout + p.stderr
    assert repo.read("done/p2.txt") == "PART 2\n"
    assert repo.orch("apply", "--param", "n=3").returncode == 0
    assert repo.read("done/p3.txt") == "PART 3\n"
    assert "0 to run" in repo.orch("plan", "--param", "n=3").stdout


def test_a_foreach_glob_whose_source_restores_from_the_cache_runs_its_instances_after_it(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCH_NO_CACHE", raising=False)  # the suite runs without the cache
    shared = tmp_path / "cache"
    repo.write(
        ".orch/config.yaml", f"apiVersion: orch/v1\nkind: Config\ncache: {{dir: '{shared}'}}\n"
    )
    repo.write("wf.yaml", SPLIT)
    assert repo.orch("apply", "--param", "n=1").returncode == 0
    assert repo.orch("apply", "--param", "n=3").returncode == 0
    repo.write("done/p1.txt", "stale\n")  # each[parts/p1.txt]'s output changed: it re-runs
    res = repo.apply("--param", "n=1")  # split restores the n=1 result
    assert res["ok"], res
    by = {k: v["status"] for k, v in res["by_step"].items()}
    assert by["split"] == "restored", res["by_step"]["split"]
    assert "each[parts/p3.txt]" not in by, by
    assert by["each[parts/p1.txt]"] in ("succeeded", "restored"), by
    assert repo.read("done/p1.txt") == "PART 1\n"
