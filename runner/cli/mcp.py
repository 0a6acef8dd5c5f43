"""orch mcp: serve the repository's orch to an AI agent over stdio (see runner/mcp/server.py)."""

from __future__ import annotations

import argparse
import sys

from runner.cli.common import repo_from


def serve(args: argparse.Namespace) -> int:
    from runner.mcp import server as mcp

    root = repo_from(args).root  # fixed for the server's life; tools cannot leave it
    try:
        mcp.serve(root)
    except mcp.SdkMissing as e:
        print(e, file=sys.stderr)
        return 1
    return 0
