"""Hand step values to orch: ``key=value`` lines appended to the file named by $ORCH_OUTPUT.

Outside orch (running a step by hand) there is no $ORCH_OUTPUT, so the values are printed
instead; the step still works and shows what it would have passed on.
"""

from __future__ import annotations

import os


def emit(**values: object) -> None:
    lines = "".join(f"{key}={value}\n" for key, value in values.items())
    target = os.environ.get("ORCH_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        print(lines, end="")
