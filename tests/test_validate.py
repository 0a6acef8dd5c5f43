"""`orch validate`, `orch graph`, `orch init` through the real CLI on real repositories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Repo, workflow

ROOT = Path(__file__).resolve().parents[1]

GOOD = workflow(
    "demo",
    """\
    - name: lint
      run: echo lint
      inputs: ["src/**/*.py"]
    - name: build
      needs: [lint]
      run: mkdir -p {{ params.outdir }} && echo "wheel=w" >> "$ORCH_OUTPUT"
      outputs: ["{{ params.outdir }}/"]
    - name: test
      run: echo {{ steps.build.outputs.wheel }}
      when: "{{ params.run_tests | default(true) }}"
""",
    "  params: {outdir: dist}\n",
)


def errors(p: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in p.stderr.splitlines() if not line.startswith("orch: ")]


def test_valid_repo_validates(repo: Repo) -> None:
    repo.write("wf.yaml", GOOD)
    p = repo.orch("validate", "--json")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["ok"] and data["workflows"] == ["demo"] and data["steps"] == 3


def test_every_problem_in_every_file_in_one_run_sorted(repo: Repo) -> None:
    repo.write(
        "a.yaml",
        workflow(
            "a",
            """\
    - name: build
      run: echo
      needs: [compile]
      retyr: {limit: 2}
""",
        ),
    )
    repo.write(
        "b.yaml",
        workflow(
            "b",
            """\
    - name: one
      run: echo {{ steps.tow.outputs.x }}
    - name: two
      run: echo
      timeout: 10 minutes
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    # a schema error does not hide the semantic problems of the same document
    assert errors(p) == [
        "a.yaml:8:15: spec.steps[0].needs[0]: no step named 'compile'",
        "a.yaml:9:7: spec.steps[0].retyr: unknown field 'retyr' (did you mean 'retry'?)",
        "b.yaml:7:12: spec.steps[0].run: no step named 'tow' (did you mean 'two'?)",
        "b.yaml:10:16: spec.steps[1].timeout: '10 minutes' is not a duration (use e.g. 500ms, 30s, 10m, 1h30m)",
    ]
    assert "Traceback" not in p.stderr


def test_semantic_checks_name_the_line_and_suggest(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: build
      run: echo {{ steps.tset.outputs.x }}
    - name: test
      run: echo {{ params.outdri }}
      needs: [biuld]
    - name: test
      run: echo
      inputs: ["../secret.txt"]
      outputs: [/etc/passwd]
""",
            "  quota: defualt\n  params: {outdir: d}\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    assert errors(p) == [
        "wf.yaml:5:10: spec.quota: no ResourceQuota named 'defualt' (define one, or remove spec.quota)",
        "wf.yaml:9:12: spec.steps[0].run: no step named 'tset' (did you mean 'test'?)",
        "wf.yaml:11:12: spec.steps[1].run: no param named 'outdri' (did you mean 'outdir'?)",
        "wf.yaml:12:15: spec.steps[1].needs[0]: no step named 'biuld' (did you mean 'build'?)",
        "wf.yaml:13:13: spec.steps[2].name: duplicate step name 'test' (first used by spec.steps[1])",
        "wf.yaml:15:16: spec.steps[2].inputs[0]: '../secret.txt' escapes the repository (keep paths inside the repository)",
        "wf.yaml:16:17: spec.steps[2].outputs[0]: '/etc/passwd' is an absolute path; write it relative to the manifest's folder (keep paths inside the repository)",
    ]


def test_every_cycle_of_a_workflow_is_named_at_once(repo: Repo) -> None:
    """Two cycles through one step, and one apart: three errors in one validate, each
    from its step declared first, so fixing one does not only then reveal the next."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - {name: a, run: x, needs: [b, c]}
    - {name: b, run: x, needs: [a]}
    - {name: c, run: x, needs: [a]}
    - {name: d, run: x, needs: [e]}
    - {name: e, run: x, needs: [d]}
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    assert [e.split(": ", 2)[2] for e in errors(p)] == [
        "cycle: a -> b -> a (remove one of these dependencies)",
        "cycle: a -> c -> a (remove one of these dependencies)",
        "cycle: d -> e -> d (remove one of these dependencies)",
    ]
    assert errors(p)[2].startswith("wf.yaml:9:")  # at d's name


def test_cycle_names_every_step(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - {name: a, run: x, needs: [c]}
    - {name: b, run: x, needs: [a]}
    - {name: c, run: x, needs: [b]}
    - {name: d, run: x}
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    assert errors(p) == [
        "wf.yaml:6:14: spec.steps[0].name: cycle: a -> b -> c -> a (remove one of these dependencies)"
    ]


def test_template_syntax_error_is_reported_at_the_field(repo: Repo) -> None:
    repo.write("wf.yaml", workflow("w", "    - name: a\n      run: echo {% if %}\n"))
    p = repo.orch("validate")
    assert p.returncode == 1
    (line,) = errors(p)
    assert line.startswith("wf.yaml:7:12: spec.steps[0].run: template error:")


def test_symlink_escaping_the_repo_is_refused(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo.path / "data").symlink_to(outside)
    repo.write(
        "wf.yaml", workflow("w", "    - name: a\n      run: echo\n      inputs: [data/x.csv]\n")
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    assert "leads outside the repository through a symlink" in p.stderr


def test_duplicate_workflow_names_across_files(repo: Repo) -> None:
    repo.write("a.yaml", workflow("same", "    - {name: a, run: x}\n"))
    repo.write("b.yaml", workflow("same", "    - {name: a, run: x}\n"))
    p = repo.orch("validate")
    assert errors(p) == [
        "b.yaml:3:18: metadata.name: duplicate workflow name 'same' (first defined at a.yaml:1)"
    ]


def test_unrelated_yaml_and_ignored_files_are_skipped(repo: Repo) -> None:
    repo.write("wf.yaml", GOOD)
    repo.write(".github/workflows/ci.yml", "on: [push]\njobs: {build: {runs-on: x}}\n")
    repo.write("docker-compose.yaml", "services: {}\n")
    repo.write("k8s.yaml", "apiVersion: apps/v1\nkind: Deployment\n")
    repo.write(".gitignore", "build/\n")
    repo.write("build/broken.yaml", "apiVersion: orch/v1\nkind: Workflow\n: : :\n")
    data = json.loads(repo.orch("validate", "--json").stdout)
    assert data["ok"] and data["files"] == 4  # wf, ci.yml, compose, k8s: read but not ours


def test_outside_git_every_file_but_dot_orch_is_read(tmp_path: Path) -> None:
    r = Repo(tmp_path / "plain")
    r.path.mkdir()
    r.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    r.write(".orch/stray.yaml", "apiVersion: orch/v1\nkind: Bogus\n")
    r.write("sub/wf.yaml", GOOD)
    data = json.loads(r.orch("validate", "--json").stdout)
    assert data["ok"] and data["workflows"] == ["demo"]


def test_config_limits_discovery_and_nested_repos_are_their_own(repo: Repo) -> None:
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\nmanifests: [ci/]\n")
    repo.write("ci/wf.yaml", GOOD)
    repo.write("other/wf.yaml", "apiVersion: orch/v1\nkind: Workflo\n")
    data = json.loads(repo.orch("validate", "--json").stdout)
    assert data["ok"] and data["workflows"] == ["demo"]
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    repo.write("other/.orch/config.yaml", "apiVersion: orch/v1\nkind: Config\n")
    data = json.loads(repo.orch("validate", "--json").stdout)
    assert data["ok"], data  # other/ is a repository of its own


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\xff\xfe\x00garbage", "not a text file (contains NUL bytes) (remove it or rename it)"),
        (b"a: 1\nb: \xe9\n", "not valid UTF-8 (save the file as UTF-8)"),
        (
            b"apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: x}\nmetadata: {name: y}\n"
            b"spec: {steps: [{name: a, run: x}]}\n",
            "yaml: duplicate key 'metadata' (first defined at line 3)",
        ),
    ],
)
def test_junk_named_yaml_gets_one_clear_line(repo: Repo, content: bytes, expected: str) -> None:
    (repo.path / "junk.yaml").write_bytes(content)
    p = repo.orch("validate")
    assert p.returncode == 1
    (line,) = errors(p)
    assert line.endswith(expected)
    assert "Traceback" not in p.stderr


def test_fifty_megabyte_manifest_is_refused_quickly(repo: Repo) -> None:
    with open(repo.path / "huge.yaml", "wb") as f:
        f.write(b"a: " + b"x" * (50 * 1024 * 1024) + b"\n")
    p = repo.orch("validate", timeout=20)
    assert p.returncode == 1
    assert (
        "huge.yaml: file is 50.0 MiB, over the 8 MiB limit for a manifest (split it into several files)"
        in p.stderr
    )


def test_schema_violations(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        """\
        apiVersion: orch/v2
        kind: Workflow
        metadata: {name: x}
        spec: {steps: []}
        ---
        apiVersion: orch/v1
        kind: ResourceQuota
        metadata: {name: q}
        spec: {limits: {memory: lots}}
        ---
        apiVersion: orch/v1
        kind: Project
        metadata: {name: "bad name"}
        spec: {lifecycle: deleted}
        """,
    )
    p = repo.orch("validate")
    assert errors(p) == [
        "wf.yaml:1:13: apiVersion: unsupported apiVersion 'orch/v2' (this orch reads orch/v1)",
        "wf.yaml:9:25: spec.limits.memory: 'lots' is not a quantity (use e.g. 2, 0.5, 500m, 512Mi, 2Gi)",
        "wf.yaml:13:18: metadata.name: 'bad name' is not a valid name (use letters, digits, '_' and '-', at most 100)",
        "wf.yaml:14:19: spec.lifecycle: 'deleted' is not allowed (use one of 'active', 'archived')",
    ]


def test_graph_formats(repo: Repo) -> None:
    repo.write("wf.yaml", GOOD)
    p = repo.orch("graph", "demo")
    assert p.returncode == 0
    assert p.stdout.splitlines()[1:] == [
        "  lint",
        "  build  <- lint (needs)",
        "  test   <- build (template)",
    ]
    dot = repo.orch("graph", "demo", "--format", "dot").stdout
    assert '"lint" -> "build"' in dot and '"build" -> "test"' in dot
    mer = repo.orch("graph", "demo", "--format", "mermaid").stdout
    assert mer.startswith("graph LR") and "s1 --> s2" in mer
    p = repo.orch("graph", "dmeo")
    assert p.returncode == 1 and "no workflow named 'dmeo' (did you mean 'demo'?)" in p.stderr


def test_graph_reduce_leaves_out_edges_a_longer_path_implies(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - {name: a, run: x}
    - {name: b, run: x, needs: [a]}
    - {name: c, run: x, needs: [a, b]}
    - {name: d, run: x, needs: [a, c]}
""",
        ),
    )
    full = repo.orch("graph", "w").stdout.splitlines()[1:]
    assert full[2:] == ["  c  <- a (needs), b (needs)", "  d  <- a (needs), c (needs)"]
    p = repo.orch("graph", "w", "--reduce")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1:] == [
        "  a",
        "  b  <- a (needs)",
        "  c  <- b (needs)",
        "  d  <- c (needs)",
    ]
    ups = {
        s["name"]: [u["step"] for u in s["upstream"]]
        for s in repo.orch_json("graph", "w", "--reduce")["steps"]
    }
    assert ups == {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}
    dot = repo.orch("graph", "w", "--format", "dot", "--reduce").stdout
    assert '"a" -> "b"' in dot and '"a" -> "c"' not in dot and '"a" -> "d"' not in dot
    # reduce only draws: the workflow's own DAG keeps every declared edge
    assert repo.orch("graph", "w").stdout.splitlines()[1:] == full


def test_file_edges_join_outputs_to_inputs(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - {name: report, run: x, inputs: [out/summary.json]}
    - {name: gen, run: x, outputs: [out/]}
""",
        ),
    )
    assert "report  <- gen (files)" in repo.orch("graph", "w").stdout


def test_init_is_idempotent(tmp_path: Path) -> None:
    r = Repo(tmp_path / "fresh")
    r.path.mkdir()
    p = r.orch("init")
    assert (
        p.returncode == 0 and "created .orch/config.yaml" in p.stdout or "config.yaml" in p.stdout
    )
    before = r.read(".orch/config.yaml")
    r.write(".orch/config.yaml", before + "# mine\n", dedent=False)
    p = r.orch("init")
    assert p.returncode == 0 and "already initialised" in p.stdout
    assert r.read(".orch/config.yaml").endswith("# mine\n")
    assert "!config.yaml" in r.read(".orch/.gitignore")


def test_usage_errors_exit_2(repo: Repo) -> None:
    assert repo.orch("frobnicate").returncode == 2
    assert repo.orch("graph").returncode == 2
    p = subprocess.run(
        [sys.executable, "-m", "runner", "-C", "/nonexistent/dir", "validate"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "no such directory" in p.stderr


def test_version_and_help_do_not_import_heavy_modules() -> None:
    code = (
        "import sys\nfrom runner.cli.main import main\n"
        "for argv in (['--version'], ['--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "heavy = {'jinja2','networkx','jsonschema','watchdog','git','yaml','psutil','rich','mcp','sqlite3'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", ["build-and-test", "data-pipeline", "ai-analysis"])
def test_bundled_examples_validate(name: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "runner", "-C", str(ROOT / "examples" / name), "validate", "--json"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["workflows"] == [name]


def test_manifest_reference_is_generated_from_the_schemas() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "runner.docgen", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert p.returncode == 0, p.stderr
    text = (ROOT / "docs" / "manifests.md").read_text()
    schema = json.loads((ROOT / "schemas" / "workflow.json").read_text())
    for field in schema["properties"]["spec"]["properties"]["steps"]["items"]["properties"]:
        assert f"`spec.steps[].{field}`" in text


def test_dash_c_works_before_and_after_the_verb(repo: Repo) -> None:
    repo.write("wf.yaml", GOOD)
    before = subprocess.run(
        [sys.executable, "-m", "runner", "-C", str(repo.path), "validate", "--json"],
        capture_output=True,
        text=True,
    )
    after = subprocess.run(
        [sys.executable, "-m", "runner", "validate", "-C", str(repo.path), "--json"],
        capture_output=True,
        text=True,
    )
    nested = subprocess.run(
        [sys.executable, "-m", "runner", "workflow", "list", "-C", str(repo.path), "--json"],
        capture_output=True,
        text=True,
    )
    assert before.returncode == after.returncode == nested.returncode == 0, after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert [w["name"] for w in json.loads(nested.stdout)] == ["demo"]


@pytest.mark.parametrize(
    "pattern, edge",
    [
        ("src/*.md", False),
        ("src/**/*.md", True),
        ("src/*/x.md", True),
        ("src/gen/", True),
        ("docs/*.md", False),
        ("src/gen/a.md", True),
    ],
)
def test_file_edges_from_a_folder_output_only_where_the_input_can_match(
    repo: Repo, pattern: str, edge: bool
) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            f"    - {{name: gen, run: x, outputs: [src/gen/]}}\n    - {{name: scan, run: x, inputs: ['{pattern}']}}\n",
        ),
    )
    out = repo.orch("graph", "w").stdout
    assert ("scan  <- gen (files)" in out) is edge, out


def test_the_repositorys_template_folder_is_not_read_as_manifests(repo: Repo) -> None:
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\ntemplates: tpl\n")
    repo.write(
        "tpl/thing/wf.yaml", "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: '{{ name }}'}\n"
    )
    repo.write("wf.yaml", GOOD)
    data = json.loads(repo.orch("validate", "--json").stdout)
    assert data["ok"] and data["workflows"] == ["demo"], data


def test_every_duplicate_key_a_template_error_and_a_cycle_at_once(repo: Repo) -> None:
    """Validation reports every problem of a file in one go: each duplicate key (not just
    the first), a template error together with a cycle, and the file's other errors."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - name: a
      run: echo {{ steps.c.outputs.x }}
      needs: [c]
      needs: [b]
    - name: b
      run: echo {% if %}
      needs: [a]
      timeout: 5s
      timeout: 6s
    - name: c
      run: echo
      needs: [a]
""",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    lines = errors(p)
    assert len(lines) == 4, lines
    assert lines[2].startswith("wf.yaml:11:12: spec.steps[1].run: template error: ")
    assert lines[:2] + lines[3:] == [
        "wf.yaml:6:13: spec.steps[0].name: cycle: a -> c -> a (remove one of these dependencies)",
        "wf.yaml:9:7: yaml: duplicate key 'needs' (first defined at line 8)",
        "wf.yaml:14:7: yaml: duplicate key 'timeout' (first defined at line 13)",
    ]


def test_on_handler_templates_are_checked_for_names(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - {name: build, run: echo}\n",
            "  params: {dest: out}\n"
            "  on:\n"
            "    failure:\n"
            "      - run: echo {{ steps.biuld.outputs.x }} {{ params.dset }}\n"
            "    always:\n"
            "      - run: [echo, '{{ wokflow.name }}', '{{ workflow.status }} {{ params.dest }}']\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    assert errors(p) == [
        "wf.yaml:8:14: spec.on.failure[0].run: no param named 'dset' (did you mean 'dest'?)",
        "wf.yaml:8:14: spec.on.failure[0].run: no step named 'biuld' (did you mean 'build'?)",
        "wf.yaml:10:21: spec.on.always[0].run[1]: unknown name 'wokflow' in template (did you mean 'workflow'?)",
    ]


def test_one_breaker_name_with_two_settings_is_an_error_naming_both(repo: Repo) -> None:
    repo.write(
        "a.yaml",
        workflow(
            "a",
            "    - {name: pay, run: echo, breaker: {name: api, threshold: 5}}\n"
            "    - {name: refund, run: echo, breaker: {name: api, threshold: 5, cooldown: 60s}}\n",
        ),
    )
    repo.write("b.yaml", workflow("b", "    - {name: charge, run: echo, breaker: api}\n"))
    p = repo.orch("validate")
    assert p.returncode == 1
    assert errors(p) == [
        "b.yaml:6:42: spec.steps[0].breaker: breaker 'api' has threshold 3, cooldown 60s here"
        " but threshold 5, cooldown 60s in step 'a/pay' (a.yaml:6) (give every step that"
        " shares a breaker the same settings)"
    ]


def test_unparsable_yaml_that_is_not_ours_is_skipped_with_a_warning(repo: Repo) -> None:
    repo.write("wf.yaml", GOOD)
    repo.write("src/app.py", "")  # the lint step's glob matches: its only warning is not ours
    repo.write(
        "chart/templates/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
        "{{- if .Values.x }}\n  labels: {a: b}\n{{- end }}\n",
    )
    repo.write("k8s/dup.yaml", "kind: ConfigMap\ndata: {a: 1}\ndata: {b: 2}\n")
    for verb in ("validate", "plan"):
        p = repo.orch(verb)
        assert p.returncode == 0, p.stderr
        warnings = [line for line in p.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 2, p.stderr
        assert warnings[0].startswith("orch: warning: chart/templates/deploy.yaml:")
        assert warnings[1].startswith("orch: warning: k8s/dup.yaml:3:1:")
        assert all("exclude:" in w for w in warnings)
    assert repo.apply()["ok"]
    # a manifest of ours that does not parse is still an error
    repo.write("bad.yaml", "apiVersion: orch/v1\nkind: Workflow\nmetadata: {name: [\n")
    p = repo.orch("validate")
    assert p.returncode == 1
    assert [line for line in errors(p) if line.startswith("bad.yaml:")]


def test_two_producers_of_one_path_are_an_error_naming_both(repo: Repo) -> None:
    """Two steps writing one path (or one inside the other's output folder) never settle:
    each sees the other's writes as its output modified."""
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            """\
    - {name: a, run: echo, outputs: [dist/]}
    - {name: b, run: echo, outputs: [dist-x, dist/app.whl]}
    - {name: c, run: echo, outputs: [report.md]}
    - {name: d, run: echo, outputs: [report.md, dist-x/]}
    - {name: e, run: echo, outputs: [site/, site/index.html]}
""",
        ),
    )
    repo.write("other.yaml", workflow("o", "    - {name: z, run: echo, outputs: [site/x.css]}\n"))
    p = repo.orch("validate")
    assert p.returncode == 1
    assert errors(p) == [
        "other.yaml:6:38: spec.steps[0].outputs[0]: output 'site/x.css' of step 'o/z'"
        " is inside output 'site/' of step 'w/e' (give each path one producing step)",
        "wf.yaml:7:46: spec.steps[1].outputs[1]: output 'dist/app.whl' of step 'b'"
        " is inside output 'dist/' of step 'a' (give each path one producing step)",
        "wf.yaml:9:38: spec.steps[3].outputs[0]: steps 'c' and 'd' both declare output"
        " 'report.md' (give each path one producing step)",
        "wf.yaml:9:49: spec.steps[3].outputs[1]: steps 'b' and 'd' both declare output"
        " 'dist-x/' (give each path one producing step)",
    ]


def test_a_cycle_through_files_of_two_workflows_is_named(repo: Repo) -> None:
    repo.write(
        "a.yaml",
        workflow(
            "a",
            "    - {name: gen, run: echo, inputs: [b/out.txt], outputs: [a/out.txt]}\n",
        ),
    )
    repo.write(
        "b.yaml",
        workflow(
            "b",
            "    - {name: use, run: echo, inputs: [a/out.txt]}\n"
            "    - {name: make, run: echo, needs: [use], outputs: [b/out.txt]}\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    (line,) = errors(p)
    assert line.startswith("a.yaml:1:1: cycle across workflows: ")
    cycle = line.split(": ")[2].split(" (")[0].split(" -> ")
    assert cycle[0] == cycle[-1] and set(cycle) == {"a/gen", "b/use", "b/make"}
    k = cycle.index("a/gen")
    assert (cycle + cycle[1:])[k : k + 4] == ["a/gen", "b/use", "b/make", "a/gen"]


def test_an_output_inside_a_folder_its_owner_excludes_has_one_producer(repo: Repo) -> None:
    repo.write(
        "wf.yaml",
        workflow(
            "w",
            "    - {name: deps, run: echo, outputs: [node_modules/, '!node_modules/.cache/']}\n"
            "    - {name: warm, run: echo, outputs: [node_modules/.cache/x]}\n"
            "    - {name: bad, run: echo, outputs: [node_modules/y]}\n",
        ),
    )
    p = repo.orch("validate")
    assert p.returncode == 1
    assert errors(p) == [
        "wf.yaml:8:40: spec.steps[2].outputs[0]: output 'node_modules/y' of step 'bad'"
        " is inside output 'node_modules/' of step 'deps' (give each path one producing step)"
    ]


def test_graph_shows_files_read_across_workflows(repo: Repo) -> None:
    """The edges one ``orch apply`` follows between workflows are the ones ``orch graph``
    draws: a's output read by b's step."""
    repo.write(
        "a.yaml",
        workflow("a", "    - {name: gen, run: x, inputs: [src.txt], outputs: [gen/data.txt]}\n"),
    )
    repo.write(
        "b.yaml",
        workflow(
            "b",
            "    - {name: use, run: x, inputs: [gen/data.txt], outputs: [used.txt]}\n"
            "    - {name: after, run: x, inputs: [used.txt]}\n",
        ),
    )
    repo.write("src.txt", "v1\n")
    b = repo.orch("graph", "b")
    assert b.returncode == 0, b.stderr
    assert b.stdout.splitlines()[1:] == ["  use    <- a/gen (files)", "  after  <- use (files)"]
    a = repo.orch("graph", "a").stdout
    assert a.splitlines()[1:] == ["  gen  -> b/use (files)"]
    dot = repo.orch("graph", "b", "--format", "dot").stdout
    assert '"a/gen" -> "use"' in dot
    mer = repo.orch("graph", "a", "--format", "mermaid").stdout
    assert 'x0["b/use"]' in mer and "s0 -.-> x0" in mer


def test_a_folder_without_manifests_is_not_an_orch_repository(tmp_path: Path) -> None:
    """As ``terraform plan`` in an empty folder: one line saying what to do, exit 1, and
    nothing written (no ``.orch/``)."""
    r = Repo(tmp_path / "empty")
    r.path.mkdir()
    r.git("init", "-q")
    r.write("README.md", "# not orch\n")
    verbs = [["plan"], ["apply"], ["validate"], ["status"], ["workflow", "list"], ["watch"]]
    # and the state's listings: an empty table would hide that this is the wrong folder
    verbs += [["audit"], ["history"], ["task", "list"]]
    for verb in verbs:
        p = r.orch(*verb, timeout=30)
        assert p.returncode == 1, (verb, p.stdout, p.stderr)
        assert p.stderr.splitlines() == [
            f"orch: not an orch repository: no manifests under {r.path.resolve()} (run orch init)"
        ], verb
        assert not r.exists(".orch"), verb
    p = r.orch("init")
    assert p.returncode == 0 and r.exists(".orch/config.yaml")
    p = r.orch("plan")
    assert p.returncode == 0, p.stderr  # an initialised repository with no workflows yet


def test_read_verbs_never_create_the_orch_folder(tmp_path: Path) -> None:
    r = Repo(tmp_path / "plain")
    r.path.mkdir()
    r.git("init", "-q")
    r.write("wf.yaml", workflow("w", '    - {name: a, run: "true", inputs: [a.txt]}\n'))
    r.write("a.txt", "a\n")
    for verb in (["validate"], ["plan"], ["plan"], ["status"], ["graph", "w"]):
        p = r.orch(*verb)
        assert p.returncode == 0, (verb, p.stderr)
        assert not r.exists(".orch"), verb
    assert r.orch("apply").returncode == 0
    assert r.exists(".orch/state.db")
    assert r.plan()[("w", "a")] == ("up-to-date", [])


def test_config_errors_are_named_from_where_the_user_stands(repo: Repo) -> None:
    """Run from the folder above, every path in a message is relative to it, the config's
    too (it was named `.orch/config.yaml`, a file that is not there from where one stands)."""
    repo.write(".orch/config.yaml", "apiVersion: orch/v1\nkind: Config\njobs: -3\n")
    repo.write("wf.yaml", workflow("w", "    - {name: a, run: 'true', needs: [zz]}\n"))
    p = subprocess.run(
        [sys.executable, "-m", "runner", "-C", "repo", "validate"],
        cwd=repo.path.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if not ln.startswith("orch: ")]
    assert [ln.split(":")[0] for ln in lines] == ["repo/.orch/config.yaml", "repo/wf.yaml"]


def test_an_env_value_in_a_path_is_a_validation_error_not_an_internal_error(repo) -> None:
    """Paths render with an empty env (where a file is must not depend on who runs orch):
    validate said ok, then plan and apply crashed with 'env.TOK is undefined'."""
    from tests.conftest import workflow

    repo.write(
        "wf.yaml",
        workflow(
            "w", "    - name: a\n      outputs: ['out/{{ env.TOK }}.txt']\n      run: 'true'\n"
        ),
    )
    repo.commit()
    for verb in ("validate", "plan", "apply"):
        p = repo.orch(verb, env={"TOK": "x"})
        assert p.returncode == 1, (verb, p.stderr)
        assert "wf.yaml:" in p.stderr and "paths may use params, not env" in p.stderr, p.stderr
        assert "internal error" not in p.stderr
