"""Masking is a property of the data: one run-wide set of secrets, hidden in every sink.

Each test runs the real ``orch`` and then looks everywhere a value could land: the
console (text and ``--json``), every file under ``.orch/`` (state.db and its WAL, logs,
caches), ``status``/``history``/``task list --json`` and a JUnit report.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

from runner.masking import Secrets, StreamMasker
from tests.conftest import Repo

TOK = "s3cr3t-Tok+en/42 x"  # a space, a plus and a slash: every encoding differs from it
FORMS = {
    "plain": TOK,
    "base64": base64.b64encode(TOK.encode()).decode(),
    "base64 inside": base64.b64encode(b"user:" + TOK.encode()).decode(),
    "url": urllib.parse.quote(TOK, safe=""),
    "url+": urllib.parse.quote_plus(TOK),
    "url, / kept": urllib.parse.quote(TOK),  # quote()'s default: a path keeps its slashes
    "hex": TOK.encode().hex(),
    "HEX": TOK.encode().hex().upper(),
    "json": json.dumps(TOK + '"')[1:-3],
}


def wf(name: str, steps: list[dict[str, Any]], **spec: Any) -> str:
    doc = {"apiVersion": "orch/v1", "kind": "Workflow", "metadata": {"name": name}}
    return json.dumps({**doc, "spec": {**spec, "steps": steps}})


def setup(repo: Repo, *docs: str) -> None:
    repo.write(".gitignore", "*.xml\n")
    repo.write("orch.yaml", "\n---\n".join(docs))
    repo.commit("init")


def everything(repo: Repo, *texts: str) -> str:
    """Every place a value could have landed, as one text."""
    seen = list(texts)
    for p in sorted((repo.path / ".orch").rglob("*")):
        if p.is_file():
            seen.append(p.read_bytes().decode("latin-1"))
    for args in (("status",), ("history",), ("task", "list")):
        p = repo.orch(*args, "--json", env={"TOK": TOK})
        seen += [p.stdout, p.stderr]
    for p in repo.path.glob("*.xml"):
        seen.append(p.read_text())
    return "\n".join(seen)


TELLS = {**FORMS, "base64 inside": FORMS["base64 inside"][8:24]}  # what must not show


def leaks(text: str) -> list[str]:
    return [name for name, tell in TELLS.items() if tell in text]


def apply(repo: Repo, *args: str) -> tuple[str, str]:
    p = repo.orch("apply", *args, env={"TOK": TOK})
    q = repo.orch("apply", "--json", "--force-all", *args, env={"TOK": TOK})
    return p.stdout + p.stderr, q.stdout + q.stderr


def test_a_secret_in_a_rejected_output_line_is_masked_everywhere(repo: Repo) -> None:
    step = {"name": "a", "secrets": ["TOK"], "run": 'echo "no equals sign $TOK" >> $ORCH_OUTPUT'}
    setup(repo, wf("w", [step]))
    text, js = apply(repo, "--junit", "report.xml")
    assert "no equals sign ***" in text  # the rejection is shown, masked
    assert leaks(everything(repo, text, js)) == []


def test_other_steps_and_handlers_never_print_a_secret_of_the_run(repo: Repo) -> None:
    steps = [
        {"name": "a", "secrets": ["TOK"], "run": "true"},
        {"name": "b", "run": 'echo "b sees $TOK"', "needs": ["a"]},
    ]
    on = {"always": [{"run": 'echo "handler sees $TOK"'}]}
    setup(repo, wf("w", steps, on=on), wf("other", [{"name": "c", "run": 'echo "c: $TOK"'}]))
    text, js = apply(repo)
    assert "b sees ***" in text and "handler sees ***" in text and "c: ***" in text
    assert leaks(everything(repo, text, js)) == []


def test_an_output_holding_a_secret_is_stored_and_passed_on_masked(repo: Repo) -> None:
    steps = [
        {"name": "a", "secrets": ["TOK"], "run": 'echo "tok=$TOK" >> $ORCH_OUTPUT'},
        {"name": "b", "run": "echo got {{ steps.a.outputs.tok }}", "needs": ["a"]},
    ]
    setup(repo, wf("w", steps))
    text, js = apply(repo)
    assert "got ***" in text
    assert leaks(everything(repo, text, js)) == []


def test_encoded_forms_of_a_secret_are_masked(repo: Repo) -> None:
    code = """\
import base64, json, os, urllib.parse
t = os.environ["TOK"]
print("plain:", t)
print("base64:", base64.b64encode(t.encode()).decode())
print("base64 inside:", base64.b64encode(b"user:" + t.encode()).decode())
print("url:", urllib.parse.quote(t, safe=""), urllib.parse.quote_plus(t))
print("url path:", urllib.parse.quote(t), urllib.parse.quote_plus(t, safe="/"))
print("hex:", t.encode().hex(), t.encode().hex().upper())
print("json:", json.dumps(t + '"'))
"""
    setup(repo, wf("w", [{"name": "a", "secrets": ["TOK"], "run": ["python3", "-c", code]}]))
    text, js = apply(repo)
    assert "base64: ***" in text and "hex: ***" in text
    assert leaks(everything(repo, text, js)) == []


def test_env_templates_keep_secrets_out_of_caches_and_fingerprints(repo: Repo) -> None:
    from runner.digests import digest

    step = {"name": "a", "secrets": ["TOK"], "run": "echo {{ env.TOK }} > /dev/null"}
    setup(repo, wf("w", [step]))
    text, js = apply(repo)
    plan = repo.orch("plan", env={"TOK": TOK})  # all up to date: writes the no-op witness
    assert plan.returncode == 0, plan.stderr
    unsalted = digest(json.dumps({"TOK": TOK}, sort_keys=True, separators=(",", ":")))
    found = everything(repo, text, js, plan.stdout, plan.stderr)
    assert leaks(found) == [] and unsalted not in found

    # the keyed hash still tells a changed value from an unchanged one
    def action(value: str) -> str:
        p = repo.orch("plan", "--json", env={"TOK": value})
        (step,) = json.loads(p.stdout)["steps"]
        return step["action"]

    assert action(TOK) != "run"
    assert action(TOK + "2") == "run"


def test_masker_masks_each_form_and_a_secret_split_across_chunks() -> None:
    s = Secrets([TOK])
    for name, form in FORMS.items():
        assert leaks(s.mask(f"<{form}>")) == [], name
        if name != "base64 inside":
            assert s.mask(f"<{form}>") == "<***>", name
    data = ("x" * 10 + TOK + "y" * 3).encode()
    for cut in range(len(data)):
        m = StreamMasker(s)
        assert m.feed(data[:cut]) + m.feed(data[cut:]) + m.flush() == b"x" * 10 + b"***yyy"


def test_a_secret_of_another_repository_is_none_of_ours(tmp_path: Path) -> None:
    assert Secrets().mask(TOK) == TOK and not Secrets(["", ""])


def test_rows_recorded_before_a_secret_was_declared_are_masked_when_shown(repo: Repo) -> None:
    run = 'echo "tok=$TOK" >> $ORCH_OUTPUT'
    setup(repo, wf("w", [{"name": "a", "run": run}]))
    assert repo.orch("apply", env={"TOK": TOK}).returncode == 0  # not a secret yet: kept
    repo.write("orch.yaml", wf("w", [{"name": "a", "secrets": ["TOK"], "run": run}]))
    p = repo.orch("status", "--json", env={"TOK": TOK})
    assert p.returncode == 0, p.stderr
    (step,) = json.loads(p.stdout)["steps"]
    assert step["outputs"] == {"tok": "***"}


def test_every_reader_masks_rows_and_logs_recorded_before_a_secret_was_declared(
    repo: Repo,
) -> None:
    """An older orch (or a step not yet declaring its secret) stored the value in clear:
    every verb that shows the state masks at print time, text and --json alike."""
    steps = [
        {"name": "a", "run": 'echo "tok=$TOK" >> $ORCH_OUTPUT; echo "log $TOK"'},
        {"name": "b", "run": 'echo "$TOK" >> $ORCH_OUTPUT'},  # rejected: the row's reason
    ]
    setup(repo, wf("w", steps))
    assert repo.orch("apply", env={"TOK": TOK}).returncode == 1  # not a secret yet: kept
    # b's rejected output, stored in clear; a and b start together, so b's task id is 1 or 2
    shown = [repo.orch("task", "status", i, env={"TOK": TOK}).stdout for i in ("1", "2")]
    assert any(TOK in out for out in shown)
    steps[0]["secrets"] = ["TOK"]
    repo.write("orch.yaml", wf("w", steps))
    for verb in (
        ("status",),
        ("history",),
        ("history", "--tasks"),
        ("task", "list"),
        ("task", "status", "1"),
        ("task", "status", "2"),
        ("logs", "w", "a"),
        ("logs", "w", "b"),
    ):
        for js in ((), ("--json",)) if verb[0] not in ("logs",) else ((),):
            p = repo.orch(*verb, *js, env={"TOK": TOK})
            assert p.returncode == 0, (verb, p.stderr)
            assert leaks(p.stdout + p.stderr) == [], (verb, js)
    assert "log ***" in repo.orch("logs", "w", "a", env={"TOK": TOK}).stdout


LONG_TOK = "ghp_Abcdefghijklmnopqrstuvwxyz0123456789/ABCDEFGHIJKLMNOP QRSTUVWXYZ+abcdef"


def test_a_long_secret_wrapped_over_lines_or_escaped_slash_is_masked(repo: Repo) -> None:
    """base64 wraps at 76 columns, PEM at 64, xxd -p at 60: a long token comes out in
    pieces, none holding a whole encoded form; PHP-style JSON writes / as \\/."""
    code = """\
import base64, json, os
t = os.environ["TOK"].encode()
b = base64.b64encode(t).decode()
h = t.hex()
for width in (76, 64):
    print("\\n".join(b[k : k + width] for k in range(0, len(b), width)))
print("\\n".join(h[k : k + 60] for k in range(0, len(h), 60)))
print(json.dumps(t.decode()).replace("/", "\\\\/"))
"""
    setup(repo, wf("w", [{"name": "a", "secrets": ["TOK"], "run": ["python3", "-c", code]}]))
    p = repo.orch("apply", env={"TOK": LONG_TOK})
    assert p.returncode == 0, p.stderr
    b64 = base64.b64encode(LONG_TOK.encode()).decode()
    tells = [b64[:40], b64[76:100], b64[64:90], LONG_TOK.encode().hex()[60:100], "0123456789\\/"]
    seen = everything(repo, p.stdout, p.stderr)
    assert [t for t in tells if t in seen] == []
    assert p.stdout.count("***") >= 7


def test_a_reader_masks_with_secrets_past_applies_declared_while_manifests_do_not_load(
    repo: Repo,
) -> None:
    """`orch status` in a repository whose manifests are mid-edit (broken) still knows the
    names an apply saw declared, so a value stored in clear is not shown."""
    step = {"name": "a", "run": 'echo "$TOK" >> $ORCH_OUTPUT'}  # rejected: the row's reason
    setup(repo, wf("w", [step]))
    assert repo.orch("apply", env={"TOK": TOK}).returncode == 1  # stored in clear
    setup(repo, wf("w", [{**step, "secrets": ["TOK"]}]))
    assert repo.orch("apply", env={"TOK": TOK}).returncode == 1  # now declared
    repo.write("orch.yaml", "apiVersion: orch/v1\nkind: Workflow\nspec: [broken\n")
    for verb in (("task", "status", "1"), ("task", "list", "--json"), ("history", "--json")):
        p = repo.orch(*verb, env={"TOK": TOK})
        assert p.returncode == 0, (verb, p.stderr)
        assert leaks(p.stdout + p.stderr) == [], verb
    assert "***" in repo.orch("task", "status", "1", env={"TOK": TOK}).stdout
