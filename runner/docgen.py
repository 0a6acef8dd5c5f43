"""Writes ``docs/manifests.md`` from ``schemas/``, so the reference can never drift.

python -m runner.docgen            # rewrite docs/manifests.md
python -m runner.docgen --check    # exit 1 if it is out of date (tests run this)

The file has two parts: the field reference, generated, and below ``HANDWRITTEN`` the
rules no schema can say (how paths and globs are read, what counts as a change), written
by hand and kept as they are when the reference is regenerated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runner.manifests.schema import load_schema
from runner.units import DURATION_PATTERN, QUANTITY_PATTERN

HANDWRITTEN = "<!-- Below this line is written by hand; python -m runner.docgen keeps it. -->"

ORDER = [
    ("workflow", "Workflow"),
    ("resourcequota", "ResourceQuota"),
    ("project", "Project"),
    ("steptemplate", "StepTemplate"),
    ("config", "Config (.orch/config.yaml)"),
]


def _type(s: dict[str, Any]) -> str:
    if "const" in s:
        return f"`{s['const']}`"
    if "enum" in s:
        return " \\| ".join(f"`{v}`" for v in s["enum"])
    if "oneOf" in s:
        kinds = []
        for b in s["oneOf"]:
            if b.get("pattern") == DURATION_PATTERN:
                kinds.append("duration")
            elif b.get("pattern") == QUANTITY_PATTERN:
                kinds.append("quantity")
            else:
                kinds.append(_type(b))
        return " or ".join(dict.fromkeys(kinds))
    t = s.get("type")
    if isinstance(t, list):
        return " or ".join(t)
    if t == "array":
        return f"list of {_type(s.get('items', {}))}"
    if (
        t == "object"
        and "additionalProperties" in s
        and isinstance(s["additionalProperties"], dict)
    ):
        return f"map of {_type(s['additionalProperties'])}"
    return t or "any"


def _rows(schema: dict[str, Any], prefix: str, out: list[str]) -> None:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    for name, s in props.items():
        path = f"{prefix}{name}"
        desc = s.get("description", "")
        if not desc and "oneOf" in s:
            desc = next((b.get("description", "") for b in s["oneOf"] if b.get("description")), "")
        req = "yes" if name in required else ""
        out.append(f"| `{path}` | {_type(s)} | {req} | {desc} |")
        target = s
        if s.get("type") == "array" and isinstance(s.get("items"), dict):
            target = s["items"]
            path += "[]"
        elif "oneOf" in s:
            target = next((b for b in s["oneOf"] if b.get("type") == "object"), s)
        if target.get("type") == "object" and "properties" in target:
            _rows(target, path + ".", out)
        elif (
            isinstance(target.get("additionalProperties"), dict)
            and "properties" in target["additionalProperties"]
        ):
            _rows(target["additionalProperties"], path + ".<name>.", out)


def render() -> str:
    out = [
        "# Manifest reference",
        "",
        "Generated from `schemas/*.json` by `python -m runner.docgen`; do not edit by hand.",
        "Every object is closed: an unknown key is an error, with the nearest valid key as a hint.",
        "",
        "**Durations**: a number with a unit, `500ms`, `30s`, `10m`, `1h`, `1h30m`, `1d`, or a bare number of seconds.",
        "**Quantities**: a plain number (`2`, `0.5`) or a number with a suffix: `m` (milli: `500m` cpu = 0.5),",
        "decimal `k M G T`, binary `Ki Mi Gi Ti` (`512Mi`). Memory is in bytes, cpu in cores.",
        "**YAML**: 1.2 scalars (`on`, `yes`, `no`, `off` are strings; `1:30` is a string; `010` is 10);",
        "duplicate keys are errors; aliases, nesting depth (64) and file size (8 MiB) are bounded.",
        "",
    ]
    for name, title in ORDER:
        schema = load_schema(name)
        out += [
            f"## {title}",
            "",
            schema.get("description", ""),
            "",
            "| field | type | required | meaning |",
            "|---|---|---|---|",
        ]
        _rows(schema, "", out)
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(__file__).resolve().parent.parent / "docs" / "manifests.md"
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    generated, sep, handwritten = old.partition("\n" + HANDWRITTEN + "\n")
    text = render()
    if "--check" in argv:
        if generated != text:
            print(f"{target} is out of date: run python -m runner.docgen", file=sys.stderr)
            return 1
        return 0
    if sep:
        text += sep + handwritten
    target.parent.mkdir(exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
