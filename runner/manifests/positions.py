"""Where a part of a loaded workflow is written, found again on the error path.

Loading keeps no YAML positions (a ``Document``'s position tables cost more memory than
the manifests themselves, and a no-op plan needs none). A diagnostic found later -- at
plan or apply: a missing input, a glob that matches nothing, a template that fails with
a run's values -- re-reads the one file it names, once per file and version, and points
at the field as ``orch validate`` does (``file:line:col``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.model import Workflow


def at(root: Path, wf: Workflow, path: tuple[Any, ...]) -> str:
    """``FILE:LINE:COL`` of ``path`` (a key path inside ``wf``'s document, such as
    ``("spec", "steps", 2, "inputs", 0)``), or ``FILE`` alone when the file cannot be read
    again (changed, removed, unreadable): a position is a help, never a new error."""
    full = os.path.join(root, wf.path)
    try:
        st = os.stat(full)
    except OSError:
        return wf.path
    table = _positions(full, wf.path, wf.doc_index, st.st_mtime_ns, st.st_size)
    if table is None:
        return wf.path
    line, col = table.where(path)
    return f"{wf.path}:{line}:{col}" if line else wf.path


def step_field(step_index: int, *field: Any) -> tuple[Any, ...]:
    """The key path of a field of the step at ``step_index`` in ``spec.steps``."""
    return ("spec", "steps", step_index, *field)


@lru_cache(maxsize=8)
def _positions(full: str, display: str, doc_index: int, _mtime: int, _size: int) -> Any:
    """The ``Document`` at ``doc_index`` of the file (keyed by its stat: an edit since
    is read anew), or None."""
    from runner.manifests.yamlsrc import load_text, read_file

    text, diag = read_file(full, display)
    if text is None or diag is not None:
        return None
    docs, _ = load_text(text, display)
    return next((d for d in docs if d.index == doc_index), None)
