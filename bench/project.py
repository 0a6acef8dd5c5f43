"""Project scaffolding benchmark: ``orch project create NAME --template T`` per template.

    python bench/project.py [--reps 5] [--quick]

The templates come from ``orch template list --json`` (a list of names, or of objects
with a ``name``, possibly under a ``templates`` key). Each rep runs in a fresh copy of
a minimal repo (config only, committed), so no rep pays for or benefits from an
earlier one. After the timed create, an untimed ``orch validate`` checks that what was
scaffolded loads, and the new files are counted (``git ls-files --others``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen import init_orch_repo  # noqa: E402
from harness import (  # noqa: E402
    Fresh,
    Result,
    Sample,
    default_report_path,
    environment,
    git,
    measure,
    orch_command,
    print_table,
    run,
    write_report,
)


def template_names(data: Any) -> list[str]:
    """Names from whatever shape the listing has: [str], [{name}], {templates: [...]}."""
    if isinstance(data, dict):
        data = data.get("templates", data.get("items", list(data)))
    names = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, str):
            names.append(item)
        elif (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and item.get("kind", "project") == "project"  # `project create` takes these only
        ):
            names.append(item["name"])
    return names


def list_templates(orch: list[str], repo: Path) -> tuple[list[str], str | None]:
    sample = run([*orch, "-C", str(repo), "template", "list", "--json"], timeout=60)
    if not sample.ok:
        return [], f"template list --json: {sample.error()}"
    try:
        names = template_names(json.loads(sample.stdout))
    except ValueError as exc:
        return [], f"template list --json: not JSON ({exc})"
    return names, None if names else "template list --json: no templates listed"


def untracked(repo: Path) -> int:
    out = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        text=True,
    ).stdout
    return len(out.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 reps")
    parser.add_argument("--orch", help="command that runs orch (default: python -m runner)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    orch = orch_command(args.orch)
    reps = 3 if args.quick else args.reps
    work = Path(tempfile.mkdtemp(prefix="orch-project-"))
    base = work / "base"
    results: list[Result] = []
    try:
        init_orch_repo(base)
        git("add", "-A", cwd=base)
        git("commit", "-q", "-m", "bench: empty orch repo", cwd=base)
        names, error = list_templates(orch, base)
        if error:
            results.append(Result(name="project create", error=error))
        for template in names:
            results.append(bench_template(orch, base, work, template, reps))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(results)
    payload = {
        "suite": "project",
        "environment": environment(orch),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": [r.to_json() for r in results],
    }
    write_report(args.out or default_report_path("project"), payload)
    return 0


def bench_template(orch: list[str], base: Path, work: Path, template: str, reps: int) -> Result:
    name = f"bench-{template}".replace("/", "-").lower()
    result = Result(name=f"project create --template {template}")
    prepare = Fresh(base, work, name)
    files: list[int] = []

    def check(sample: Sample) -> str | None:
        repo = prepare.last
        assert repo is not None
        files.append(untracked(repo))
        valid = run([*orch, "-C", str(repo), "validate"], timeout=60)
        return None if valid.ok else f"created, but validate fails: {valid.error()}"

    measure(
        result,
        lambda repo: [
            *orch,
            "-C",
            str(repo),
            "project",
            "create",
            name,
            "--template",
            template,
        ],
        reps=reps,
        prepare=prepare,
        check=check,
        timeout=120,
    )
    if files:
        result.note = f"files created: {max(files)}"
    print(f"  {template}: {result.median if result.samples else result.error}", file=sys.stderr)
    return result


if __name__ == "__main__":
    sys.exit(main())
