"""Run the unit tests under a folder with the source folder importable; no test runner needed.

``python3 -m unittest discover`` fails on a folder that does not exist and, since Python
3.12, when it finds no tests; a new project has neither, and its workflow should still be
green, so both are reported and count as a pass. A failing or erroring test fails the step.

Usage: python3 tools/runtests.py --src src --tests tests
Passes on ``tests=`` (how many ran).
"""

from __future__ import annotations

import argparse
import sys
import unittest
from pathlib import Path

from orch_output import emit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True)
    parser.add_argument("--tests", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(args.src.resolve()))
    if not args.tests.is_dir():
        print(f"runtests: {args.tests} does not exist yet: no tests to run", file=sys.stderr)
        emit(tests=0)
        return 0
    top = Path.cwd()
    suite = unittest.defaultTestLoader.discover(str(args.tests), top_level_dir=str(top))
    result = unittest.TextTestRunner(verbosity=1).run(suite)
    emit(tests=result.testsRun)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    raise SystemExit(main())
