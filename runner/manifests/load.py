"""The load pipeline: discover -> read -> YAML -> schema -> model -> checks -> DAGs.

Every problem in every file is collected before anything is raised, so one
``orch validate`` shows the whole list::

    sources.list_manifest_files ──> yamlsrc.load_text ──> schema.validate_document
          │                                                      │
          └── config (.orch/config.yaml)                         v
                                          model.build_* ──> checks.check_all ──> graph.build_dag
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner import globs
from runner.errors import Diagnostic, OrchError
from runner.manifests.catalog import Config, Manifests
from runner.manifests.fanout import expand, fanned
from runner.manifests.paths import LINK_OUT, LINK_OUT_HINT, leaves_repository
from runner.manifests.schema import check_header, repaired, validate_document
from runner.manifests.sources import list_manifest_files
from runner.manifests.steptemplates import (
    StepTemplate,
    build_template,
    check_template,
    expand_steps,
)
from runner.manifests.yamlsrc import MAX_BYTES, Document, decode, load_text, read_file
from runner.model import build_project, build_quota, build_workflow

CONFIG_PATH = ".orch/config.yaml"
_ORCH_API = re.compile(r"apiVersion[\"']?\s*:\s*[\"']?orch/")


def read_config(root: Path) -> tuple[Config, list[Diagnostic]]:
    from runner.fsutil import read_regular

    path = root / CONFIG_PATH
    if path.is_symlink() and leaves_repository(root, CONFIG_PATH):
        return Config(), [Diagnostic(CONFIG_PATH, 0, 0, "", LINK_OUT, LINK_OUT_HINT)]
    try:
        raw, size = read_regular(path, MAX_BYTES)
    except FileNotFoundError:
        return Config(), []
    except NotADirectoryError as e:  # a file named .orch where orch keeps its folder
        hint = "a file named .orch stands where orch keeps its folder; move it away"
        return Config(), [Diagnostic(CONFIG_PATH, 0, 0, "", f"cannot read: {e.strerror}", hint)]
    except OSError as e:
        return Config(), [Diagnostic(CONFIG_PATH, 0, 0, "", f"cannot read: {e.strerror}")]
    return parse_config(raw, size)


def parse_config(raw: bytes, size: int | None = None) -> tuple[Config, list[Diagnostic]]:
    """The config from its bytes (``size``: the file's, when ``raw`` is its bounded start);
    also used for the config at a git revision."""
    text, diag = decode(raw, CONFIG_PATH, size)
    if diag:
        return Config(), [diag]
    assert text is not None
    docs, diags = load_text(text, CONFIG_PATH)
    if diags:
        return Config(), diags
    if not docs or docs[0].data is None:
        return Config(exists=True), []
    doc = docs[0]
    if not isinstance(doc.data, dict):
        return Config(), [Diagnostic(CONFIG_PATH, doc.line, 1, "", "expected a mapping")]
    diags = list(validate_document(doc, "config"))
    d = doc.data
    for key in ("manifests", "exclude"):
        patterns = d.get(key)
        for i, pattern in enumerate(patterns if isinstance(patterns, list) else ()):
            if not isinstance(pattern, str):
                continue
            try:
                globs.check(pattern)
            except globs.GlobError as e:
                line, col = doc.where((key, i))
                diags.append(Diagnostic(CONFIG_PATH, line, col, f"{key}[{i}]", str(e)))
    if diags:
        return Config(), diags
    from runner.units import parse_duration

    return (
        Config(
            manifests=tuple(d.get("manifests", (".",))),
            exclude=tuple(d.get("exclude", ())),
            templates=d.get("templates"),
            jobs=d.get("jobs"),
            debounce=parse_duration(d["debounce"]) if "debounce" in d else 0.1,
            exists=True,
            executor=d.get("executor"),
            max_instances=d.get("max_instances", 10_000),
            audit_max_rows=(d.get("audit") or {}).get("max_rows", 10_000),
            audit_max_age=parse_duration((d.get("audit") or {}).get("max_age", "90d")),
            cache=_cache_setting(d.get("cache")),
        ),
        [],
    )


def _cache_setting(value: Any) -> bool | dict[str, Any] | None:
    """``cache:`` as the store reads it: a ``max_size`` with units (``5Gi``, ``500M``;
    a ``B`` after them is allowed: ``5GiB``) as a number of bytes."""
    if not isinstance(value, dict) or "max_size" not in value:
        return value
    from runner.units import parse_quantity

    size = value["max_size"]
    if isinstance(size, str):
        size = size.strip().removesuffix("B")
    return {**value, "max_size": int(parse_quantity(size))}


def runs_here(config: Config) -> bool:
    """Whether the config runs tasks on this machine (executor ``local``, the default),
    where the host is the ceiling of every ``cpu``/``memory`` request; with ``kind: dask``
    the workers are, checked when the run connects (``execute.dask``)."""
    return (config.executor or {}).get("kind", "local") != "dask"


def select_files(all_files: list[str], config: Config) -> list[str]:
    """Manifest candidates named by the config, minus nested orch repositories.

    A folder holding its own ``.orch/config.yaml`` is a repository of its own (like a git
    submodule): the outer one does not read its manifests.
    """
    nested = [f[: -len(CONFIG_PATH)] for f in all_files if f.endswith("/" + CONFIG_PATH)]
    if config.templates:  # the repository's own templates are sources, not manifests
        nested.append(config.templates.strip("/").removeprefix("./") + "/")
    out = []
    for f in all_files:
        if f.endswith(CONFIG_PATH) or any(f.startswith(n) for n in nested):
            continue
        if not _selected(f, config.manifests):
            continue
        if any(globs.match(x, f) for x in config.exclude):
            continue
        out.append(f)
    return out


def _selected(f: str, patterns: tuple[str, ...]) -> bool:
    for p in patterns:
        p = p.strip()
        if p in (".", "./", ""):
            return True
        p = p[2:] if p.startswith("./") else p
        if f == p or f.startswith(p.rstrip("/") + "/") or globs.match(p, f):
            return True
    return False


def load(
    root: Path,
    extra_paths: list[str] | None = None,
    display_prefix: str = "",
) -> Manifests:
    """Everything under ``root``, validated; raises OrchError listing every problem."""
    config, diags = read_config(root)
    # the config's problems are named from where the user stands, as the manifests' are
    diags = [d._replace(path=display_prefix + d.path) for d in diags]
    files = select_files(list_manifest_files(root), config)
    for p in extra_paths or ():
        rel = _relpath(root, p)
        _check_named(root, rel, p)
        if rel not in files:
            files.append(rel)
    texts: dict[str, str] = {}
    for f in files:
        if leaves_repository(root, f):
            diags.append(Diagnostic(display_prefix + f, 0, 0, "", LINK_OUT, LINK_OUT_HINT))
            continue
        try:
            text, d = read_file(root / f, display_prefix + f)
        except (IsADirectoryError, FileNotFoundError):
            continue
        if d:
            diags.append(d)
        elif text is not None:
            texts[f] = text
    reader = RecordedOutputs(root)
    try:
        return load_texts(root, config, texts, display_prefix, diags, reader)
    finally:
        reader.close()


class RecordedOutputs:
    """(status, outputs) of a step's latest record, for a ``foreach`` over an upstream
    output; the state is opened read-only, and only when such a foreach asks."""

    def __init__(self, root: Path):
        self.root = root
        self.state: Any = None

    def __call__(self, workflow: str, step: str) -> tuple[str, dict[str, str]] | None:
        if self.state is None:
            if not (self.root / ".orch" / "state.db").exists():
                return None
            from runner.store.state import State

            self.state = State(self.root / ".orch", readonly=True)
        rec = self.state.step_record(workflow, step)
        return (rec.status, dict(rec.outputs)) if rec is not None else None

    def close(self) -> None:
        if self.state is not None:
            self.state.close()


def load_texts(
    root: Path,
    config: Config,
    texts: dict[str, str],
    display_prefix: str = "",
    diags: list[Diagnostic] | None = None,
    outputs_of: Any = None,
) -> Manifests:
    """The pipeline after reading: also used for manifests read from a git revision.
    ``outputs_of``: see ``fanout.expand``."""
    from runner.manifests.checks import check_all

    diags = list(diags or [])
    m = Manifests(root=root, config=config, files=tuple(sorted(texts)))
    templates: dict[str, StepTemplate] = {}
    workflows: list[tuple[str, Document]] = []
    for f in sorted(texts):
        for doc in _documents(m, f, texts[f], display_prefix + f, diags):
            _enter_by_kind(m, f, doc, templates, workflows, diags)
    m.step_templates = tuple(sorted(templates))
    _build_workflows(m, workflows, templates, outputs_of, diags)
    diags.extend(check_all(m, display_prefix))
    if diags and runs_here(config):  # said with the others (alone: ``Repo.manifests``)
        diags.extend(m.host_diags)
    if diags:
        err = OrchError(diagnostics=diags)
        err.warnings = m.warnings
        raise err
    from runner.manifests.fingerprint import static_fields

    for wf in m.workflows.values():
        for s in wf.steps:
            m.static_fields[(wf.name, s.name)] = static_fields(s)
    for doc in m.documents.values():
        # positions only ever serve diagnostics, all of which are found by now; at 10,000
        # steps they are a third of the memory and of the manifest cache
        doc.pos, doc.keypos = {}, {}
    return m


def _documents(
    m: Manifests, f: str, text: str, display: str, diags: list[Diagnostic]
) -> Iterator[Document]:
    """The orch manifests in file ``f`` (``text``), each past its header and schema check
    (a document with schema errors repaired, so its other problems are found too) and
    entered in ``m.documents`` as it is given; problems go into ``diags``."""
    docs, d = load_text(text, display)
    if d and not _ORCH_API.search(text):
        # not ours and not YAML we can read (a Helm chart's template, say): a manifest
        # would say apiVersion: orch/..., so this one is skipped, with a word about it
        m.warnings.append(
            f"{d[0]}: skipped (no apiVersion: orch/ in it); "
            f"list it under exclude: in {CONFIG_PATH} to silence this"
        )
        return
    diags.extend(d)
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict):
            continue
        api = data.get("apiVersion")
        if not (isinstance(api, str) and api.startswith("orch/")):
            continue  # not ours
        if data.get("kind") == "Config":
            continue
        schema_name, d = check_header(doc)
        diags.extend(d)
        if schema_name is None:
            continue
        d = validate_document(doc, schema_name)
        if d:
            diags.extend(d)
            # check the rest of it too: one schema error must not hide the others
            data = repaired(doc, schema_name)
            if data is None:
                continue
            doc = Document(doc.path, doc.index, data, doc.line, doc.pos, doc.keypos, doc.retyped)
        m.documents[(f, doc.index)] = doc
        yield doc


def _enter_by_kind(
    m: Manifests,
    f: str,
    doc: Document,
    templates: dict[str, StepTemplate],
    workflows: list[tuple[str, Document]],
    diags: list[Diagnostic],
) -> None:
    """One manifest into its table by kind; a Workflow waits in ``workflows`` until every
    StepTemplate is known."""
    data = doc.data
    kind = data["kind"]
    if kind == "Workflow":
        workflows.append((f, doc))  # built once every StepTemplate is known
    elif kind == "StepTemplate":
        t = build_template(f, doc)
        _add(templates, t.name, t, doc, diags, "StepTemplate", m)
        diags.extend(check_template(t, doc))
    elif kind == "ResourceQuota":
        q = build_quota(f, doc.line, data)
        _add(m.quotas, q.name, q, doc, diags, "quota", m)
    elif kind == "Project":
        p = build_project(f, doc.line, data)
        _add(m.projects, p.name, p, doc, diags, "project", m)


def _build_workflows(
    m: Manifests,
    workflows: list[tuple[str, Document]],
    templates: dict[str, StepTemplate],
    outputs_of: Any,
    diags: list[Diagnostic],
) -> None:
    """Each Workflow built into ``m.workflows``: its ``uses:`` steps expanded from their
    StepTemplates first, then its ``matrix:``/``foreach:`` steps fanned out into instances
    (a template's step may fan out too)."""
    for f, doc in workflows:
        data, d, used = expand_steps(doc, templates)
        diags.extend(d)
        wf = build_workflow(f, doc.index, doc.line, data)
        if fanned(wf):  # after uses: a template's step may fan out too
            wf, d = expand(wf, doc, m.root, m.config.max_instances, m, outputs_of)
            diags.extend(d)
        _add(m.workflows, wf.name, wf, doc, diags, "workflow", m)
        if used and m.workflows.get(wf.name) is wf:
            m.template_files[wf.name] = used


def _add(
    table: dict[str, Any],
    name: str,
    obj: Any,
    doc: Document,
    diags: list[Diagnostic],
    what: str,
    m: Manifests,
) -> None:
    if name in table:
        first = table[name]
        line, col = doc.where(("metadata", "name"))
        diags.append(
            Diagnostic(
                doc.path,
                line,
                col,
                "metadata.name",
                f"duplicate {what} name '{name}'",
                f"first defined at {first.loc.path}:{first.loc.line}",
            )
        )
        return
    table[name] = obj


def _check_named(root: Path, rel: str, p: str) -> None:
    """A file named on the command line must be one: a typo is never "ok" (as ``git add``
    and ``kubectl apply -f`` refuse a path that names nothing). Raises OrchError."""
    full = root / rel
    if not os.path.lexists(full):
        raise OrchError(f"{p}: no such file (give the path of a manifest)")
    if full.is_dir():
        raise OrchError(f"{p}: a folder, not a manifest (without PATH every manifest is checked)")


def _relpath(root: Path, p: str) -> str:
    ap = Path(p) if os.path.isabs(p) else Path.cwd() / p
    try:
        return ap.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise OrchError(f"{p}: outside the repository {root}") from None
