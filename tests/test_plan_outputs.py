"""The planner's index of declared outputs answers as the scan of every output it
replaced: an input is covered when it is an output, lies under one or holds one."""

from __future__ import annotations

import itertools

from runner.reconcile.planner import _Outputs

OUTPUTS = ["out/a.txt", "out/deep/b", "build", "x/y/z", "/abs/p", ""]
PROBES = [
    "out",
    "out/a.txt",
    "out/a",
    "out/a.txt/more",
    "out/deep",
    "build/c/d",
    "buil",
    "x",
    "x/y",
    "x/y/z/w",
    "x/yz",
    "",
    "/abs",
    "/",
    "abs/p",
    "other",
]


def _scan(outputs: list[str], lit: str) -> bool:
    return any(o == lit or o.startswith(lit + "/") or lit.startswith(o + "/") for o in outputs)


def test_index_answers_as_the_scan_did():
    for n in range(len(OUTPUTS) + 1):
        for outs in itertools.combinations(OUTPUTS, n):
            index = _Outputs(list(outs))
            for lit in PROBES:
                assert index.covers(lit) == _scan(list(outs), lit), (outs, lit)
