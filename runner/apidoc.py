"""Writes ``docs/api.md`` from the docstrings of ``runner.api``, so the Python API's
reference can never drift from the code.

python -m runner.apidoc            # rewrite docs/api.md
python -m runner.apidoc --check    # exit 1 if it is out of date (tests run this)

What is public is the list ``SECTIONS`` below: the docs name these and nothing else, and a
test imports only these. ``EXAMPLE`` is run by that test as it stands in the docs.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

SECTIONS: list[tuple[str, list[str]]] = [
    ("Opening a repository", ["open_repo", "init", "Repo"]),
    (
        "Manifests",
        ["validate", "workflows", "graph", "graph_data", "step_groups", "manifest_version"],
    ),
    ("Plan and apply", ["plan", "apply"]),
    (
        "Recorded state",
        [
            "status",
            "history",
            "run",
            "tasks",
            "task",
            "log_task",
            "log_path",
            "breakers",
            "audit",
            "state_version",
        ],
    ),
    ("Acting on runs", ["cancel_task", "cancel_run", "state_reset"]),
    (
        "Projects",
        [
            "projects",
            "project_status",
            "create_project",
            "create_workflow",
            "archive_project",
            "restore_project",
        ],
    ),
    ("Templates", ["templates"]),
    ("System status", ["system_status"]),
    ("Result cache", ["cache_status", "cache_gc", "cache_clear"]),
    ("Secrets", ["mask"]),
]

EXAMPLE = """\
import pathlib
import tempfile

from runner import api
from runner.errors import OrchError

root = pathlib.Path(tempfile.mkdtemp())
(root / "hello.yaml").write_text(
    \"\"\"\\
apiVersion: orch/v1
kind: Workflow
metadata: {name: hello}
spec:
  steps:
    - {name: greet, run: "echo hi > greeting.txt", outputs: [greeting.txt]}
    - {name: shout, run: "tr a-z A-Z < greeting.txt", inputs: [greeting.txt]}
\"\"\"
)
repo = api.open_repo(root, exact=True)
api.init(repo)  # .orch/config.yaml: manifests under the root

print(api.plan(repo)["summary"])  # {'run': 2, 'restore': 0, 'may-run': 0, 'up-to-date': 0, 'skip': 0}
result = api.apply(repo)
print(result.ok, result.counts())  # True {'succeeded': 2}
print([(s["step"], s["status"]) for s in api.status(repo, ["hello"])])
print(api.plan(repo)["summary"])  # nothing to do now

print([t["name"] for t in api.templates(repo) if t["kind"] == "project"])
created = api.create_project(repo, "shop", "data-pipeline")
print(created["dir"], created["workflows"])  # shop ['shop-pipeline']
repo.reload()  # the manifests changed on disk: read them again
print([(p["name"], p["lifecycle"]) for p in api.projects(repo)])  # [('shop', 'active')]
print(api.project_status(repo, "shop")["name"])
print(api.system_status(repo)["health"]["ok"])

try:
    api.plan(repo, ["helo"])
except OrchError as e:
    print(e.lines())  # ["no workflow named 'helo' (did you mean 'hello'?)"]
"""

TARGET = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def public() -> list[str]:
    """Every name the docs list, in order."""
    return [n for _title, names in SECTIONS for n in names]


def _signature(obj: object, name: str) -> str:
    """``name(param: type = default, ...) -> type`` as written in the source (annotations
    are strings under ``from __future__ import annotations``: shown without quotes)."""
    sig = inspect.signature(obj)  # type: ignore[arg-type]
    parts = []
    star = False
    for p in sig.parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = p.name
        if p.annotation is not p.empty:
            ann = (
                p.annotation
                if isinstance(p.annotation, str)
                else inspect.formatannotation(p.annotation)
            )
            text += f": {ann}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        parts.append(text)
    ret = sig.return_annotation
    tail = ""
    if ret is not sig.empty:
        tail = f" -> {ret if isinstance(ret, str) else inspect.formatannotation(ret)}"
    return f"{name}({', '.join(parts)}){tail}"


def render() -> str:
    from runner import api

    out = [
        "# Python API: `runner.api`",
        "",
        "Generated from the docstrings of `runner/api.py` by `python -m runner.apidoc`; do not",
        "edit by hand.",
        "",
        inspect.getdoc(api).split("\n\n", 1)[1].rsplit("``docs/api.md``", 1)[0].rstrip(),
        "",
        "Only the names below are the API: import them from `runner.api` (`from runner import",
        "api`); errors are `runner.errors.OrchError` and its `UsageError`. Everything else in",
        "`runner` may change in any release.",
        "",
        "## Example",
        "",
        "```python",
        EXAMPLE.rstrip("\n"),
        "```",
        "",
    ]
    for title, names in SECTIONS:
        out += [f"## {title}", ""]
        for name in names:
            obj = getattr(api, name)
            init = obj.__init__ if inspect.isclass(obj) else obj
            shown = (
                f"class {_signature(init, name).replace('(self, ', '(').replace('(self)', '()')}"
                if inspect.isclass(obj)
                else _signature(obj, name)
            )
            doc = inspect.getdoc(obj) or ""
            out += [
                f"### `{name}`",
                "",
                "```python",
                f"api.{shown}" if not inspect.isclass(obj) else shown,
                "```",
                "",
                doc,
                "",
            ]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        old = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if old != text:
            print(f"{TARGET} is out of date: run python -m runner.apidoc", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
