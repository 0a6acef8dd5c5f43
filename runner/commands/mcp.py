"""orch mcp: serve the repository's orch to an AI agent over stdio (see runner/mcp.py)."""

from __future__ import annotations

import argparse
import sys

from runner.commands import repo_from


def serve(args: argparse.Namespace) -> int:
    from runner import mcp

    root = repo_from(args).root  # fixed for the server's life; tools cannot leave it
    try:
        mcp.serve(root)
    except mcp.SdkMissing as e:
        print(e, file=sys.stderr)
        return 1
    return 0
