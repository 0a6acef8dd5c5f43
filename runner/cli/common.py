"""What every CLI verb module shares: opening the repository, printing JSON.

One module per group of verbs (``basic``, ``run``, ``projects``, ``watch``, ``mcp``); each
handler is a few lines over ``runner.api``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from runner.api import Repo, open_repo

OPENED: list[Repo] = []  # the CLI prints their warnings when the verb ends


def repo_from(args: argparse.Namespace, exact: bool = False) -> Repo:
    repo = open_repo(args.directory, exact=exact)
    OPENED.append(repo)
    return repo


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout, masked with the secrets of the manifests this command
    loaded (rows recorded before a secret was declared must not show it either)."""
    if OPENED:
        from runner import api

        for repo in OPENED:
            data = api.secrets(repo, load=False).mask_any(data)
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
