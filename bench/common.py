"""What every benchmark case shares: the run context, result rows and the case protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from bench.client import Registry

MB = 1_000_000  # throughput is reported in MB/s (10^6 bytes per second)
GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Row:
    """One line of the results table: ``key`` (JSON), ``label``, ``unit``, which way is better."""

    key: str
    label: str
    unit: str
    better: Literal["higher", "lower"] = "higher"


@dataclass
class Context:
    """Run-wide settings: scratch folder, sizes, durations, rounds and shared inputs."""

    workdir: Path
    quick: bool
    rounds: int
    blob_size: int  # the "1 GiB" layer of rows 1 and 2
    big_size: int  # the "10 GiB" push of row 5
    wrk_seconds: float
    listing_count: int  # tags and repositories of row 6
    shared: dict[str, Any] = field(default_factory=dict)


class Case(Protocol):
    """A benchmark: ``rows`` it reports; ``setup`` once per registry; ``run`` once per round."""

    name: str
    rows: list[Row]

    def setup(self, reg: Registry, ctx: Context) -> None:
        """Prepare ``reg`` (push what the measurement reads)."""

    def run(self, reg: Registry, ctx: Context, round_no: int) -> dict[str, float]:
        """Measure once; return ``{row key: value}`` (extra keys go to the raw JSON only)."""
