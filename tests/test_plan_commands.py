"""plan --show-commands and apply --dry-run: the commands apply would run, rendered as
apply renders them, secrets masked, nothing run."""

from __future__ import annotations

import json

from tests.conftest import Repo

WF = """\
apiVersion: orch/v1
kind: Workflow
metadata: {name: w}
spec:
  params: {greeting: "hello world"}
  steps:
    - name: build
      run: |
        echo "version=1.2" >> "$ORCH_OUTPUT"
        touch built.txt
    - name: deploy
      needs: [build]
      secrets: [TOKEN]
      run: "echo {{ params.greeting }} {{ steps.build.outputs.version }} {{ env.TOKEN }} > deployed.txt"
    - name: argv
      run: ["touch", "{{ params.greeting }}.txt"]
    - name: maybe
      when: "{{ params.greeting == 'nope' }}"
      run: "touch never.txt"
"""
SECRET = "s3cr3t-value-42"
ENV = {"TOKEN": SECRET}


def _commands(repo: Repo, *args: str) -> dict[str, tuple[object, str]]:
    p = repo.orch(*args, "--json", env=ENV)
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout + p.stderr
    return {s["step"]: (s.get("command"), s.get("note")) for s in json.loads(p.stdout)["steps"]}


def test_show_commands_renders_what_apply_would_run(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    got = _commands(repo, "plan", "--show-commands")
    assert got["build"] == ('echo "version=1.2" >> "$ORCH_OUTPUT"\ntouch built.txt\n', "")
    # build has not run: its outputs are known only after apply (Terraform's words)
    assert got["deploy"] == (
        "echo 'hello world' '(known after apply)' *** > deployed.txt",
        "",
    )
    assert got["argv"] == (["touch", "hello world.txt"], "")
    assert got["maybe"] == (None, "skipped: when: false")
    assert not any(repo.exists(f) for f in ("built.txt", "deployed.txt", "hello world.txt"))

    text = repo.orch("plan", "--show-commands", env=ENV)
    assert text.returncode == 0 and SECRET not in text.stdout + text.stderr
    assert "      $ echo 'hello world' '(known after apply)' *** > deployed.txt" in text.stdout
    assert "      $ touch 'hello world.txt'" in text.stdout
    assert '      $ echo "version=1.2" >> "$ORCH_OUTPUT"\n        touch built.txt\n' in text.stdout

    # once build has run, its recorded output is what deploy would get
    assert repo.orch("apply", "-q", env=ENV).returncode == 0
    assert SECRET in repo.read("deployed.txt")  # the step itself gets the real value
    got = _commands(repo, "plan", "--show-commands", "--force", "deploy")
    assert got["deploy"] == ("echo 'hello world' 1.2 *** > deployed.txt", "")
    assert got["build"] == (None, None)  # up to date: nothing to show


def test_apply_dry_run_prints_the_commands_and_runs_nothing(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    p = repo.orch("apply", "--dry-run", env=ENV)
    assert p.returncode == 0, p.stderr
    assert "$ touch 'hello world.txt'" in p.stdout and SECRET not in p.stdout
    assert _commands(repo, "apply", "--dry-run")["argv"] == (["touch", "hello world.txt"], "")
    assert not repo.exists("hello world.txt") and not repo.exists("built.txt")
    assert repo.orch_json("history") == []


def test_plan_json_has_no_command_unless_asked(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    steps = repo.orch_json("plan")["steps"]
    assert steps and all("command" not in s for s in steps)


def test_show_commands_with_ref_is_a_usage_error(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    repo.commit()
    p = repo.orch("plan", "--show-commands", "--ref", "HEAD")
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "--ref" in p.stderr


def test_apply_verbose_prints_each_command_as_rendered_with_secrets_masked(repo: Repo) -> None:
    repo.write("wf.yaml", WF)
    p = repo.orch("apply", "-v", env=ENV)
    assert p.returncode == 0, p.stderr
    assert SECRET not in p.stdout + p.stderr
    assert "      $ echo 'hello world' 1.2 *** > deployed.txt" in p.stderr
    assert "      $ touch 'hello world.txt'" in p.stderr  # an argv, joined as typed
    assert SECRET in repo.read("deployed.txt")  # the step itself got the real value
