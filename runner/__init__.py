"""orch: a declarative, GitOps-style workflow runner (import name ``runner``).

Kept import-free on purpose: ``orch --version`` must not pay for jinja2, networkx,
jsonschema, watchdog or git.
"""

__version__ = "0.1.0"
