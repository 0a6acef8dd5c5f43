"""What every manifest check shares: ``Ctx``, the workflow being checked and the
Diagnostics said about it, each pointing at the exact key or value in the manifest (or,
for a field a step took from its StepTemplate, at the step, naming the template).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import Diagnostic
from runner.manifests.yamlsrc import Document
from runner.model import Workflow

if TYPE_CHECKING:
    from runner.manifests.catalog import Manifests


def is_templated(s: Any) -> bool:
    """A string with Jinja in it: the only fields whose syntax and names need checking."""
    return isinstance(s, str) and ("{{" in s or "{%" in s)


class Ctx:
    """One workflow being checked: the catalog ``m`` (which checks also fill: refs,
    producers, DAGs), its document, and ``out``, the Diagnostics said so far."""

    def __init__(self, m: Manifests, wf: Workflow, doc: Document, prefix: str):
        self.m, self.wf, self.doc, self.prefix = m, wf, doc, prefix
        self.out: list[Diagnostic] = []

    def add(self, path: tuple[Any, ...], what: str, hint: str = "", key: bool = False) -> None:
        from runner.manifests.schema import dotted

        line, col = self.doc.where(path, key=key)
        hint = _from_template(self.doc, path, hint)
        self.out.append(Diagnostic(self.doc.path, line, col, dotted(path), what, hint))

    def warn(self, path: tuple[Any, ...], what: str, hint: str = "") -> None:
        """Said on stderr (``orch: warning: ...``), kept with the cached manifests; not an error."""
        from runner.manifests.schema import dotted

        line, col = self.doc.where(path)
        self.m.warnings.append(str(Diagnostic(self.doc.path, line, col, dotted(path), what, hint)))


def _from_template(doc: Document, path: tuple[Any, ...], hint: str) -> str:
    """A problem in a field a step took from its StepTemplate is reported at the step (the
    use decides the params it reads), saying where the field is written."""
    name = inherited(doc, path)
    if name is None:
        return hint
    said = f"from StepTemplate '{name}'"
    return f"{hint}; {said}" if hint else said


def inherited(doc: Document, path: tuple[Any, ...]) -> str | None:
    """The StepTemplate a step's field at ``path`` comes from, None for its own field."""
    if len(path) < 4 or path[:2] != ("spec", "steps") or not isinstance(path[2], int):
        return None
    try:
        own = doc.data["spec"]["steps"][path[2]]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(own, dict) or "uses" not in own:
        return None
    mine = own.get(path[3])
    if path[3] in own and len(path) > 4:  # env/resources merge, inputs/outputs extend
        if isinstance(mine, dict) and path[4] not in mine:
            return str(own["uses"])
        if isinstance(mine, list) and isinstance(path[4], int) and path[4] >= len(mine):
            return str(own["uses"])
    return None if path[3] in own else str(own["uses"])
