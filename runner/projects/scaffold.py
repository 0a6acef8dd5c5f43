"""Templates for projects and workflows: discover, describe, render, move into place.

::

    runner/templates/{project,workflow}/NAME/   shipped with orch     ─┐
    <.orch/config.yaml `templates:`>/NAME/      the repository's own  ─┴─> discover()
                                                                             │
    create(kind, name, template, params, path)  <────────────────────────────┘
      resolve params ─> render every file in memory ─> refuse any existing file that differs
      ─> validate the new manifests together with the repository's ─> write into a temp
      folder beside the target ─> move into place (one rename for a new folder, else file by
      file with link(2), which never replaces a file)

A template folder holds ``template.yaml`` (kind, description, parameters and, for a project,
the workflow templates laid out with it; read by ``runner.projects.templates_index``) and the files
to write. File and folder names are
templates too (``{{ name }}.yaml.j2``); a name's ``dot_`` prefix becomes ``.`` (so packaging
never drops a ``.gitignore``); files ending in ``.j2`` are rendered with Jinja (sandboxed,
strict, through ``runner.templating``) and lose the suffix; every other file is copied byte
for byte. A template that renders an invalid manifest, or a file that already exists with
other content, is an error before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import Diagnostic, OrchError, UsageError
from runner.fsutil import NotRegularFile, read_regular, same_bytes
from runner.projects.templates_index import (
    KINDS,
    META,
    SKIP_NAMES,
    SKIP_SUFFIXES,
    Template,
    find,
    list_templates,
    resolve_params,
)

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests
    from runner.workspace import Repo

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")


@dataclass
class Created:
    """What ``create`` wrote; paths are repository-relative."""

    kind: str
    name: str
    template: str
    dir: str
    files: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already there, byte-identical
    workflows: list[str] = field(default_factory=list)
    project: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "template": self.template,
            "dir": self.dir,
            "project": self.project,
            "files": self.files,
            "unchanged": self.unchanged,
            "workflows": self.workflows,
        }


@dataclass
class _File:
    rel: str  # relative to the target folder, posix
    data: bytes
    executable: bool
    origin: str  # template file it came from, for messages


# --------------------------------------------------------------------------- rendering


def render_files(
    t: Template, context: dict[str, Any], only: tuple[str, ...] | None = None
) -> list[_File]:
    """Every file of ``t`` (or just the ``only`` ones, named as they are in the template
    folder), rendered in memory, as (path in the target folder, bytes)."""
    from runner.templating import TemplateError, is_templated, render_text

    if only is not None:
        missing = [o for o in only if not (t.dir / o).is_file()]
        if missing:
            raise OrchError(f"{t.source}:{t.kind}/{t.name}: has no file {', '.join(missing)}")
    files: list[_File] = []
    for src in sorted(t.dir.rglob("*")):
        rel_src = src.relative_to(t.dir)
        if any(part in SKIP_NAMES for part in rel_src.parts) or src.suffix in SKIP_SUFFIXES:
            continue
        if rel_src.as_posix() == META or src.is_dir():
            continue
        if only is not None and rel_src.as_posix() not in only:
            continue
        where = f"{t.source}:{t.kind}/{t.name}/{rel_src.as_posix()}"
        if src.is_symlink() or not src.is_file():
            raise OrchError(f"{where}: templates hold regular files only")
        parts = []
        for part in rel_src.parts:
            name = part
            if is_templated(name):
                try:
                    name = render_text(name, context)
                except TemplateError as e:
                    raise OrchError(f"{where}: file name: {e.message}") from None
            if name.startswith("dot_"):
                name = "." + name[4:]
            parts.append(name)
        render = parts[-1].endswith(".j2")
        if render:
            parts[-1] = parts[-1][: -len(".j2")]
        rel = "/".join(parts)
        if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts):
            raise OrchError(
                f"{where}: renders to the path {rel!r}, which is not a plain relative path"
            )
        data = _read_template_file(src, where)
        if render:
            try:
                data = render_text(data.decode("utf-8"), context).encode("utf-8")
            except UnicodeDecodeError:
                raise OrchError(f"{where}: a .j2 file must be UTF-8 text") from None
            except TemplateError as e:
                line = f":{e.lineno}" if e.lineno else ""
                raise OrchError(f"{where}{line}: {e.message}") from None
        executable = bool(src.stat().st_mode & stat.S_IXUSR)
        files.append(_File(rel, data, executable, where))
    return files


def _read_template_file(src: Path, where: str) -> bytes:
    """A template file's bytes: a regular file only, up to the manifest size limit (8 MiB),
    as manifests are read (``fsutil.read_regular``), so a file in the repository's own
    templates folder that is huge, a FIFO or a device ends in one line, never a hang."""
    from runner.manifests.yamlsrc import MAX_BYTES

    try:
        data, size = read_regular(src, MAX_BYTES)
    except NotRegularFile:
        raise OrchError(f"{where}: templates hold regular files only") from None
    except OSError as e:
        raise OrchError(f"{where}: cannot read: {e.strerror or e}") from None
    if size > MAX_BYTES:
        raise OrchError(
            f"{where}: larger than {MAX_BYTES // (1 << 20)} MiB; a template holds text and"
            " small files (fetch big data in a step instead)"
        )
    return data


def borrowed_files(t: Template, templates: list[Template], context: dict[str, Any]) -> list[_File]:
    """The files ``t`` takes from workflow templates, rendered with ``t``'s own context."""
    files: list[_File] = []
    for b in t.borrows:
        files.extend(render_files(find(templates, "workflow", b.template), context, b.paths))
    return files


# --------------------------------------------------------------------------- create


def create(
    repo: Repo,
    kind: str,
    name: str,
    template: str,
    params: dict[str, str] | None = None,
    path: str | None = None,
    cwd: Path | None = None,
) -> Created:
    """Lay out a project (or a workflow) from a template; all of it or nothing.

    ``path`` is the target folder, relative to ``cwd`` (default: ``NAME`` for a project,
    ``cwd`` itself for a workflow). An existing file is never replaced: the same bytes are
    left alone, other bytes are an error, and nothing is written.
    """
    if kind not in KINDS:
        raise UsageError(f"kind must be one of {', '.join(KINDS)}")
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"{name!r} is not a valid {kind} name (letters, digits, '_' and '-', at most 100)"
        )
    root = repo.root
    templates = list_templates(repo)
    t = find(templates, kind, template)
    m, load_error = _current(repo)
    _check_name_free(repo, m, kind, name)

    base = Path(cwd) if cwd is not None else Path.cwd()
    target = Path(path) if path else (Path(name) if kind == "project" else Path("."))
    dest = Path(os.path.normpath(base / target if not target.is_absolute() else target))
    dest_rel = _inside(root, dest, path or str(target))
    project = name if kind == "project" else _project_at(m, dest_rel)
    context = {"name": name, "project": project, "path": dest_rel or ".", "template": t.name}
    values = resolve_params(t, dict(params or {}), context)
    files = render_files(t, {**context, "params": values})
    files.extend(borrowed_files(t, templates, {**context, "params": values}))
    for inc in t.workflows:
        sub = find(templates, "workflow", inc.template)
        from runner.templating import render_text

        ctx = {**context, "params": values}
        wname = render_text(inc.name, ctx)
        if not NAME_PATTERN.match(wname):
            raise OrchError(f"template '{t.name}': workflow name {wname!r} is not valid")
        _check_name_free(repo, m, "workflow", wname)
        given = {k: render_text(v, ctx) if isinstance(v, str) else v for k, v in inc.params.items()}
        sub_ctx = {"name": wname, "project": project, "path": context["path"], "template": sub.name}
        sub_values = resolve_params(sub, given, sub_ctx)
        files.extend(render_files(sub, {**sub_ctx, "params": sub_values}))
    files = _merge(files)

    out = Created(kind, name, t.name, dest_rel or ".", project=project)
    conflicts = []
    to_write: list[_File] = []
    for f in files:
        final = dest / f.rel
        rel = _join(dest_rel, f.rel)
        clash = _clash(dest, f.rel)
        if clash is not None:
            conflicts.append(f"{repo.prefix}{_join(dest_rel, clash)}: exists and is not a folder")
        elif final.is_symlink() or final.exists():
            if not final.is_symlink() and same_bytes(final, f.data):
                out.unchanged.append(rel)
            else:
                conflicts.append(f"{repo.prefix}{rel}: already exists")
        else:
            to_write.append(f)
    if conflicts:
        raise OrchError(
            f"{kind} '{name}' not created, nothing was written: "
            f"{len(conflicts)} file{'s' if len(conflicts) != 1 else ''} in the way "
            "(orch never overwrites; move them or pick another --path):\n  "
            + "\n  ".join(conflicts)
        )
    out.workflows = _validate_new(repo, dest_rel, to_write, load_error, kind, name)
    _write(dest, to_write)
    out.files = [_join(dest_rel, f.rel) for f in to_write]
    return out


def _current(repo: Repo) -> tuple[Manifests | None, OrchError | None]:
    try:
        return repo.manifests(), None
    except OrchError as e:  # a broken manifest elsewhere does not stop a new project
        return None, e


def _check_name_free(repo: Repo, m: Manifests | None, kind: str, name: str) -> None:
    if m is not None:
        table = m.projects if kind == "project" else m.workflows
        if name in table:
            where = table[name].loc
            raise UsageError(
                f"a {kind} named '{name}' already exists ({repo.prefix}{where.path}:{where.line})"
            )
    if kind == "project":
        from runner.projects.archived import archived_names

        if name in archived_names(repo):
            raise UsageError(
                f"a project named '{name}' is archived (orch project restore {name}, or pick another name)"
            )


def _inside(root: Path, dest: Path, shown: str) -> str:
    """``dest`` as a repository-relative posix path ("" for the root), or why it cannot be."""
    real_root = root.resolve()
    probe = dest
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    real = probe.resolve() / dest.relative_to(probe)
    try:
        rel = real.relative_to(real_root).as_posix()
    except ValueError:
        raise UsageError(f"--path {shown}: outside the repository {root}") from None
    rel = "" if rel == "." else rel
    first = rel.split("/", 1)[0]
    if first in (".git", ".orch"):
        raise UsageError(f"--path {shown}: inside {first}/, which orch keeps for itself")
    return rel


def _project_at(m: Manifests | None, dest_rel: str) -> str | None:
    """The project whose folder holds ``dest_rel``: a workflow created there joins it."""
    if m is None:
        return None
    best: tuple[int, str] | None = None
    for p in m.projects.values():
        d = "" if p.dir in (".", "") else p.dir
        inside = d == "" or dest_rel == d or dest_rel.startswith(d + "/")
        if inside and (best is None or len(d) > best[0]):
            best = (len(d), p.name)
    return best[1] if best and best[0] > 0 else None


def _merge(files: list[_File]) -> list[_File]:
    """One entry per path; two templates writing the same path must agree on its bytes."""
    seen: dict[str, _File] = {}
    for f in files:
        first = seen.get(f.rel)
        if first is None:
            seen[f.rel] = f
        elif first.data != f.data:
            raise OrchError(f"{f.origin} and {first.origin} both write {f.rel}, differently")
    return sorted(seen.values(), key=lambda f: f.rel)


def _clash(dest: Path, rel: str) -> str | None:
    """A parent of ``rel`` that exists as something other than a folder."""
    parts = rel.split("/")[:-1]
    p = dest
    if p.exists() and not p.is_dir():
        return "."
    for i, part in enumerate(parts):
        p = p / part
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            return "/".join(parts[: i + 1])
    return None


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b


def _validate_new(
    repo: Repo,
    dest_rel: str,
    files: list[_File],
    load_error: OrchError | None,
    kind: str,
    name: str,
) -> list[str]:
    """Check the new manifests together with the repository's, before anything is written.

    Only problems the new files bring are reported: a repository that already had errors
    still gets its project, and the errors it had are not blamed on the template.
    Returns the names of the workflows the new files define.
    """
    from runner.manifests.load import load_texts, read_config, select_files
    from runner.manifests.sources import list_manifest_files
    from runner.manifests.yamlsrc import read_file

    root = repo.root
    new: dict[str, str] = {}
    for f in files:
        if f.rel.endswith((".yaml", ".yml")):
            try:
                text = f.data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if "orch/" in text:
                new[_join(dest_rel, f.rel)] = text
    if not new:
        return []
    config, diags = read_config(root)
    if diags:
        raise OrchError(diagnostics=diags)
    texts: dict[str, str] = {}
    for f in select_files(list_manifest_files(root), config):
        try:
            text, _ = read_file(root / f, f)
        except OSError:
            continue
        if text is not None:
            texts[f] = text
    what = f"{kind} '{name}' not created, nothing was written: the template's manifests"
    try:
        m = load_texts(root, config, {**texts, **new}, repo.prefix)
    except OrchError as e:
        before: set[Diagnostic] = set()
        if load_error is not None:
            try:
                load_texts(root, config, texts, repo.prefix)
            except OrchError as e0:
                before = set(e0.diagnostics)
        fresh = [d for d in e.diagnostics if d not in before]
        if fresh:
            raise OrchError(f"{what} do not validate", diagnostics=fresh) from None
        m = None
    ours = [f for f in new if m is None or any(k[0] == f for k in m.documents)]
    unread = [f for f in ours if f not in select_files(ours, config)]
    unread += _git_ignored(root, [f for f in ours if f not in unread])
    if unread:
        raise OrchError(
            f"{what} would never be read: {', '.join(repo.prefix + f for f in unread)} "
            "(not under .orch/config.yaml `manifests:`, or ignored by git; "
            "widen `manifests:` or pick another --path)"
        )
    if m is None:
        return []
    return sorted(w.name for w in m.workflows.values() if w.path in new)


def _git_ignored(root: Path, rels: list[str]) -> list[str]:
    if not rels:
        return []
    from runner.manifests.sources import git

    try:
        p = git(root, "check-ignore", "--no-index", "--", *rels, check=False)
    except FileNotFoundError:
        return []
    if p.returncode != 0:  # 1: none ignored; 128: not a git repository
        return []
    return [line for line in os.fsdecode(p.stdout).splitlines() if line]


def _write(dest: Path, files: list[_File]) -> None:
    """Write ``files`` under ``dest`` so they appear whole, and never over an existing file.

    Everything is written into a temp folder first (beside the target, so on the same file
    system). A new target folder then appears with one rename; into an existing folder each
    file is hard-linked into place (link(2) fails rather than replace a file), and a failure
    half-way removes what was placed.
    """
    if not files:
        return
    anchor = dest
    while not anchor.exists():
        anchor = anchor.parent
    tmp = Path(tempfile.mkdtemp(prefix=".orch-new-", dir=anchor))
    made_dirs: list[Path] = []
    placed: list[Path] = []
    try:
        tree = tmp / "tree"
        tree.mkdir()
        for f in files:
            p = tree / f.rel
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "xb") as fh:
                fh.write(f.data)
            if f.executable:
                mode = p.stat().st_mode
                os.chmod(p, mode | ((mode & 0o444) >> 2))  # x wherever r, as git does
        if not dest.exists():
            for parent in reversed(dest.parents):
                if not parent.exists():
                    parent.mkdir()
                    made_dirs.append(parent)
            os.rename(tree, dest)
            return
        for f in files:
            src, final = tree / f.rel, dest / f.rel
            for parent in reversed(final.relative_to(dest).parents):
                d = dest / parent
                if not d.exists():
                    d.mkdir()
                    made_dirs.append(d)
            try:
                os.link(src, final)
            except FileExistsError:
                raise OrchError(f"{final}: appeared while writing; nothing was written") from None
            except OSError:  # a file system without hard links: exclusive create instead
                with open(final, "xb") as fh:
                    fh.write(f.data)
                shutil.copymode(src, final)
            placed.append(final)
    except BaseException:
        for p in reversed(placed):
            p.unlink(missing_ok=True)
        for d in reversed(made_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
