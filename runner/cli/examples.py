"""The examples section (argparse epilog) of every verb's ``--help``, by verb.

Kept apart from the parser so the option declarations stay readable; plain strings, so
``orch --help`` pays nothing for them. A test walks the parser: every verb has one."""

from __future__ import annotations

EXAMPLES: dict[str, str] = {
    "": """\
orch init                         start using orch in this git repository
orch validate                     check every manifest
orch plan                         what would run, and why
orch apply                        run what changed or failed
orch VERB --help                  the options and examples of one verb
""",
    "init": """\
orch init                         create .orch/config.yaml and .orch/.gitignore here
orch init -C path/to/repo         in another folder
""",
    "validate": """\
orch validate                     every manifest; each problem as path:line:col
orch validate extra/wf.yaml       also a file the config does not list
orch validate --format github     annotations for a GitHub Actions log
orch validate --ref origin/main   the manifests as committed on origin/main
""",
    "graph": """\
orch graph build                  the DAG of workflow build, with why each edge exists
orch graph build --format dot | dot -Tsvg > build.svg
orch graph build --format mermaid   for a Markdown page
orch graph build --reduce         without the edges a longer path implies
""",
    "plan": """\
orch plan                         every workflow: what would run, and why
orch plan build --force test      as if test were forced
orch plan --show-commands         with each command, rendered (secrets masked)
orch plan --detailed-exitcode     exit 2 when something would run (for CI)
orch plan --check                 exit 1 when a spec.check workflow is out of date
orch plan --since origin/main     only workflows changed since origin/main
orch plan --out plan.json         also save the plan, for orch apply plan.json
""",
    "apply": """\
orch apply                        run what changed or failed, in every workflow
orch apply build -j 4             one workflow, four tasks at once
orch apply --force build/test     run test again even if it is up to date
orch apply --dry-run              print the plan and its commands; run nothing
orch apply plan.json              exactly the saved plan, or refuse if it is stale
orch apply --junit report.xml     also write a JUnit report (for CI)
orch apply --json | jq .counts    machine-readable result
orch apply --events - | jq -c 'select(.type == "step.finished")'   progress as JSON lines
""",
    "explain": """\
orch explain build test           every part of test's fingerprint, recorded -> now
orch explain build test --json    the same as JSON (kind, name, old, new, changed)
orch explain build test --param version=0.2.0   as plan --param would see it
""",
    "status": """\
orch status                       the recorded state of every step
orch status build --json          one workflow, as JSON
orch status --project shop        the workflows of one project
""",
    "logs": """\
orch logs build test              the latest log of step test of workflow build
orch logs build test --run 12     its log in run 12 (see orch history)
orch logs build test --attempt 1  the first try of a step that was retried
orch logs build test -f           follow it while it runs; end when the task ends
""",
    "history": """\
orch history                      the 20 latest runs
orch history build -n 5 --tasks   five runs of build, with each task's time and memory
""",
    "audit": """\
orch audit                        who changed state: every apply, cancel, reset, create...
orch audit --since 7d             the last week's
orch audit --since 2026-11-01 --json   from a date (UTC), as JSON
""",
    "watch": """\
orch watch                        apply, then apply again on every change (Ctrl-C stops)
orch watch build --restart        end running tasks a change affects and start over
orch watch --debounce 0.5         wait for half a second of quiet first
orch watch --poll                 on NFS, SMB or a container mount: poll, as no event comes
orch watch -q                     only failures and each cycle's summary line
orch watch --json | jq .counts    one JSON object per cycle, for scripts
""",
    "workflow": """\
orch workflow list                every workflow, its project and file
orch workflow run build           apply one workflow
orch workflow create ci --template build-and-test --path ci
""",
    "workflow list": """\
orch workflow list
orch workflow list --json
""",
    "workflow run": """\
orch workflow run build           as orch apply build
orch workflow run build --force-all
""",
    "workflow create": """\
orch workflow create ci --template build-and-test --path ci
orch workflow create etl --template data-pipeline --param rows=1000 --path jobs
""",
    "project": """\
orch project create shop --template web-app
orch project status shop
orch project archive shop         pack it away; orch project restore shop brings it back
""",
    "project create": """\
orch project create shop --template web-app
orch project create stats --template data-pipeline --path analysis/stats
""",
    "project list": """\
orch project list
orch project list --json
""",
    "project status": """\
orch project status shop          workflows, failing steps, milestones, recent runs
orch project status shop --env prod
""",
    "project archive": """\
orch project archive shop         into .orch/archive/shop.tar.gz; its folder is removed
""",
    "project restore": """\
orch project restore shop         unpack it, each file checked against its sha256
""",
    "template": """\
orch template list                every template and its parameters
""",
    "template list": """\
orch template list
orch template list --json
""",
    "task": """\
orch task list                    queued, running and recent tasks
orch task status 42               one task
orch task cancel 42               end its process tree (from any terminal)
""",
    "task list": """\
orch task list -n 50
orch task list --json
""",
    "task status": """\
orch task status 42
orch task status 42 --json
""",
    "task cancel": """\
orch task cancel 42               the runner running it ends its tree within a second
orch task cancel --run 7          every task of run 7; the run starts no more
""",
    "cache": """\
orch cache status                 entries, size and hit rate of the result cache
orch cache gc --max-size 5GiB     drop least recently used results down to 5 GiB
orch cache gc --older-than 30d    drop results nobody used for 30 days
orch cache clear                  remove every cached result
""",
    "cache status": """\
orch cache status                 where the cache is, entries, size, hit rate
orch cache status --json | jq .hit_rate
""",
    "cache gc": """\
orch cache gc                     down to the config's cache.max_size (if set)
orch cache gc --max-size 5GiB     least recently used first, until 5 GiB are left
orch cache gc --older-than 30d    results not restored or stored for 30 days
orch cache gc --max-size 500MB --older-than 7d   both
""",
    "cache clear": """\
orch cache clear                  every result; the next apply runs what it restored
""",
    "state": """\
orch state reset                  move .orch/state.db aside (kept) and start afresh
""",
    "state reset": """\
orch state reset                  the next apply runs every step again
""",
    "system": """\
orch system status                host, quotas and running tasks
orch system health                exit 1 when orch cannot run here
orch system metrics --json        task metrics of the last hours
""",
    "system status": """\
orch system status
orch system status --json
""",
    "system metrics": """\
orch system metrics
orch system metrics --json
""",
    "system health": """\
orch system health && orch apply  run only where orch can
""",
    "schema": """\
orch schema                       the schema of every manifest kind, as one JSON document
orch schema workflow              one kind's schema
orch schema --write .orch/schemas  every schema as a file, for an editor
""",
    "mcp": """\
orch mcp                          serve this repository over stdio (an agent starts it)
orch -C path/to/repo mcp          serve another repository
""",
    "ui": """\
orch ui                           the dashboard on http://127.0.0.1:8040 (open the printed URL)
orch ui --port 0 --open           a free port, opened in the browser
orch ui --allow-actions           with apply, force and cancel buttons
""",
    "completion": """\
orch completion bash > ~/.local/share/bash-completion/completions/orch
orch completion zsh > "${fpath[1]}/_orch"
orch completion fish > ~/.config/fish/completions/orch.fish
source <(orch completion bash)    for this shell only
""",
}
EXAMPLES["run"] = """\
orch run                          the same as orch apply (an alias)
orch run build -j 4               one workflow, four tasks at once
"""


def epilog(verb: str) -> str | None:
    """The examples section for ``verb`` (``"task list"``; ``""`` for orch itself)."""
    text = EXAMPLES.get(verb)
    return f"examples:\n{_indent(text)}" if text is not None else None


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())
