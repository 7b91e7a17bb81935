"""Summaries (median, spread, ratio) and the markdown table of ``docs/PERFORMANCE.md``."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from bench.common import Row

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def summary(samples: list[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "spread_pct", "n"}``; spread = (max - min) / median in %."""
    if not samples:
        return {"median": None, "min": None, "max": None, "spread_pct": None, "n": 0}
    med = statistics.median(samples)
    spread = (max(samples) - min(samples)) / med * 100 if med else 0.0
    return {"median": med, "min": min(samples), "max": max(samples), "spread_pct": spread, "n": len(samples)}


def ratio(row: Row, berth: float | None, dist: float | None) -> float | None:
    """Berth relative to Distribution, > 1 meaning Berth is better (throughput: B/D; time: D/B)."""
    if berth is None or dist is None:
        return None
    if row.unit == "MiB" and row.key.endswith("growth"):  # ~0 on both sides: compare with 1 MiB slack
        berth, dist = berth + 1, dist + 1
    if not berth or not dist:
        return None
    return berth / dist if row.better == "higher" else dist / berth


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _cell(s: dict[str, Any]) -> str:
    if s["median"] is None:
        return "-"
    return f"{_fmt(s['median'])} (±{s['spread_pct']:.0f}%)"


def table(results: dict[str, Any]) -> str:
    """The markdown table: row, unit, Berth, Distribution, ratio, ceiling."""
    lines = [
        "| row | unit | Berth | Distribution | ratio B/D (≥ 1: Berth as good or better) | ceiling |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        ok = r["ratio"] is not None and r["ratio"] >= 0.995
        mark = "" if r["ratio"] is None else (" ✅" if ok else " ❌")
        lines.append(
            f"| {r['label']} | {r['unit']} | {_cell(r['berth'])} | "
            f"{_cell(r['distribution'])} | {_fmt(r['ratio'])}{mark} | {_fmt(r.get('ceiling'))}"
            f"{' (exceeded)' if r.get('above_ceiling') else ''} |"
        )
    return "\n".join(lines)


def publish(doc: Path, results: dict[str, Any]) -> None:
    """Replace the text between the result markers of ``doc`` with the table and run facts."""
    meta = results["meta"]
    block = (
        f"{BEGIN}\n_Run {meta['started']}, {meta['rounds']} rounds A/B alternated, "
        f"{'quick' if meta['quick'] else 'full'} sizes, Berth with {meta['workers']} workers; "
        f"cells: median (± spread = (max - min) / median)._\n\n{table(results)}\n{END}"
    )
    text = doc.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    doc.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n")
