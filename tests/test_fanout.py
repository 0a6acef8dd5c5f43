"""Fan-out: ``matrix:`` and ``foreach:`` steps, their instances, through the real CLI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import Repo, workflow


def names(repo: Repo, *args: str) -> list[str]:
    return [s["step"] for s in repo.orch_json("plan", *args)["steps"]]


def errors(repo: Repo) -> list[str]:
    p = repo.orch("validate")
    assert p.returncode != 0
    return [x for x in p.stderr.splitlines() if not x.startswith("orch: ")]


def test_matrix_include_exclude_as_github_actions_defines_them(repo: Repo) -> None:
    # GitHub's documented example: an include entry extends every original combination
    # it does not contradict (overwriting only added values), else stands on its own
    repo.write(
        "wf.yaml",
        workflow(
            "m",
            """\
    - name: job
      matrix:
        fruit: [apple, pear]
        animal: [cat, dog]
        include:
          - color: green
          - color: pink
            animal: cat
          - fruit: apple
            shape: circle
          - fruit: banana
          - fruit: banana
            animal: cat
      run: echo "{{ matrix.fruit }} {{ matrix.animal | default('-') }} {{ matrix.color | default('-') }} {{ matrix.shape | default('-') }}"
""",
        ),
    )
    assert names(repo) == [
        "job[fruit=apple,animal=cat,color=pink,shape=circle]",
        "job[fruit=apple,animal=dog,color=green,shape=circle]",
        "job[fruit=pear,animal=cat,color=pink]",
        "job[fruit=pear,animal=dog,color=green]",
        "job[fruit=banana]",
        "job[fruit=banana,animal=cat]",
    ]
    p = repo.orch("apply")
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert "apple cat pink circle" in out
    assert "pear dog green -" in out
    assert "banana cat - -" in out


def test_matrix_exclude_matches_on_the_entry_keys_only(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "m",
            """\
    - name: t
      matrix:
        os: [linux, mac]
        py: [3.11, 3.12]
        exclude: [{os: mac}, {os: linux, py: 3.12}]
      run: echo {{ matrix.os }}-{{ matrix.py }}
""",
        ),
    )
    assert names(repo) == ["t[os=linux,py=3.11]"]


def _counting(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "wc",
            """\
    - name: count
      foreach: "books/*.txt"
      run: mkdir -p out && wc -w < {{ item.path }} > out/{{ item.stem }}.n
      inputs: ["{{ item.path }}"]
      outputs: ["out/{{ item.stem }}.n"]
    - name: total
      needs: [count]
      run: |
        echo '{{ steps.count.instances | map(attribute="item") | map(attribute="name") | join(",") }}' > total.txt
      outputs: [total.txt]
    - name: other
      run: echo other
""",
        ),
    )
    repo.write("books/a.txt", "one two\n")
    repo.write("books/b.txt", "three\n")


def test_foreach_glob_adding_a_file_runs_one_instance_and_its_dependants(repo: Repo) -> None:
    _counting(repo)
    first = repo.apply()
    assert first["ok"]
    assert first["ran"] == ["count[books/a.txt]", "count[books/b.txt]", "other", "total"]
    assert repo.read("total.txt").strip() == "a.txt,b.txt"
    assert repo.read("out/a.n").strip() == "2"
    assert repo.plan()[("wc", "total")][0] == "up-to-date"  # the no-op path

    repo.write("books/c.txt", "four five six\n")
    plan = repo.plan()
    assert plan[("wc", "count[books/c.txt]")] == ("run", ["never ran"])
    again = repo.apply()
    assert again["ran"] == ["count[books/c.txt]", "total"]
    assert repo.read("total.txt").strip() == "a.txt,b.txt,c.txt"


def test_foreach_removing_a_file_drops_its_record_and_reruns_readers(repo: Repo) -> None:
    _counting(repo)
    assert repo.apply()["ok"]
    (repo.path / "books" / "a.txt").unlink()
    data = repo.orch_json("plan")
    assert data["removed"] == [{"workflow": "wc", "step": "count[books/a.txt]"}]
    assert "count[books/a.txt]" not in [s["step"] for s in data["steps"]]
    text = repo.orch("plan").stdout
    assert "count[books/a.txt]  removed" in text
    again = repo.apply()
    assert again["ran"] == ["total"]
    assert repo.read("total.txt").strip() == "b.txt"
    after = repo.orch_json("plan")
    assert after["removed"] == []
    assert {s["action"] for s in after["steps"]} == {"up-to-date"}
    status = repo.orch_json("status")
    assert "count[books/a.txt]" not in [s["step"] for s in status["steps"]]
    assert "count[books/b.txt]" in [s["step"] for s in status["steps"]]


def test_foreach_renaming_a_file_is_one_instance_gone_and_one_new(repo: Repo) -> None:
    _counting(repo)
    assert repo.apply()["ok"]
    (repo.path / "books" / "b.txt").rename(repo.path / "books" / "z.txt")
    data = repo.orch_json("plan")
    assert data["removed"] == [{"workflow": "wc", "step": "count[books/b.txt]"}]
    again = repo.apply()
    assert again["ran"] == ["count[books/z.txt]", "total"]


def test_force_one_instance_or_all_and_logs_of_an_instance(repo: Repo) -> None:
    _counting(repo)
    assert repo.apply()["ok"]
    one = repo.apply("--force", "count[books/a.txt]")
    assert one["ran"] == ["count[books/a.txt]"]  # same output: total is cut off early
    both = repo.apply("--force", "wc/count")
    assert both["ran"] == ["count[books/a.txt]", "count[books/b.txt]"]
    qualified = repo.apply("--force", "wc/count[books/b.txt]")
    assert qualified["ran"] == ["count[books/b.txt]"]
    bad = repo.orch("apply", "--force", "count[books/nope.txt]")
    assert bad.returncode != 0 and "--force count[books/nope.txt]" in bad.stderr

    log = repo.orch("logs", "wc", "count[books/a.txt]")
    assert log.returncode == 0, log.stderr
    assert "books/a.txt" in log.stdout
    # the name's "/" never makes a folder under .orch/logs
    files = [p for p in (repo.path / ".orch" / "logs").rglob("*") if p.is_file()]
    assert files and all(p.parent.name == "wc" for p in files)
    group = repo.orch("logs", "wc", "count")
    assert group.returncode != 0 and "count[books/a.txt]" in group.stderr


def test_instances_in_status_and_junit(repo: Repo) -> None:
    _counting(repo)
    p = repo.orch("apply", "--junit", "junit.xml")
    assert p.returncode == 0, p.stderr
    cases = [c.get("name") for c in ET.parse(repo.path / "junit.xml").getroot().iter("testcase")]
    assert "count[books/a.txt]" in cases and "count[books/b.txt]" in cases
    text = repo.orch("status").stdout
    assert "count[books/a.txt]" in text


def test_a_failing_instance_blocks_only_its_dependants(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "f",
            """\
    - name: t
      foreach: [good, bad]
      run: test {{ item }} = good
    - name: all
      needs: [t]
      run: echo all
    - name: apart
      run: echo apart
""",
        ),
    )
    res = repo.apply()
    assert not res["ok"]
    st = {k: v["status"] for k, v in res["by_step"].items()}
    assert st["t[good]"] == "succeeded"
    assert st["t[bad]"] == "failed"
    assert st["apart"] == "succeeded"
    assert st["all"] != "succeeded"


def test_instance_fingerprints_are_their_own(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "v",
            """\
    - name: t
      matrix: {n: [1, 2]}
      run: echo {{ matrix.n }}
""",
        ),
    )
    assert repo.apply()["ran"] == ["t[n=1]", "t[n=2]"]
    repo.write(
        "wf.yaml",
        workflow(
            "v",
            """\
    - name: t
      matrix: {n: [1, 2, 3]}
      run: echo {{ matrix.n }}
""",
        ),
    )
    assert repo.apply()["ran"] == ["t[n=3]"]


def test_bad_fan_outs_are_positioned_errors(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "bad",
            """\
    - name: empty
      matrix: {os: []}
      run: echo
    - name: both
      matrix: {a: [1]}
      foreach: [x]
      run: echo
    - name: dup
      foreach: [a, b, a]
      run: echo {{ item }}
    - name: big
      matrix: {a: [1, 2, 3], b: [1, 2]}
      run: echo
    - name: fine
      foreach: [x, y]
      run: echo {{ item }}
    - name: reader
      run: echo {{ steps.fine.outputs.x }}
    - name: plain
      run: echo {{ matrix.a }}
    - name: key
      matrix: {os: [linux]}
      run: echo {{ matrix.oss }}
""",
        ),
    )
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nmax_instances: 5\n")
    errs = errors(repo)
    text = "\n".join(errs)
    assert "wf.yaml:7:" in text and "the matrix of step 'empty' is empty" in text
    assert "step 'both' has both matrix and foreach" in text
    assert "two instances named 'dup[a]'" in text
    assert "makes 6 combinations, more than the limit of 5" in text and "max_instances" in text
    assert "steps.fine.outputs is not defined" in text and "steps.fine.instances" in text
    assert "'matrix' is only defined in a step with matrix:" in text
    assert "matrix key 'oss'" in text and "did you mean 'os'" in text
    assert all(e.startswith("wf.yaml:") for e in errs), errs
    assert not (repo.path / ".orch" / "state.db").exists()


def test_default_limit_is_ten_thousand(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "big",
            """\
    - name: t
      matrix: {a: [0,1,2,3,4,5,6,7,8,9,10], b: [0,1,2,3,4,5,6,7,8,9], c: [0,1,2,3,4,5,6,7,8,9], d: [0,1,2,3,4,5,6,7,8,9]}
      run: echo
""",
        ),
    )
    text = "\n".join(errors(repo))
    assert "makes 11000 combinations, more than the limit of 10000" in text


def test_watch_reloads_when_a_file_a_foreach_glob_matches_comes_or_goes(repo: Repo) -> None:
    from runner.manifests.load import load
    from runner.watch.loop import MANIFEST, EventFilter, Hit

    _counting(repo)
    m = load(repo.path)
    f = EventFilter(m.config, m, list(m.workflows.values()))
    assert f.classify("books/new.txt") == Hit(MANIFEST)  # a new instance: reload
    assert f.classify("books/a.txt") == Hit(MANIFEST)
    assert f.classify("books/notes.md") is None


def test_graph_groups_instances_under_their_step(repo: Repo) -> None:
    _counting(repo)
    text = repo.orch("graph", "wc").stdout.splitlines()
    at = text.index("  count (2 instances)")
    assert text[at + 1].strip() == "count[books/a.txt]"
    assert text[at + 2].strip() == "count[books/b.txt]"
    assert any(x.strip().startswith("total") and "count[*] (needs+template)" in x for x in text)
    dot = repo.orch("graph", "wc", "--format", "dot").stdout
    cluster = dot[dot.index('subgraph "cluster_1"') : dot.index("}", dot.index("cluster_1"))]
    assert 'label="count"' in cluster and '"count[books/a.txt]"' in cluster
    assert '"other"' not in cluster and '"total"' not in cluster
    mermaid = repo.orch("graph", "wc", "--format", "mermaid").stdout.splitlines()
    start = mermaid.index('  subgraph g1["count"]')
    end = mermaid.index("  end", start)
    members = [x.split('"')[1] for x in mermaid[start + 1 : end]]
    assert members == ["count[books/a.txt]", "count[books/b.txt]"]


def test_word_counts_example_adding_a_book_runs_one_count_each_summary_and_the_report(
    repo: Repo,
) -> None:
    import shutil

    example = Path(__file__).resolve().parents[1] / "examples" / "word-counts"
    shutil.copytree(example, repo.path, dirs_exist_ok=True, ignore=_generated)
    repo.commit()
    assert repo.orch("validate").returncode == 0
    first = repo.apply()
    assert first["ok"], first
    assert len(first["ran"]) == 6
    assert "| **all 3 books** | **200** |" in repo.read("report.md")
    assert repo.apply()["ran"] == []

    repo.write("books/meadow.txt", "Grass and more grass, and a lark above the grass.\n")
    ran = repo.apply()["ran"]
    assert ran == [
        "count[books/meadow.txt]",
        "report",
        "summary[view=all,top=10,min_length=1]",
        "summary[view=long,top=5,min_length=5]",
    ]
    report = repo.read("report.md")
    assert "| meadow | 10 |" in report and "| **all 4 books** | **210** |" in report


def _generated(folder: str, names: list[str]) -> list[str]:
    return [
        n
        for n in names
        if n in ("counts", "summaries", "report.md", "__pycache__", "cache")
        or n.startswith(("state.", "fingerprint.", "locks", "logs"))
    ]


def test_foreach_in_a_sub_folder_manifest_reads_paths_from_there(repo: Repo) -> None:
    repo.write(
        "lib/wf.yaml",
        workflow(
            "sub",
            """\
    - name: show
      foreach: "data/**/*.csv"
      run: echo "{{ item.path }}|{{ item.name }}|{{ item.stem }}|{{ item.dir }}" > "out-{{ item.stem }}.txt"
      inputs: ["{{ item.path }}"]
      outputs: ["out-{{ item.stem }}.txt"]
""",
        ),
    )
    repo.write("lib/data/x.csv", "1\n")
    repo.write("lib/data/deep/it's here.csv", "2\n")
    repo.write("data/outside.csv", "3\n")  # beside the repository root: not under lib/
    assert names(repo) == ["show[data/deep/it's here.csv]", "show[data/x.csv]"]
    assert repo.apply()["ok"]
    assert repo.read("lib/out-x.txt") == "data/x.csv|x.csv|x|data\n"
    assert (
        repo.read("lib/out-it's here.txt")
        == "data/deep/it's here.csv|it's here.csv|it's here|data/deep\n"
    )


def test_foreach_glob_leaving_the_repository_is_a_positioned_error(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "esc",
            """\
    - name: t
      foreach: "../*.txt"
      run: echo {{ item.path }}
    - name: u
      foreach: "x[.txt"
      run: echo
""",
        ),
    )
    errs = errors(repo)
    assert any(e.startswith("wf.yaml:7:") and "escapes the repository" in e for e in errs), errs
    assert any(e.startswith("wf.yaml:10:") and "bad glob" in e for e in errs), errs


DYNAMIC = workflow(
    "dyn",
    """\
    - name: list
      run: echo "files=$(cat list.json)" >> "$ORCH_OUTPUT"
      inputs: [list.json]
    - name: each
      foreach: "{{ steps.list.outputs.files }}"
      run: echo "{{ item }}" > "out-{{ item }}.txt"
      outputs: ["out-{{ item }}.txt"]
    - name: gather
      needs: [each]
      run: echo '{{ steps.each.instances | map(attribute="item") | join(",") }}' > all.txt
      outputs: [all.txt]
""",
)


def test_dynamic_foreach_grows_and_shrinks_with_its_source_in_one_apply(repo: Repo) -> None:
    repo.write("wf.yaml", DYNAMIC)
    repo.write("list.json", '["a", "b"]\n')
    data = repo.orch_json("plan")
    assert data["pending"] == [{"workflow": "dyn", "step": "each", "after": "list"}]
    assert "dyn/each[*]  instances known once list has run" in repo.orch("plan").stdout
    first = repo.apply()
    assert first["ok"], first
    assert first["ran"] == ["each[a]", "each[b]", "gather", "list"]
    assert repo.read("all.txt") == "a,b\n"
    after = repo.orch_json("plan")
    assert after["pending"] == [] and {s["action"] for s in after["steps"]} == {"up-to-date"}

    repo.write("list.json", '["a", "b", "c"]\n')
    grown = repo.apply()
    assert [s for s in grown["ran"] if s.startswith("each")] == ["each[c]"]
    assert repo.read("all.txt") == "a,b,c\n"

    repo.write("list.json", '["c"]\n')
    shrunk = repo.apply()
    assert shrunk["ok"]
    assert not [s for s in shrunk["ran"] if s.startswith("each")]
    assert repo.read("all.txt") == "c\n"
    final = repo.orch_json("plan")
    assert [s["step"] for s in final["steps"]] == ["list", "each[c]", "gather"]
    assert final["removed"] == []


def test_dynamic_foreach_over_a_non_list_is_a_clear_error_until_fixed(repo: Repo) -> None:
    repo.write("wf.yaml", DYNAMIC)
    repo.write("list.json", '{"not": "a list"}\n')
    first = repo.orch("apply")  # list runs; then its value cannot be fanned out over
    assert first.returncode != 0 and "not a JSON list" in first.stderr
    assert "internal error" not in first.stderr
    status = {s["step"]: s["status"] for s in repo.orch_json("status")["steps"]}
    assert status["list"] == "succeeded"
    p = repo.orch("plan")
    assert p.returncode != 0
    line = [x for x in p.stderr.splitlines() if "not a JSON list" in x]
    assert (
        line and line[0].startswith("orch: wf.yaml:10:") and "steps.list.outputs.files" in line[0]
    )
    assert "internal error" not in p.stderr
    repo.write("list.json", '["x"]\n')  # fixing the source's input lets it run again
    fixed = repo.apply()
    assert fixed["ok"] and "each[x]" in fixed["ran"]
    assert repo.read("all.txt") == "x\n"


def test_a_foreach_template_must_name_one_upstream_output(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "dyn",
            """\
    - name: list
      run: "true"
    - name: each
      foreach: "{{ steps.list.outputs.files | reverse }}"
      run: echo {{ item }}
    - name: self
      foreach: "{{ steps.self.outputs.files }}"
      run: echo {{ item }}
""",
        ),
    )
    errs = errors(repo)
    assert any(e.startswith("wf.yaml:9:") and "must read one upstream output" in e for e in errs)
    assert any(e.startswith("wf.yaml:12:") and "its own outputs" in e for e in errs), errs


def test_foreach_glob_follows_links_as_inputs_do(repo: Repo, tmp_path: Path) -> None:
    import os

    _counting(repo)
    os.symlink("a.txt", repo.path / "books" / "alias.txt")  # inside: one more instance
    assert "count[books/alias.txt]" in names(repo)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.txt").write_text("x\n")
    os.symlink(outside, repo.path / "books" / "more")
    repo.write(
        "wf2.yaml", workflow("deep", '    - {name: t, foreach: "books/**/*.txt", run: "true"}\n')
    )
    errs = errors(repo)
    assert any(e.startswith("wf2.yaml:6:") and "outside the repository" in e for e in errs), errs


def test_instance_paths_written_out_or_rendered_name_the_same_files(repo: Repo) -> None:
    # {{ item.stem }} alone is written out at load; with a filter or a param it is rendered
    repo.write(
        "wf.yaml",
        workflow(
            "p",
            """\
    - name: t
      matrix: {n: [1, 2], w: [x]}
      run: echo {{ matrix.n }} > o-{{ matrix.n }}-{{ matrix.w | upper }}-{{ params.s }}.txt && echo {{ matrix.n }} > p{{ matrix.n }}.txt
      outputs: ["o-{{ matrix.n }}-{{ matrix.w | upper }}-{{ params.s }}.txt", "p{{ matrix.n }}.txt"]
""",
            "  params: {s: S}\n",
        ),
    )
    assert repo.apply()["ok"]
    assert repo.read("o-2-X-S.txt") == "2\n" and repo.read("p1.txt") == "1\n"
    assert {a for a, _ in repo.plan().values()} == {"up-to-date"}
    (repo.path / "p2.txt").unlink()  # a declared output gone: that instance, and only it
    assert repo.apply()["ran"] == ["t[n=2,w=x]"]
