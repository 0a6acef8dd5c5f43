"""Manifests at a git revision, and which workflows a change since a revision touches.

``--ref REV`` reads ``.orch/config.yaml`` and the manifests it selects straight from git's
objects (tree -> blobs), so the work tree, the index and HEAD are never touched: a hook or a
CI job can validate or plan another commit while the user keeps editing.

``--since REV`` is "affected" selection as Nx and Turborepo do it::

    merge-base(REV, HEAD) ──git diff──> work tree      (staged + unstaged, renames split)
                                  + untracked files    (git's ignore rules apply)
                                  = changed files ──> workflows whose manifest, project,
                                                      quota or step inputs match one
                                                      ──> and the workflows reading
                                                          their outputs, transitively

The merge base, not REV itself, so that on a branch, files that changed only on ``main``
after the branch point do not select workflows the branch never touched.

gitpython is imported inside each function that needs it (``orch --version`` stays fast).
Its git processes get this repository's own ``GIT_DIR``/``GIT_WORK_TREE``/``GIT_INDEX_FILE``:
inside a git hook those variables point at the hook's repository, which need not be ours.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runner import globs, links
from runner.errors import Diagnostic, OrchError
from runner.manifests.load import (
    CONFIG_PATH,
    Config,
    Manifests,
    load_texts,
    parse_config,
    runs_here,
    select_files,
)
from runner.manifests.paths import LINK_OUT, LINK_OUT_HINT, target_at_revision
from runner.manifests.sources import MANIFEST_SUFFIXES
from runner.manifests.yamlsrc import MAX_BYTES, decode
from runner.pathmatch import Inputs

if TYPE_CHECKING:
    import git

    from runner.model import Step, Workflow

_BLOB_SYMLINK = 0o120000


class Repo(Protocol):
    """What these functions read of a ``workspace.Repo``: structural, so ``manifests/``
    need not import the workspace above it."""

    root: Path
    prefix: str


def manifests_at(repo: Repo, ref: str) -> Manifests:
    """The manifests as committed at ``ref``, validated like the work tree's (raises the same
    ``OrchError`` diagnostics). A committed symlink is followed through the tree at ``ref``
    when it stays inside the repository; one that leaves it is a diagnostic, as in the
    work tree."""
    with _git_repo(repo, "--ref") as (g, prefix):
        tree = _tree(g, ref, "--ref")
        if prefix:
            try:
                tree = tree / prefix.rstrip("/")
            except KeyError:  # the orch folder did not exist yet at ref: nothing to read
                return load_texts(repo.root, Config(), {}, repo.prefix)
        blobs = {
            b.path[len(prefix) :]: b
            for b in tree.traverse(predicate=lambda o, _d: o.type == "blob")
        }
        diags: list[Diagnostic] = []
        config_blob = _follow(blobs, CONFIG_PATH, repo.prefix, diags)
        config, d = (
            (Config(), []) if config_blob is None else parse_config(*_read_blob(config_blob))
        )
        diags.extend(d)
        candidates = sorted(p for p in blobs if _is_manifest_name(p))
        texts: dict[str, str] = {}
        for f in select_files(candidates, config):
            blob = _follow(blobs, f, repo.prefix, diags)
            if blob is None:
                continue
            raw, size = _read_blob(blob)
            text, d = decode(raw, repo.prefix + f, size)
            if d:
                diags.append(d)
            elif text is not None:
                texts[f] = text
    # a foreach over a step's outputs fans out over what the state recorded, as in the
    # work tree: plan --ref is the manifests at REV against this checkout's state
    from runner.manifests.load import RecordedOutputs

    reader = RecordedOutputs(repo.root)
    try:
        m = load_texts(repo.root, config, texts, repo.prefix, diags, reader)
    finally:
        reader.close()
    if m.host_diags and runs_here(config):  # as Repo.manifests: the host is the ceiling
        raise OrchError(diagnostics=m.host_diags)
    return m


def _follow(blobs: dict[str, Any], path: str, prefix: str, diags: list[Diagnostic]) -> Any:
    """The blob ``path`` names at the revision, through committed symlinks as a checkout
    would follow them (``paths.leaves_repository``'s rule, on the tree instead of the
    disk): None when missing or a link to a folder; a link leaving the repository is a
    diagnostic and is not read."""
    seen: set[str] = set()
    at = path  # the link being read: a link's target is relative to its own folder
    blob = blobs.get(path)
    while blob is not None and blob.mode == _BLOB_SYMLINK:
        target = target_at_revision(at, os.fsdecode(blob.data_stream.read()))
        if target is not None:
            target = _through_folder_links(blobs, target)
        if target is None:
            diags.append(Diagnostic(prefix + path, 0, 0, "", LINK_OUT, LINK_OUT_HINT))
            return None
        if not target or target in seen or len(seen) > 32:
            return None  # a loop: nothing to read, as open() would find
        seen.add(target)
        at, blob = target, blobs.get(target)
    return blob


def _through_folder_links(blobs: dict[str, Any], path: str) -> str | None:
    """``path`` with each leading folder that is a committed symlink replaced by where it
    points, as the kernel resolves ``sub/wf.yaml`` when ``sub`` is a link (the tree holds
    no ``sub/wf.yaml`` then); None when one leaves the repository, ``""`` for a loop."""
    parts = path.split("/")
    i, hops = 1, 0
    while i < len(parts):
        folder = "/".join(parts[:i])
        blob = blobs.get(folder)
        if blob is None or blob.mode != _BLOB_SYMLINK:
            i += 1
            continue
        target = target_at_revision(folder, os.fsdecode(blob.data_stream.read()))
        if target is None:
            return None
        hops += 1
        if hops > 32:
            return ""
        parts = [*target.split("/"), *parts[i:]]
        i = 1
    return posixpath.normpath("/".join(parts))


def _read_blob(blob: Any) -> tuple[bytes, int]:
    """A blob's bytes and size; one over the manifest limit is not read at all (its size
    comes from git's object header), so a huge committed file costs nothing."""
    size = int(blob.size)
    return (b"" if size > MAX_BYTES else blob.data_stream.read()), size


def affected_workflows(repo: Repo, m: Manifests, since: str) -> set[str]:
    """Names of the workflows in ``m`` touched by what changed since ``since``. A file
    changed at a symlink's target is changed at every path through the link (the rule of
    ``runner.links``), so a step reading ``src/vendor/`` is affected by ``third/lib/x.c``."""
    changed = changed_files(repo, since)
    roots = {
        globs.literal_prefix(p).rstrip("/")
        for wf in m.workflows.values()
        for s in wf.steps
        for p in _input_patterns(m, wf, s)
        if not p.startswith("!")
    }
    table = links.find(str(repo.root), roots)
    if table:
        changed = {a for f in changed for a in links.aliases(f, table)}
    return with_dependents(m, affected(m, changed))


def with_dependents(m: Manifests, names: set[str]) -> set[str]:
    """``names`` and every workflow downstream of one of them through files one writes and
    another reads (``m.cross_upstream``), transitively: Nx's and Turborepo's "affected"
    takes the dependents, and a reader left out would be stale after ``apply --since``.
    networkx (``descendants``) is imported here, off the no-op path: ``--since`` always
    plans."""
    if not names or not m.cross_upstream:
        return names
    import networkx as nx

    g = nx.DiGraph()
    g.add_edges_from(
        (uw, dw) for (dw, _ds), ups in m.cross_upstream.items() for uw, _us in ups if uw != dw
    )
    out = set(names)
    for n in names & set(g):
        out |= nx.descendants(g, n)
    return out


def changed_files(repo: Repo, since: str) -> set[str]:
    """Paths (relative to the orch root) that differ between the merge base of ``since`` and
    HEAD and the work tree: staged, unstaged, deleted, and untracked-but-not-ignored."""
    import git

    with _git_repo(repo, "--since") as (g, prefix):
        base = _resolve(g, since, "commit", "--since")
        if g.head.is_valid():
            try:
                shas = g.git.merge_base(base, g.head.commit.hexsha).split()
            except git.GitCommandError:  # unrelated histories: compare with REV itself
                shas = []
            if shas:
                base = shas[0]
        out = g.git.diff(
            "--name-only", "--no-renames", "-z", base, "--", strip_newline_in_stdout=False
        )
        untracked = g.git.ls_files(
            "--others", "--exclude-standard", "-z", strip_newline_in_stdout=False
        )
    names = [n for n in (out + "\0" + untracked).split("\0") if n]
    return {n[len(prefix) :] for n in names if n.startswith(prefix)}


def affected(m: Manifests, changed: Iterable[str]) -> set[str]:
    """Pure: the workflows whose manifest, project, governing quotas or step inputs are among
    ``changed``. A changed ``.orch/config.yaml`` affects every workflow (it decides which
    manifests exist at all). Where an input path is a template that cannot be rendered
    without running upstream steps, everything under its literal part counts, so the answer
    errs towards running."""
    from runner.manifests.quotas import governing

    changed = set(changed)
    if not changed:
        return set()
    if CONFIG_PATH in changed:
        return set(m.workflows)
    out = set()
    for wf in m.workflows.values():
        docs = {wf.path}
        if wf.project and wf.project in m.projects:
            docs.add(m.projects[wf.project].path)
        docs.update(q.path for q in governing(m, wf))
        docs.update(m.template_files.get(wf.name, ()))
        if docs & changed:
            out.add(wf.name)
            continue
        readers = [Inputs(_input_patterns(m, wf, s)) for s in wf.steps]
        readers.append(Inputs(_foreach_globs(m, wf)))
        if any(r.reads(f) for r in readers for f in changed):
            out.add(wf.name)
    return out


def _foreach_globs(m: Manifests, wf: Workflow) -> list[str]:
    """Repo-relative ``foreach:`` globs of ``wf``'s steps, from the document as written (a
    glob that matches nothing now leaves no instance to read it from): a file added or
    removed there adds or drops an instance, so it changes the workflow even where no
    step lists it as an input."""
    from runner.manifests import paths

    doc = m.documents.get((wf.path, wf.doc_index))
    steps = ((doc.data.get("spec") or {}).get("steps") or []) if doc is not None else []
    out = []
    for s in steps:
        fe = s.get("foreach") if isinstance(s, dict) else None
        if isinstance(fe, str) and not paths.templated(fe):
            try:
                out.append(paths.join(wf.base, fe))
            except paths.PathEscape:  # validation reports it
                continue
    return out


# -- helpers ------------------------------------------------------------------------------


def _input_patterns(m: Manifests, wf: Workflow, step: Step) -> Iterator[str]:
    """Repo-relative patterns of a step's inputs, rendered for every environment of its
    project (params may differ per environment, and so may the paths)."""
    from runner.manifests import paths
    from runner.manifests.params import base_params

    proj = m.projects.get(wf.project) if wf.project else None
    envs: list[str | None] = [None, *(proj.environments if proj else ())]
    for raw in step.inputs:
        neg = raw.startswith("!")
        if neg:
            raw = raw[1:]
        if not paths.templated(raw):
            rendered = [raw]
        else:
            rendered = []
            for env in envs:
                try:
                    rendered.append(paths.render(wf, step, raw, base_params(m, wf, env)))
                except Exception:  # reads steps.* or the like: widen to its literal part
                    if neg:
                        continue  # an exclusion that cannot be known leaves nothing out
                    cut = min(i for i in (raw.find("{{"), raw.find("{%")) if i >= 0)
                    head = raw[:cut]
                    rendered.append(head.rsplit("/", 1)[0] + "/" if "/" in head else "")
        for p in rendered:
            try:
                rel = paths.join(wf.base, p) if p else (wf.base + "/" if wf.base else "")
            except paths.PathEscape:  # validation reports it; nothing of ours to match
                continue
            yield "!" + rel if neg else rel


def _is_manifest_name(path: str) -> bool:
    if not path.endswith(MANIFEST_SUFFIXES):
        return False
    # as sources.list_files: orch's own folders hold no manifests, but nested configs count
    return not (
        path.startswith(".orch/") or ("/.orch/" in path and not path.endswith("/" + CONFIG_PATH))
    )


@contextmanager
def _git_repo(repo: Repo, flag: str) -> Iterator[tuple[git.Repo, str]]:
    """The git repository holding ``repo`` and the orch root's path inside it ("" or
    "sub/dir/"), with its git processes pinned to this repository."""
    import git

    try:
        g = git.Repo(repo.root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise OrchError(
            f"{flag}: {repo.root} is not in a git repository",
        ) from None
    try:
        top = g.working_tree_dir
        if top is None:
            raise OrchError(f"{flag}: {g.git_dir} is a bare repository; run orch in a work tree")
        rel = Path(os.path.relpath(repo.root.resolve(), Path(top).resolve())).as_posix()
        prefix = "" if rel == "." else posixpath.join(rel, "")
        g.git.update_environment(
            GIT_DIR=str(g.git_dir),
            GIT_WORK_TREE=str(top),
            GIT_INDEX_FILE=str(Path(g.git_dir) / "index"),
        )
        yield g, prefix
    finally:
        g.close()


def _resolve(g: git.Repo, ref: str, kind: str, flag: str) -> str:
    """The full sha of ``ref`` peeled to ``kind``, resolved by git itself (so every
    revision syntax git knows works: ``origin/main``, ``v1.2``, ``HEAD~3``, ``@{u}``)."""
    import git

    try:
        out = g.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref}^{{{kind}}}")
    except git.GitCommandError:
        out = ""
    if not out.strip():
        raise OrchError(f"{flag} {ref}: unknown revision (try a branch, tag or commit)")
    return out.strip()


def _tree(g: git.Repo, ref: str, flag: str) -> Any:
    import git

    sha = _resolve(g, ref, "tree", flag)
    return git.Tree(g, bytes.fromhex(sha), mode=git.Tree.tree_id << 12, path="")
