"""The benchmark harness measures ceilings inside every round and waits out Berth's background
work after each of its runs (``bench.run.run_case``), without starting any server."""

from __future__ import annotations

import itertools
from pathlib import Path

from bench.auth import Tokens
from bench.client import Registry
from bench.common import Context, Row
from bench.run import _rows, run_case


class FakeCase:
    """A pull-like case whose Berth beats the second round's ceiling."""

    name = "pull"
    rows = [Row("pull_1", "blob pull, 1 stream", "MB/s")]

    def __init__(self) -> None:
        self.calls: list[str] = []

    def setup(self, reg: Registry, ctx: Context) -> None:
        self.calls.append(f"setup {reg.name}")

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        name = reg.name
        self.calls.append(f"run {name} {round_no}")
        return {"pull_1": 300.0 if name == "berth" else 100.0}


def test_ceilings_every_round_and_settling_after_each_berth_run(tmp_path: Path) -> None:
    ctx = Context(tmp_path, quick=True, rounds=3, blob_size=1, big_size=1, wrk_seconds=0.1, listing_count=1)
    case = FakeCase()
    measured = itertools.count(1)
    settled: list[str] = []

    def ceiling() -> dict[str, float]:
        case.calls.append("ceiling")
        return {"loopback_get_1": 100.0 * next(measured)}  # 100, 200, 300 MB/s

    def settle(name: str) -> float:
        settled.append(name)
        case.calls.append(f"settle {name}")
        return 0.0

    regs = [
        Registry("berth", "127.0.0.1:1", Tokens(None)),
        Registry("distribution", "127.0.0.1:2", Tokens(None)),
    ]
    samples = run_case(case, regs, ctx, settle=settle, ceiling=ceiling)
    assert case.calls[2:] == [
        "ceiling", "run berth 0", "settle berth", "run distribution 0", "settle distribution",
        "ceiling", "run distribution 1", "settle distribution", "run berth 1", "settle berth",
        "ceiling", "run berth 2", "settle berth", "run distribution 2", "settle distribution",
    ]  # fmt: skip
    assert samples["ceiling"]["loopback_get_1"] == [100.0, 200.0, 300.0]
    assert samples["berth"]["settle_seconds"] == [0.0, 0.0, 0.0]
    (row,) = _rows([case], {"pull": samples})
    assert row["ceiling"] == 200.0  # the median of the case's own rounds
    assert row["above_ceiling"] is True  # Berth's 300 MB/s: the ceiling did not bound it
