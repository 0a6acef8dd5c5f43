"""Generate benchmark repositories: one workflow of N steps in a chosen shape.

Shapes (edges point from a step to the steps that need it; indices only grow
along an edge, so "the last K steps" are always closed under "runs after")::

    chain     s0 -> s1 -> s2 -> ... -> sN-1
    fan       s0 -> {s1 .. sN-2} -> sN-1
    layered   layers of ~sqrt(N) steps; each step needs 2-3 steps of the layer before
              (chosen with a seeded RNG, so a size and seed always give the same graph)

Steps are trivial (``run: "true"``) unless ``files`` is set: then step i reads
``inputs/<i>.txt`` and writes ``out/<i>.txt``, declared as inputs/outputs, and the
last ``shared`` steps (default 100) also read ``inputs/shared.txt``. Editing that
one file therefore changes the inputs of exactly ``shared`` steps, and because they
are the last ones, nothing else sits downstream of them: a correct runner re-runs
exactly those.

The same graph can be written for peers (``make``, ``snakemake``, ``dvc``) so the
figures compare like with like.

    python bench/gen.py /tmp/repo --steps 1000 --shape layered --files
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import git  # noqa: E402

SHAPES = ("chain", "fan", "layered")
TOOLS = ("orch", "make", "snakemake", "dvc")


@dataclass(frozen=True)
class Step:
    index: int
    name: str
    needs: tuple[str, ...]
    reads_shared: bool = False

    @property
    def key(self) -> str:
        """The zero-padded number used in file names (``inputs/<key>.txt``)."""
        return self.name[1:]


def _needs(n: int, shape: str, seed: int) -> list[list[int]]:
    """For each step index, the indices it needs (all smaller than itself)."""
    if shape == "chain":
        return [[] if i == 0 else [i - 1] for i in range(n)]
    if shape == "fan":
        if n <= 2:
            return [[] if i == 0 else [0] for i in range(n)]
        middle = list(range(1, n - 1))
        return [[]] + [[0] for _ in middle] + [middle]
    if shape == "layered":
        rng = random.Random(seed)
        width = max(1, round(math.sqrt(n)))
        deps: list[list[int]] = []
        for i in range(n):
            layer = i // width
            if layer == 0:
                deps.append([])
                continue
            prev = list(range((layer - 1) * width, layer * width))
            k = min(len(prev), rng.choice((2, 3)))
            deps.append(sorted(rng.sample(prev, k)))
        return deps
    raise ValueError(f"unknown shape {shape!r} (choose from {', '.join(SHAPES)})")


def build_steps(n: int, shape: str, seed: int = 0, shared: int = 0) -> list[Step]:
    """The graph as data, in index order; the last `shared` steps read the shared input."""
    if n < 1:
        raise ValueError("a workflow needs at least one step")
    width = max(4, len(str(n - 1)))
    names = [f"s{i:0{width}d}" for i in range(n)]
    first_sharer = n - min(shared, n)
    return [
        Step(i, names[i], tuple(names[j] for j in deps), reads_shared=i >= first_sharer)
        for i, deps in enumerate(_needs(n, shape, seed))
    ]


def step_inputs(step: Step) -> list[str]:
    inputs = [f"inputs/{step.key}.txt"]
    if step.reads_shared:
        inputs.append("inputs/shared.txt")
    return inputs


def step_command(step: Step, files: bool, out: str | None = None) -> str:
    """The shell command of a step; `out` overrides the output path (make's ``$@``)."""
    if not files:
        return "true"
    return f"cat {' '.join(step_inputs(step))} > {out or f'out/{step.key}.txt'}"


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(x) for x in items) + "]"


def workflow_yaml(name: str, steps: list[Step], files: bool, extra: str = "") -> str:
    """The Workflow manifest, written by hand (fast for 10,000 steps, stable diffs)."""
    lines = [
        "apiVersion: orch/v1",
        "kind: Workflow",
        "metadata:",
        f"  name: {name}",
        "spec:",
    ]
    if extra:
        lines.extend(extra.rstrip("\n").splitlines())
    lines.append("  steps:")
    for step in steps:
        lines.append(f"    - name: {step.name}")
        if step.needs:
            lines.append(f"      needs: {_flow(list(step.needs))}")
        lines.append(f"      run: {json.dumps(step_command(step, files))}")
        if files:
            lines.append(f"      inputs: {_flow(step_inputs(step))}")
            lines.append(f"      outputs: {_flow([f'out/{step.key}.txt'])}")
    return "\n".join(lines) + "\n"


CONFIG_YAML = 'apiVersion: orch/v1\nkind: Config\nmanifests: ["."]\n'
ORCH_GITIGNORE = "*\n!config.yaml\n!.gitignore\n"


def init_orch_repo(root: Path) -> None:
    """An empty orch repository: git init, ``.orch/config.yaml`` and ``.orch/.gitignore``."""
    root.mkdir(parents=True, exist_ok=True)
    git("init", "-q", cwd=root)
    (root / ".orch").mkdir(exist_ok=True)
    (root / ".orch" / "config.yaml").write_text(CONFIG_YAML)
    (root / ".orch" / ".gitignore").write_text(ORCH_GITIGNORE)
    (root / ".gitignore").write_text(".stamps/\n.snakemake/\n")


def write_input_files(root: Path, steps: list[Step]) -> None:
    (root / "inputs").mkdir(exist_ok=True)
    for step in steps:
        (root / "inputs" / f"{step.key}.txt").write_text(f"input of {step.name}\n")
    (root / "inputs" / "shared.txt").write_text("shared input, version 0\n")
    out = root / "out"
    out.mkdir(exist_ok=True)
    (out / ".gitignore").write_text("*\n!.gitignore\n")


def write_filler(root: Path, count: int) -> None:
    """`count` small files under ``data/`` (100 per folder): a repo of realistic size."""
    for i in range(count):
        folder = root / "data" / f"d{i // 100:04d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.txt").write_text(f"filler {i}\n")


def makefile(steps: list[Step], files: bool) -> str:
    """GNU make equivalent: one target per step; trivial steps touch a stamp file."""

    def target(step: Step) -> str:
        return f"out/{step.key}.txt" if files else f".stamps/{step.name}"

    by_name = {s.name: s for s in steps}
    lines = [".DEFAULT_GOAL := all", ""]
    for step in steps:
        prereqs = [target(by_name[d]) for d in step.needs]
        if files:
            prereqs = step_inputs(step) + prereqs
        lines.append(f"{target(step)}: {' '.join(prereqs)}".rstrip())
        lines.append(f"\t@{step_command(step, files, '$@') if files else ': > $@'}")
    lines.append("")
    lines.append("all: " + " ".join(target(s) for s in steps))
    lines.append(".PHONY: all")
    return "\n".join(lines) + "\n"


def snakefile(steps: list[Step], files: bool) -> str:
    """Snakemake equivalent: one wildcard rule whose inputs come from a dependency table."""
    deps = {s.key: [d[1:] for d in s.needs] for s in steps}
    head = f'DEPS = {json.dumps(deps)}\nwildcard_constraints:\n    k=r"\\d+"\n\n'
    if files:
        reads = {s.key: step_inputs(s) for s in steps}
        return (
            head + f"READS = {json.dumps(reads)}\n\n"
            "rule all:\n"
            "    input: expand('out/{k}.txt', k=DEPS)\n\n"
            "rule step:\n"
            "    input: lambda w: READS[w.k] + ['out/%s.txt' % d for d in DEPS[w.k]]\n"
            "    output: 'out/{k}.txt'\n"
            "    params: reads=lambda w: ' '.join(READS[w.k])\n"
            "    shell: 'cat {params.reads} > {output}'\n"
        )
    return (
        head + "rule all:\n"
        "    input: expand('.stamps/s{k}', k=DEPS)\n\n"
        "rule step:\n"
        "    input: lambda w: ['.stamps/s%s' % d for d in DEPS[w.k]]\n"
        "    output: '.stamps/s{k}'\n"
        "    shell: ': > {output}'\n"
    )


def dvc_yaml(steps: list[Step], files: bool) -> str:
    """DVC equivalent: one stage per step; trivial steps write an uncached stamp."""
    lines = ["stages:"]
    for step in steps:
        if files:
            deps = step_inputs(step) + [f"out/{d[1:]}.txt" for d in step.needs]
            out = f"out/{step.key}.txt"
            cmd = step_command(step, files)
        else:
            deps = [f".stamps/{d}" for d in step.needs] or ["seed.txt"]
            out = f".stamps/{step.name}"
            cmd = f"echo {step.name} > {out}"
        lines.append(f"  {step.name}:")
        lines.append(f"    cmd: {json.dumps(cmd)}")
        lines.append(f"    deps: {_flow(deps)}")
        lines.append(f"    outs: [{{{json.dumps(out)}: {{cache: false}}}}]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Generated:
    root: Path
    workflow: str
    steps: list[Step]


def generate(
    root: Path,
    n: int,
    shape: str = "layered",
    *,
    files: bool = False,
    seed: int = 0,
    shared: int = 100,
    tool: str = "orch",
    filler: int = 0,
    commit: bool = True,
    name: str | None = None,
) -> Generated:
    """Write a repository at `root` holding the N-step workflow for `tool`."""
    steps = build_steps(n, shape, seed, shared if files else 0)
    workflow = name or f"bench-{shape}-{n}"
    root.mkdir(parents=True, exist_ok=True)
    if tool == "orch":
        init_orch_repo(root)
        (root / "workflow.yaml").write_text(workflow_yaml(workflow, steps, files))
    elif tool == "make":
        (root / "Makefile").write_text(makefile(steps, files))
    elif tool == "snakemake":
        (root / "Snakefile").write_text(snakefile(steps, files))
    elif tool == "dvc":
        git("init", "-q", cwd=root)
        (root / "dvc.yaml").write_text(dvc_yaml(steps, files))
        (root / "seed.txt").write_text("seed\n")
        (root / ".gitignore").write_text(".stamps/\n")
    else:
        raise ValueError(f"unknown tool {tool!r} (choose from {', '.join(TOOLS)})")
    if not files:
        (root / ".stamps").mkdir(exist_ok=True)
    else:
        write_input_files(root, steps)
    if filler:
        write_filler(root, filler)
    if commit and tool in ("orch", "dvc"):
        git("add", "-A", cwd=root)
        git("commit", "-q", "-m", f"bench: {workflow}", cwd=root)
    return Generated(root, workflow, steps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="directory to create (may exist)")
    parser.add_argument("--steps", "-n", type=int, default=100)
    parser.add_argument("--shape", choices=SHAPES, default="layered")
    parser.add_argument("--files", action="store_true", help="steps read/write files")
    parser.add_argument("--shared", type=int, default=100, help="steps reading inputs/shared.txt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tool", choices=TOOLS, default="orch")
    parser.add_argument("--filler", type=int, default=0, help="extra files under data/")
    parser.add_argument("--name", help="workflow name (default bench-SHAPE-N)")
    parser.add_argument("--no-commit", action="store_true")
    args = parser.parse_args(argv)
    gen = generate(
        args.root,
        args.steps,
        args.shape,
        files=args.files,
        seed=args.seed,
        shared=args.shared,
        tool=args.tool,
        filler=args.filler,
        commit=not args.no_commit,
        name=args.name,
    )
    edges = sum(len(s.needs) for s in gen.steps)
    print(f"{gen.root}: workflow {gen.workflow}, {len(gen.steps)} steps, {edges} edges")
    return 0


if __name__ == "__main__":
    sys.exit(main())
